#include "flowfold/probe/export_stage.h"

#include <pthread.h>

#include <algorithm>

#include "flowfold/exporters/thread_signals.h"
#include "flowfold/probe/thread_cpu.h"

namespace flowfold {

namespace {
ExporterStats statsOf(const Exporter& e) {
  const auto& c = e.counters();
  ExporterStats s;
  s.name = e.name();
#define FLOWFOLD_LOAD_COUNTER(counter, ...) s.counter = c.counter.load(std::memory_order_relaxed);
  FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_LOAD_COUNTER)
#undef FLOWFOLD_LOAD_COUNTER
  s.extra = e.extraCounters();
  return s;
}

// An exporter replaced by a reload keeps counting in its successor's
// numbers; a gauge is the successor's alone (the retired one's is the past).
void accumulate(ExporterStats& into, const ExporterStats& s) {
#define FLOWFOLD_ADD_COUNTER(counter, ...) into.counter += s.counter;
  FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_ADD_COUNTER)
#undef FLOWFOLD_ADD_COUNTER
  for (const ExporterExtraCounter& x : s.extra) {
    if (x.gauge) continue;
    auto it = std::find_if(into.extra.begin(), into.extra.end(),
                           [&](const ExporterExtraCounter& y) { return y.name == x.name; });
    if (it == into.extra.end()) into.extra.push_back(x);
    else it->value += x.value;
  }
}
}  // namespace

ExportStage::ExportStage(std::vector<std::unique_ptr<Exporter>> exporters, size_t queue_batches,
                         std::vector<std::unique_ptr<Exporter>> permanent, const MeteringSource* metering)
    : queue_(queue_batches), exporters_(std::move(exporters)), permanent_(std::move(permanent)), metering_(metering) {
  for (const auto& e : exporters_) current_.push_back(e.get());
  for (const auto& e : permanent_) current_.push_back(e.get());
  for (const auto& e : exporters_) e->setMeteringSource(metering_);
  thread_ = std::thread([this] { run(); });
  // For top -H, perf and /proc/PID/task; named here, so it is as soon as the stage exists.
  pthread_setname_np(thread_.native_handle(), "ff-export");
}

ExportStage::~ExportStage() { finish(); }

void ExportStage::replaceExporters(std::vector<std::unique_ptr<Exporter>> exporters, uint64_t now_ms) {
  ExportBatch control;
  control.now_ms = now_ms;
  control.replace = true;
  control.replacement = std::move(exporters);
  queue_.push(std::move(control), true);
}

void ExportStage::finish() {
  if (finished_) return;
  finished_ = true;
  queue_.close();
  if (thread_.joinable()) thread_.join();
}

void ExportStage::retire(std::vector<std::unique_ptr<Exporter>>& old) {
  std::lock_guard lock(stats_mu_);
  for (const auto& e : old) {
    const ExporterStats s = statsOf(*e);
    auto it = std::find_if(retired_.begin(), retired_.end(), [&](const ExporterStats& r) { return r.name == s.name; });
    if (it == retired_.end()) retired_.push_back(s);
    else accumulate(*it, s);
  }
  current_.clear();
}

void ExportStage::run() {
  leaveProcessSignalsToOtherThreads();
  ExportBatch batch;
  uint64_t last_now = 0;
  while (queue_.pop(batch)) {
    last_now = std::max(last_now, batch.now_ms);
    for (auto& e : exporters_) e->exportBatch(batch.records, batch.now_ms);
    for (auto& e : permanent_) e->exportBatch(batch.records, batch.now_ms);
    if (batch.replace) {
      // The replaced exporters end their sessions (final statistics, TCP
      // withdrawals); the permanent ones only flush.
      for (auto& e : exporters_) e->close(batch.now_ms);
      for (auto& e : permanent_) e->flush(batch.now_ms);
    } else if (batch.flush) {
      for (auto& e : exporters_) e->flush(batch.now_ms);
      for (auto& e : permanent_) e->flush(batch.now_ms);
    }
    if (batch.replace) {
      retire(exporters_);
      exporters_ = std::move(batch.replacement);
      for (const auto& e : exporters_) e->setMeteringSource(metering_);
      std::lock_guard lock(stats_mu_);
      for (const auto& e : exporters_) current_.push_back(e.get());
      for (const auto& e : permanent_) current_.push_back(e.get());
    }
    queue_.recycle(std::move(batch.records));
    cpu_ns_.store(threadCpuNs(), std::memory_order_relaxed);
  }
  for (auto& e : exporters_) e->close(last_now);
  for (auto& e : permanent_) e->close(last_now);
  cpu_ns_.store(threadCpuNs(), std::memory_order_relaxed);
}

std::vector<ExporterStats> ExportStage::exporterStats() const {
  std::lock_guard lock(stats_mu_);
  std::vector<ExporterStats> out;
  for (const Exporter* e : current_) {
    ExporterStats s = statsOf(*e);
    for (const auto& r : retired_)
      if (r.name == s.name) accumulate(s, r);
    out.push_back(s);
  }
  for (const auto& r : retired_) {
    const bool still = std::any_of(out.begin(), out.end(), [&](const ExporterStats& s) { return s.name == r.name; });
    if (!still) out.push_back(r);
  }
  return out;
}

}  // namespace flowfold
