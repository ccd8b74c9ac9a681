#pragma once
// The one interface every exporter implements (spdlog's sink pattern): the
// base owns counters and the error policy; a concrete exporter implements
// doExport() and, if it buffers, doFlush().
//
// Threading: an exporter is driven by a single thread (the export thread).
// Its counters are atomics so the statistics logger may read them anytime.

#include <atomic>
#include <cstdint>
#include <span>
#include <string>

#include "flowfold/exporters/log.h"
#include "flowfold/flowcache/flow_record.h"

namespace flowfold {

struct ExporterCounters {
  std::atomic<uint64_t> records_exported{0};  // records handed to the transport
  std::atomic<uint64_t> messages_sent{0};     // datagrams / IPFIX messages / lines written
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> export_errors{0};     // failed sends or writes
  std::atomic<uint64_t> records_dropped{0};   // records known to be lost by this exporter
  // Datagrams a collector on this host dropped (its socket's count, so also
  // other senders'): see local_collector.h. 0 for a remote collector.
  std::atomic<uint64_t> collector_drops{0};
  // UDP: ICMP unreachables the collector's host (or the path) sent back for
  // datagrams that had left: each lost at least one datagram whose records a
  // UDP sender cannot know (see UdpSender::refusals()).
  std::atomic<uint64_t> collector_refusals{0};
};

class Exporter {
 public:
  explicit Exporter(std::string name) : name_(std::move(name)) {}
  virtual ~Exporter() = default;
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  /// Exports a batch of records. now_ms is the pipeline clock (packet time in
  /// file mode, system time live): headers and template timers use it so a
  /// run over a capture is deterministic. Never throws: failures are counted
  /// and logged (rate-limited).
  void exportBatch(std::span<const FlowRecord> records, uint64_t now_ms);

  /// Sends whatever is buffered. Called at end of input and on shutdown.
  void flush(uint64_t now_ms);

  const std::string& name() const { return name_; }
  const ExporterCounters& counters() const { return counters_; }

 protected:
  virtual void doExport(std::span<const FlowRecord> records, uint64_t now_ms) = 0;
  virtual void doFlush(uint64_t /*now_ms*/) {}

  ExporterCounters& mutableCounters() { return counters_; }

 private:
  void reportFailure(const char* what, size_t records, const std::exception& e);

  std::string name_;
  ExporterCounters counters_;
  uint64_t failures_ = 0;
  LogRateLimiter failure_log_;
};

}  // namespace flowfold
