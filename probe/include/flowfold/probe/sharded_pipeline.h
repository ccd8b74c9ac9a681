#pragma once
// Several flow-cache workers behind one reader (file mode, `workers: N`).
//
// The reader thread decodes each packet and routes it by a symmetric hash of
// its flow key (both directions of a conversation land on one worker) into
// that worker's lock-free single-producer ring. Each worker owns a
// FlowFolder (flow cache; no decoder, its packets come decoded) and hands
// expired records to the shared export stage in batches. No lock is taken
// per packet; time reaches idle workers through clock ticks the reader
// broadcasts as the packets' timestamps advance.

#include <memory>
#include <thread>
#include <vector>

#include "flowfold/probe/decoder.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/spsc_ring.h"

namespace flowfold {

class ShardedPipeline {
 public:
  ShardedPipeline(const PipelineOptions& options, int datalink, ExportStage& stage, unsigned workers);
  ~ShardedPipeline();
  ShardedPipeline(const ShardedPipeline&) = delete;
  ShardedPipeline& operator=(const ShardedPipeline&) = delete;

  /// Reader thread: decode, route.
  void onPacket(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms);
  /// Reader thread: make everything routed so far visible to the workers
  /// (the rings publish in batches; this publishes the partial ones).
  void publishToWorkers();
  /// The capture's read burst ended: publish to the workers.
  void onBurstEnd() { publishToWorkers(); }
  /// Every worker folds what it has, exports every flow, and stops.
  void finish();

  /// The worker of a flow: both directions of a conversation get the same.
  static size_t shardOf(const FlowKey& key, size_t workers) {
    // The hash's top 32 bits scaled to [0, workers): a multiply, not a division.
    return static_cast<size_t>((symmetricFlowHash(key) >> 32) * workers >> 32);
  }

  void publishStats();
  /// Reader's decode counters plus every worker's cache counters.
  PipelineStats stats() const;

 private:
  enum class Kind : uint8_t { kPacket, kClock, kFinish };
  struct Item {
    probe::DecodedPacket info;
    uint64_t ts_ms;
    Kind kind;
  };
  struct Worker {
    explicit Worker(size_t ring_capacity) : ring(ring_capacity) {}
    SpscRing<Item> ring;
    std::unique_ptr<FlowFolder> folder;
    std::thread thread;
  };
  static void runWorker(Worker& w);
  void broadcast(Kind kind, uint64_t ts_ms);
  void route(probe::DecodedPacket& info, uint64_t ts_ms);

  PipelineOptions options_;
  probe::Decoder decoder_;
  probe::DecodedPacket scratch_;
  probe::DecodedPacket inner_;  // tunnel mode both: the packet's second flow
  bool both_;
  bool sampling_;
  Sampler sampler_;  // before the routing: one count over the whole capture
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t now_ms_ = 0;
  uint64_t next_tick_ms_ = 0;
  bool finished_ = false;
  mutable std::mutex stats_mu_;
  probe::DecodeCounters published_decode_;
  uint64_t published_sampled_out_ = 0;
  uint64_t published_reader_cpu_ns_ = 0;
};

static_assert(FlowPipeline<ShardedPipeline>, "a file is read into a ShardedPipeline (packet_sink.h)");

}  // namespace flowfold
