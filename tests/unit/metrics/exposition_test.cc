#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "flowfold/probe/metrics.h"

namespace flowfold {
namespace {

using Type = MetricFamily::Type;

TEST(RenderPrometheus, RendersFamiliesWithLabelsAsGoldenText) {
  const std::vector<MetricFamily> families{
      {"flowfold_packets_total",
       "Packets read from the capture.",
       Type::kCounter,
       {{{{"interface", "eth0"}}, uint64_t{12345}},
        {{{"interface", "eth1"}}, uint64_t{0}}}},
      {"flowfold_cache_flows", "Flows in the cache now.", Type::kGauge, {{{}, 42.0}}},
      {"flowfold_exported_records_total",
       "Records sent, by exporter.",
       Type::kCounter,
       {{{{"exporter", "ipfix"}, {"collector", "127.0.0.1:4739"}}, uint64_t{7}},
        {{{"exporter", "netflow9"}, {"collector", "[::1]:2055"}}, uint64_t{8}}}},
  };
  const std::string expected = R"(# HELP flowfold_packets_total Packets read from the capture.
# TYPE flowfold_packets_total counter
flowfold_packets_total{interface="eth0"} 12345
flowfold_packets_total{interface="eth1"} 0
# HELP flowfold_cache_flows Flows in the cache now.
# TYPE flowfold_cache_flows gauge
flowfold_cache_flows 42
# HELP flowfold_exported_records_total Records sent, by exporter.
# TYPE flowfold_exported_records_total counter
flowfold_exported_records_total{exporter="ipfix",collector="127.0.0.1:4739"} 7
flowfold_exported_records_total{exporter="netflow9",collector="[::1]:2055"} 8
)";
  EXPECT_EQ(renderPrometheus(families), expected);
}

TEST(RenderPrometheus, EscapesLabelValuesAndHelp) {
  // Label values: \ " and newline; HELP: \ and newline only (a quote stays).
  const std::vector<MetricFamily> families{
      {"odd_text", "A \\ backslash,\na newline and \"quotes\".", Type::kGauge,
       {{{{"path", "C:\\dir\\\"x\"\nnext"}, {"plain", "caf\xC3\xA9 {a=b}, ok"}}, 1.0}}},
  };
  const std::string expected = R"(# HELP odd_text A \\ backslash,\na newline and "quotes".
# TYPE odd_text gauge
odd_text{path="C:\\dir\\\"x\"\nnext",plain="caf)" "\xC3\xA9" R"( {a=b}, ok"} 1
)";
  EXPECT_EQ(renderPrometheus(families), expected);
}

TEST(RenderPrometheus, PrintsCountersAbove2To53Exactly) {
  const std::vector<MetricFamily> families{
      {"big_total", "", Type::kCounter,
       {{{{"n", "2^53+1"}}, uint64_t{9007199254740993u}},
        {{{"n", "max"}}, std::numeric_limits<uint64_t>::max()}}},
  };
  // 2^53+1 is not a double: a double path would print ...992 or an exponent.
  EXPECT_EQ(renderPrometheus(families),
            "# TYPE big_total counter\n"
            "big_total{n=\"2^53+1\"} 9007199254740993\n"
            "big_total{n=\"max\"} 18446744073709551615\n");
}

TEST(RenderPrometheus, PrintsDoublesShortestWithSpecialValues) {
  const std::vector<MetricFamily> families{
      {"g", "", Type::kGauge,
       {{{{"v", "tenth"}}, 0.1},
        {{{"v", "neg"}}, -2.5},
        {{{"v", "huge"}}, 1e21},
        {{{"v", "nan"}}, std::nan("")},
        {{{"v", "inf"}}, std::numeric_limits<double>::infinity()},
        {{{"v", "ninf"}}, -std::numeric_limits<double>::infinity()}}},
  };
  EXPECT_EQ(renderPrometheus(families),
            "# TYPE g gauge\n"
            "g{v=\"tenth\"} 0.1\n"
            "g{v=\"neg\"} -2.5\n"
            "g{v=\"huge\"} 1e+21\n"
            "g{v=\"nan\"} NaN\n"
            "g{v=\"inf\"} +Inf\n"
            "g{v=\"ninf\"} -Inf\n");
}

TEST(RenderPrometheus, RendersEmptyInputAndFamiliesWithoutSamples) {
  EXPECT_EQ(renderPrometheus({}), "");
  EXPECT_EQ(renderPrometheus({{"up", "Help.", Type::kGauge, {}}}),
            "# HELP up Help.\n# TYPE up gauge\n");
}

TEST(MetricNames, AcceptsAndRejectsPerTheGrammar) {
  for (const char* ok : {"a", "_", ":", "a9", "flowfold_packets_total", "ns:sub_name:x", "A_Z"}) {
    EXPECT_TRUE(isValidMetricName(ok)) << ok;
  }
  for (const char* bad : {"", "9a", "a-b", "a b", "a.b", "caf\xC3\xA9", "a{b}", "a\n"}) {
    EXPECT_FALSE(isValidMetricName(bad)) << bad;
  }
  for (const char* ok : {"a", "_", "_a", "a9", "Interface_Name", "__reserved"}) {
    EXPECT_TRUE(isValidLabelName(ok)) << ok;
  }
  for (const char* bad : {"", "9", "a:b", ":", "a-b", "a b", "\xC3\xA9"}) {
    EXPECT_FALSE(isValidLabelName(bad)) << bad;
  }
}

TEST(RenderPrometheus, ThrowsOnInvalidNames) {
  EXPECT_THROW(renderPrometheus({{"bad-name", "", Type::kGauge, {}}}), std::invalid_argument);
  EXPECT_THROW(renderPrometheus({{"", "", Type::kGauge, {}}}), std::invalid_argument);
  EXPECT_THROW(renderPrometheus({{"ok", "", Type::kGauge, {{{{"bad:label", "x"}}, 1.0}}}}),
               std::invalid_argument);
  try {
    renderPrometheus({{"ok", "", Type::kGauge, {{{{"9lives", "x"}}, 1.0}}}});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("9lives"), std::string::npos) << e.what();
  }
}

TEST(RenderPrometheus, ThrowsOnDuplicates) {
  // Same family twice: Prometheus rejects the second TYPE line.
  EXPECT_THROW(renderPrometheus({{"a", "", Type::kGauge, {}}, {"a", "", Type::kCounter, {}}}),
               std::invalid_argument);
  // One label twice in a sample.
  EXPECT_THROW(renderPrometheus({{"a", "", Type::kGauge, {{{{"x", "1"}, {"x", "2"}}, 1.0}}}}),
               std::invalid_argument);
  // The same series twice, labels in another order.
  EXPECT_THROW(renderPrometheus({{"a", "", Type::kGauge,
                                  {{{{"x", "1"}, {"y", "2"}}, 1.0}, {{{"y", "2"}, {"x", "1"}}, 2.0}}}}),
               std::invalid_argument);
  // Two unlabelled samples are the same series too.
  EXPECT_THROW(renderPrometheus({{"a", "", Type::kGauge, {{{}, 1.0}, {{}, 2.0}}}}),
               std::invalid_argument);
}

}  // namespace
}  // namespace flowfold
