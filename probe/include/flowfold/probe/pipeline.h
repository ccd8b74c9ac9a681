#pragma once
// The data path of one capture: decoder -> flow cache -> export queue ->
// export thread -> exporters. Data flows one way; the packet thread never
// waits on a socket or a disk (only, in file mode, on a full export queue).

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/probe/decoder.h"
#include "flowfold/probe/export_queue.h"

namespace flowfold {

struct PipelineOptions {
  FlowCacheOptions cache;
  uint32_t export_batch = 1024;
  uint32_t export_queue_batches = 64;
  /// File mode: a full export queue makes the reader wait. Live: the batch is
  /// dropped and counted (stalling would drop packets in the kernel instead).
  bool wait_when_queue_full = true;
  uint16_t ingress_if = 0;
};

class Pipeline {
 public:
  Pipeline(const PipelineOptions& options, int datalink, std::vector<std::unique_ptr<Exporter>> exporters);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// One captured frame (packet thread).
  void onPacket(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms) {
    if (decoder_.decode(data, caplen, wirelen, ts_ms, info_) == probe::DecodeStatus::kOk) account(ts_ms);
    if (ts_ms > now_ms_) advanceClock(ts_ms);
  }

  /// Moves the pipeline clock (a live idle link: no packets, time still passes).
  void advanceClock(uint64_t now_ms);

  /// End of input or shutdown: every flow is exported (forced end), exporters
  /// flush, the export thread finishes. Idempotent.
  void finish();

  const probe::DecodeCounters& decodeCounters() const { return decoder_.counters(); }
  const FlowCacheCounters& cacheCounters() const { return cache_.counters(); }
  size_t activeFlows() const { return cache_.activeFlows(); }
  const std::vector<std::unique_ptr<Exporter>>& exporters() const { return exporters_; }
  const ExportQueue& queue() const { return queue_; }
  uint64_t nowMs() const { return now_ms_; }

 private:
  void account(uint64_t ts_ms);
  void handOff(bool flush);
  void exportLoop();

  PipelineOptions options_;
  probe::Decoder decoder_;
  probe::PacketInfo info_;
  PacketSummary summary_;
  FlowCache cache_;
  uint64_t now_ms_ = 0;

  std::vector<std::unique_ptr<Exporter>> exporters_;
  ExportQueue queue_;
  std::thread export_thread_;
  bool finished_ = false;
};

}  // namespace flowfold
