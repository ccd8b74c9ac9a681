// Every counter of every list appears once in the stats line and once in the
// Prometheus exposition, under its one name, with its value. Derived from
// the lists, so a counter added to one is checked without touching this.

#include "flowfold/probe/stats.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "flowfold/probe/metrics_families.h"

namespace flowfold {
namespace {

// An exporter whose counters the test sets.
class CountingExporter : public Exporter {
 public:
  explicit CountingExporter(std::string name) : Exporter(std::move(name)) {}
  ExporterCounters& counters() { return mutableCounters(); }

 protected:
  void doExport(std::span<const FlowRecord>, uint64_t) override {}
};

// The stats line split at " | ": the head's and each exporter's
// {key: value}, keys in order (a key seen twice is kept twice).
struct Segment {
  std::string title;
  std::vector<std::pair<std::string, uint64_t>> pairs;
  size_t count(const std::string& key) const {
    size_t n = 0;
    for (const auto& [k, v] : pairs) n += k == key;
    return n;
  }
  uint64_t value(const std::string& key) const {
    for (const auto& [k, v] : pairs)
      if (k == key) return v;
    return ~uint64_t{0};
  }
};

std::vector<Segment> parseStatsLine(const std::string& line) {
  std::vector<Segment> out;
  std::string rest = line;
  for (;;) {
    const size_t bar = rest.find(" | ");
    std::string part = rest.substr(0, bar);
    Segment seg;
    const size_t colon = part.find(": ");
    seg.title = colon == std::string::npos ? part.substr(0, part.size() - 1) : part.substr(0, colon);
    std::istringstream words(colon == std::string::npos ? "" : part.substr(colon + 2));
    for (std::string w; words >> w;) {
      const size_t eq = w.find('=');
      seg.pairs.emplace_back(w.substr(0, eq), std::stoull(w.substr(eq + 1)));
    }
    out.push_back(std::move(seg));
    if (bar == std::string::npos) break;
    rest = rest.substr(bar + 3);
  }
  return out;
}

// The exposition's samples as "name{labels}" -> value, and how often each
// series occurs.
std::map<std::string, std::pair<uint64_t, int>> parseExposition(const std::string& text) {
  std::map<std::string, std::pair<uint64_t, int>> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    auto& [value, count] = out[line.substr(0, sp)];
    value = std::stoull(line.substr(sp + 1));
    ++count;
  }
  return out;
}

class StatsTest : public ::testing::Test {
 protected:
  // Every counter a different non-zero value: 1000 + its position.
  void SetUp() override {
    uint64_t v = 1000;
    p_.decode.packets = v++;
    p_.decode.decoded = v++;
#define FLOWFOLD_SET_DECODE(counter, ...) p_.decode.counter = v++;
    FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_SET_DECODE)
    FLOWFOLD_DECODER_INFO_COUNTERS(FLOWFOLD_SET_DECODE)
#undef FLOWFOLD_SET_DECODE
    for (const auto& c : kFlowCacheCounters) p_.cache.*c.value = v++;
    std::vector<std::unique_ptr<Exporter>> exporters;
    for (const char* name : {"first", "second"}) {
      auto e = std::make_unique<CountingExporter>(name);
#define FLOWFOLD_SET_EXPORTER(counter, ...) e->counters().counter = v++;
      FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_SET_EXPORTER)
#undef FLOWFOLD_SET_EXPORTER
      exporters.push_back(std::move(e));
    }
    stage_ = std::make_unique<ExportStage>(std::move(exporters), 4);
  }
  void TearDown() override { stage_->finish(); }

  PipelineStats p_;
  std::unique_ptr<ExportStage> stage_;
};

TEST_F(StatsTest, EveryCounterIsInTheStatsLineOnceUnderItsName) {
  const auto segments = parseStatsLine(formatStatsLine(p_, *stage_));
  ASSERT_EQ(segments.size(), 4u);  // head, two exporters, cpu_ms
  const Segment& head = segments[0];
  EXPECT_EQ(head.title, "stats");
  p_.decode.forEach([&](std::string_view name, uint64_t v) {
    EXPECT_EQ(head.count(std::string(name)), 1u) << name;
    EXPECT_EQ(head.value(std::string(name)), v) << name;
  });
  for (const auto& c : kFlowCacheCounters) {
    const std::string name(c.name);
    if (c.shown == CounterShown::kInternal) {
      EXPECT_EQ(head.count(name), 0u) << name << " is internal";
      continue;
    }
    EXPECT_EQ(head.count(name), 1u) << name;
    EXPECT_EQ(head.value(name), p_.cache.*c.value) << name;
  }
  const auto exporters = stage_->exporterStats();
  ASSERT_EQ(exporters.size(), 2u);
  for (size_t i = 0; i < exporters.size(); ++i) {
    const Segment& seg = segments[1 + i];
    EXPECT_EQ(seg.title, exporters[i].name);
    EXPECT_EQ(seg.pairs.size(), std::size(kExporterCounters)) << "exactly the list's counters";
    for (const auto& c : kExporterCounters) {
      EXPECT_EQ(seg.count(std::string(c.name)), 1u) << c.name;
      EXPECT_EQ(seg.value(std::string(c.name)), exporters[i].*c.value) << c.name;
    }
  }
  EXPECT_EQ(segments[3].title, "cpu_ms");
}

TEST_F(StatsTest, CountersShownWhenNotZeroLeaveTheLineAtZero) {
  PipelineStats zero;
  const auto head = parseStatsLine(formatStatsLine(zero, *stage_))[0];
  for (const auto& c : kFlowCacheCounters) {
    const bool always = c.shown == CounterShown::kCount || c.shown == CounterShown::kGauge ||
                        c.shown == CounterShown::kSum;
    EXPECT_EQ(head.count(std::string(c.name)), always ? 1u : 0u) << c.name;
  }
}

TEST_F(StatsTest, EveryCounterIsInTheMetricsOnceUnderItsName) {
  const auto series = parseExposition(renderPrometheus(metricFamilies(p_, *stage_, {})));
  auto expect = [&](const std::string& key, uint64_t v) {
    const auto it = series.find(key);
    ASSERT_NE(it, series.end()) << key;
    EXPECT_EQ(it->second.second, 1) << key;
    EXPECT_EQ(it->second.first, v) << key;
  };
  std::set<uint64_t> values_seen;
  for (const auto& [key, vc] : series) values_seen.insert(vc.first);
  for (const auto& c : kFlowCacheCounters) {
    const std::string name(c.name);
    const uint64_t v = p_.cache.*c.value;
    switch (c.shown) {
      case CounterShown::kCount: expect("flowfold_" + name + "_total", v); break;
      case CounterShown::kGauge: expect("flowfold_" + name, v); break;
      case CounterShown::kEndReason:
        expect(std::string(kFlowRecordsFamily) + "{reason=\"" + name + "\"}", v);
        break;
      default:  // not a series of its own
        EXPECT_EQ(values_seen.count(v), 0u) << name << " is not exposed";
        break;
    }
  }
  for (const auto& e : stage_->exporterStats())
    for (const auto& c : kExporterCounters)
      expect(exporterFamilyName(c.name) + "{exporter=\"" + e.name + "\"}", e.*c.value);
}

// An exporter with numbers of its own kind (as the MySQL sink's spool and
// accounting), which the test sets.
class ExtraExporter : public CountingExporter {
 public:
  using CountingExporter::CountingExporter;
  std::vector<ExporterExtraCounter> extra;
  std::vector<ExporterExtraCounter> extraCounters() const override { return extra; }
};

TEST(ExporterExtraCounters, ShownInTheStatsLineWhenNotZeroAndInTheMetricsAsCountersOrGauges) {
  std::vector<std::unique_ptr<Exporter>> exporters;
  auto a = std::make_unique<ExtraExporter>("sink-a");
  a->extra = {{"spool_records", "waiting", 7, true}, {"accounting_rows", "upserted", 1234, false},
              {"accounting_lost", "lost", 0, false}};
  auto b = std::make_unique<ExtraExporter>("sink-b");
  b->extra = {{"accounting_rows", "upserted", 55, false}};
  exporters.push_back(std::move(a));
  exporters.push_back(std::move(b));
  exporters.push_back(std::make_unique<CountingExporter>("plain"));
  ExportStage stage(std::move(exporters), 4);
  const PipelineStats p;
  const auto segments = parseStatsLine(formatStatsLine(p, stage));
  ASSERT_EQ(segments.size(), 5u);
  EXPECT_EQ(segments[1].value("spool_records"), 7u);
  EXPECT_EQ(segments[1].value("accounting_rows"), 1234u);
  EXPECT_EQ(segments[1].count("accounting_lost"), 0u);  // 0: left out, as the other non-zero counters
  EXPECT_EQ(segments[2].value("accounting_rows"), 55u);
  EXPECT_EQ(segments[3].count("accounting_rows"), 0u);
  const std::string text = renderPrometheus(metricFamilies(p, stage, {}));
  const auto series = parseExposition(text);
  EXPECT_EQ(series.at("flowfold_exporter_spool_records{exporter=\"sink-a\"}").first, 7u);
  EXPECT_EQ(series.at("flowfold_exporter_accounting_rows_total{exporter=\"sink-a\"}").first, 1234u);
  EXPECT_EQ(series.at("flowfold_exporter_accounting_rows_total{exporter=\"sink-b\"}").first, 55u);
  EXPECT_EQ(series.at("flowfold_exporter_accounting_lost_total{exporter=\"sink-a\"}").first, 0u);
  EXPECT_EQ(series.count("flowfold_exporter_accounting_rows_total{exporter=\"plain\"}"), 0u);
  EXPECT_NE(text.find("# TYPE flowfold_exporter_spool_records gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE flowfold_exporter_accounting_rows_total counter"), std::string::npos);
  // One family per name, however many exporters have it.
  size_t families = 0;
  for (size_t at = text.find("# TYPE flowfold_exporter_accounting_rows_total "); at != std::string::npos;
       at = text.find("# TYPE flowfold_exporter_accounting_rows_total ", at + 1))
    ++families;
  EXPECT_EQ(families, 1u);
  stage.finish();
}

TEST_F(StatsTest, AddStatsAddsEveryCacheCounter) {
  PipelineStats total;
  addStats(total, p_);
  addStats(total, p_);
  for (const auto& c : kFlowCacheCounters) EXPECT_EQ(total.cache.*c.value, 2 * (p_.cache.*c.value)) << c.name;
}

TEST(CounterLists, NamesAreUniqueValidAndHaveHelp) {
  // The head of the stats line holds the decoder's and the cache's counters:
  // no name twice among them.
  std::set<std::string_view> names;
  probe::DecodeCounters{}.forEach([&](std::string_view name, uint64_t) { EXPECT_TRUE(names.insert(name).second) << name; });
  for (const auto& c : kFlowCacheCounters) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_TRUE(isValidMetricName("flowfold_" + std::string(c.name))) << c.name;
    EXPECT_FALSE(c.help.empty()) << c.name;
  }
  names.clear();
  for (const auto& c : kExporterCounters) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_TRUE(isValidMetricName(exporterFamilyName(c.name))) << c.name;
    EXPECT_FALSE(c.help.empty()) << c.name;
    EXPECT_TRUE(c.shown == CounterShown::kAlways || c.shown == CounterShown::kNonZero) << c.name;
  }
}

}  // namespace
}  // namespace flowfold
