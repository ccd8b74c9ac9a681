#pragma once
// The export side of the data path: one bounded queue fed by every capture
// pipeline, one thread that hands each batch to every exporter in order.
// Exporters are only ever touched by that thread, so they need no locks.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/probe/export_queue.h"

namespace flowfold {

/// Exporter counters as last seen by the export thread, for stats readers:
/// the fields of FLOWFOLD_EXPORTER_COUNTERS as plain integers.
struct ExporterStats {
  std::string name;
#define FLOWFOLD_EXPORTER_STATS_FIELD(counter, ...) uint64_t counter = 0;
  FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_EXPORTER_STATS_FIELD)
#undef FLOWFOLD_EXPORTER_STATS_FIELD
  std::vector<ExporterExtraCounter> extra;  // Exporter::extraCounters()
};

class ExportStage {
 public:
  /// `permanent` exporters (the ring's flow log) get every batch too and
  /// stay when replaceExporters() swaps the configured ones. `metering`:
  /// where every exporter reads the metering process's counters for its
  /// options records (Exporter::setMeteringSource); it must outlive the stage.
  ExportStage(std::vector<std::unique_ptr<Exporter>> exporters, size_t queue_batches,
              std::vector<std::unique_ptr<Exporter>> permanent = {}, const MeteringSource* metering = nullptr);
  ~ExportStage();
  ExportStage(const ExportStage&) = delete;
  ExportStage& operator=(const ExportStage&) = delete;

  ExportQueue& queue() { return queue_; }
  const ExportQueue& queue() const { return queue_; }

  /// Replaces the exporters after every batch already queued (SIGHUP). The
  /// old ones flush first; records in flight go to the new ones; the flow
  /// cache is untouched. Never drops the request, even live.
  void replaceExporters(std::vector<std::unique_ptr<Exporter>> exporters, uint64_t now_ms);

  /// Waits until everything queued is exported and flushed; stops the thread.
  void finish();

  /// Counters of the current exporters plus those of replaced ones (so totals never go back).
  std::vector<ExporterStats> exporterStats() const;

  /// CPU time the export thread has used, as of its last batch (any thread).
  uint64_t exportThreadCpuNs() const { return cpu_ns_.load(std::memory_order_relaxed); }

 private:
  void run();
  void retire(std::vector<std::unique_ptr<Exporter>>& old);

  ExportQueue queue_;
  std::vector<std::unique_ptr<Exporter>> exporters_;  // export thread only
  std::vector<std::unique_ptr<Exporter>> permanent_;  // export thread only
  const MeteringSource* metering_;
  mutable std::mutex stats_mu_;
  std::vector<const Exporter*> current_;        // for exporterStats(), under stats_mu_
  std::vector<ExporterStats> retired_;          // totals of replaced exporters, by name
  std::atomic<uint64_t> cpu_ns_{0};
  std::thread thread_;
  bool finished_ = false;
};

}  // namespace flowfold
