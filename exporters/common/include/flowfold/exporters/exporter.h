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
#include <string_view>
#include <vector>

#include "flowfold/exporters/metering.h"
#include "flowfold/flowcache/flow_record.h"
#include "flowfold/log.h"

namespace flowfold {

// Every exporter's counters, one line each: X(name, shown, help). The name
// is the field, the key in the exporter's part of the stats line and the
// Prometheus family flowfold_exporter_<name>_total{exporter="..."}; `shown`
// is kAlways (always in the stats line) or kNonZero (when not 0). Adding a
// counter is one line here, and one row in README.md's counter table.
#define FLOWFOLD_EXPORTER_COUNTERS(X)                                                                  \
  X(records, kAlways, "Flow records handed to each exporter's transport.")                            \
  X(messages, kAlways, "Datagrams, IPFIX messages or lines written.")                                 \
  X(bytes, kNonZero, "Bytes written by each exporter.")                                               \
  X(errors, kNonZero, "Failed sends or writes.")                                                      \
  X(dropped, kNonZero, "Records known to be lost by each exporter.")                                  \
  /* RFC 5103: a biflow record carries one conversation, both directions or one */                   \
  X(biflows_paired, kNonZero,                                                                         \
    "Records of an IPFIX exporter with biflow: true that carry both directions of a conversation "    \
    "(each stands for two flows of the cache; the other records carry one).")                         \
  /* the collector's socket's count (also other senders'), see local_collector.h; 0 for a remote one */ \
  X(collector_drops, kNonZero,                                                                        \
    "Datagrams a collector on this host dropped (its socket's receive buffer was full; "              \
    "the socket's count, so also other senders' datagrams).")                                         \
  /* see UdpSender::refusals() */                                                                     \
  X(refused, kNonZero,                                                                                \
    "ICMP unreachables the kernel reported for datagrams a UDP exporter had sent: each lost "          \
    "at least one datagram whose records cannot be known.")

struct ExporterCounters {
#define FLOWFOLD_EXPORTER_FIELD(name, ...) std::atomic<uint64_t> name{0};
  FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_EXPORTER_FIELD)
#undef FLOWFOLD_EXPORTER_FIELD
};

/// A number of one kind of exporter beyond ExporterCounters (the MySQL
/// sink's spool and accounting): shown in the stats line (when not 0) and
/// in /metrics as flowfold_exporter_<name>_total{exporter} (a counter) or
/// flowfold_exporter_<name>{exporter} (a gauge).
struct ExporterExtraCounter {
  std::string_view name;
  std::string_view help;
  uint64_t value = 0;
  bool gauge = false;
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
  /// and logged (rate-limited). An empty batch is a tick of the clock (live
  /// capture sends one a second when no record comes): an exporter that
  /// holds records for a time (doTick()) lets them go.
  void exportBatch(std::span<const FlowRecord> records, uint64_t now_ms);

  /// Sends whatever is buffered. Called at end of input and on shutdown.
  void flush(uint64_t now_ms);

  /// The exporter's last call (the end of the run, or its replacement on a
  /// reload): everything it holds goes out, with its final statistics (IPFIX
  /// and NetFlow v9 options records) and, over TCP, the templates withdrawn.
  void close(uint64_t now_ms);

  /// Where the metering process's counters are read for options records
  /// (nullptr: none, e.g. in unit tests). Set before the first batch; it
  /// must outlive the exporter.
  void setMeteringSource(const MeteringSource* source) { metering_ = source; }

  const std::string& name() const { return name_; }
  const ExporterCounters& counters() const { return counters_; }
  /// This kind of exporter's own numbers (thread-safe; none by default).
  virtual std::vector<ExporterExtraCounter> extraCounters() const { return {}; }

 protected:
  virtual void doExport(std::span<const FlowRecord> records, uint64_t now_ms) = 0;
  virtual void doFlush(uint64_t /*now_ms*/) {}
  virtual void doTick(uint64_t /*now_ms*/) {}
  virtual void doClose(uint64_t now_ms) { doFlush(now_ms); }

  ExporterCounters& mutableCounters() { return counters_; }
  const MeteringSource* meteringSource() const { return metering_; }

 private:
  void reportFailure(const char* what, size_t records, const std::exception& e);

  std::string name_;
  ExporterCounters counters_;
  const MeteringSource* metering_ = nullptr;
  uint64_t failures_ = 0;
  LogRateLimiter failure_log_;
};

}  // namespace flowfold
