#include "flowfold/probe/sharded_pipeline.h"

#include "flowfold/probe/stats.h"
#include "flowfold/probe/thread_cpu.h"

namespace flowfold {

namespace {
constexpr size_t kRingCapacity = 8192;
// Workers learn the time from their own packets, and from a tick this often
// when their share of the traffic is quiet.
constexpr uint64_t kTickMs = 100;
}  // namespace

ShardedPipeline::ShardedPipeline(const PipelineOptions& options, int datalink, ExportStage& stage, unsigned workers)
    : options_(options),
      decoder_(datalink, {}, options.tunnels),
      both_(options.tunnels == probe::TunnelMode::kBoth),
      sampling_(options.sampling.enabled()),
      sampler_(options.sampling) {
  if (workers == 0) workers = 1;
  for (unsigned i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>(kRingCapacity);
    // Each worker numbers its flows in its own residue class (worker i of N:
    // offset i, stride N, within whatever split the caller made), so the
    // workers' flow ids never collide and no counter is shared between them.
    PipelineOptions o = options;
    o.cache.flow_id_stride = options.cache.flow_id_stride * workers;
    o.cache.flow_id_offset = options.cache.flow_id_offset + i * options.cache.flow_id_stride;
    w->folder = std::make_unique<FlowFolder>(o, stage);
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    Worker* worker = w.get();
    w->thread = std::thread([worker] { runWorker(*worker); });
  }
}

ShardedPipeline::~ShardedPipeline() { finish(); }

void ShardedPipeline::onPacket(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms) {
  if (ts_ms >= next_tick_ms_) {
    if (next_tick_ms_ != 0) broadcast(Kind::kClock, ts_ms);
    next_tick_ms_ = ts_ms + kTickMs;
  }
  if (ts_ms > now_ms_) now_ms_ = ts_ms;
  if (sampling_ && !sampler_.select()) return;
  probe::DecodedPacket* inner = both_ ? &inner_ : nullptr;
  if (decoder_.decode(data, caplen, wirelen, ts_ms, scratch_, inner) != probe::DecodeStatus::kOk) return;
  route(scratch_, ts_ms);
  // Tunnel mode both: the inner flow goes to the shard of its own key.
  if (both_ && inner_.tunnel_depth != 0) [[unlikely]] route(inner_, ts_ms);
}

void ShardedPipeline::route(probe::DecodedPacket& info, uint64_t ts_ms) {
  info.key.ingress_if = options_.ingress_if;
  Worker& w = *workers_[shardOf(info.key, workers_.size())];
  Item& item = w.ring.claim();
  item.info = info;
  item.ts_ms = ts_ms;
  item.kind = Kind::kPacket;
  w.ring.commit();
}

void ShardedPipeline::broadcast(Kind kind, uint64_t ts_ms) {
  for (auto& w : workers_) {
    Item& item = w->ring.claim();
    item.ts_ms = ts_ms;
    item.kind = kind;
    w->ring.commit();
    w->ring.publish();
  }
}

void ShardedPipeline::publishToWorkers() {
  for (auto& w : workers_) w->ring.publish();
}

void ShardedPipeline::runWorker(Worker& w) {
  FlowFolder& p = *w.folder;
  for (;;) {
    const size_t n = w.ring.waitAvailable();
    for (size_t i = 0; i < n; ++i) {
      const Item& item = w.ring.at(i);
      switch (item.kind) {
        case Kind::kPacket:
          // The table's hash is the worker's work: the reader (decode,
          // route) is what bounds this mode on a machine with few cores.
          p.onDecoded(item.info, item.ts_ms, hashFlowKey(item.info.key));
          break;
        case Kind::kClock:
          // Fold what is in flight first, so expiry sees packets in order.
          p.foldPending();
          p.advanceClock(item.ts_ms);
          p.publishStats();
          break;
        case Kind::kFinish:
          p.foldPending();
          p.advanceClock(item.ts_ms);
          p.finish();
          w.ring.release(i + 1);
          return;
      }
    }
    w.ring.release(n);
  }
}

void ShardedPipeline::finish() {
  if (finished_) return;
  finished_ = true;
  broadcast(Kind::kFinish, now_ms_);
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  publishStats();
}

void ShardedPipeline::publishStats() {
  std::lock_guard lock(stats_mu_);
  published_decode_ = decoder_.counters();
  published_sampled_out_ = sampler_.passedOver();
  published_reader_cpu_ns_ = threadCpuNs();  // the reader thread calls publishStats()
}

PipelineStats ShardedPipeline::stats() const {
  PipelineStats total;
  for (const auto& w : workers_) addStats(total, w->folder->stats());
  std::lock_guard lock(stats_mu_);
  total.decode = published_decode_;  // the workers decode nothing themselves
  total.sampled_out = published_sampled_out_;
  total.cpu_ns += published_reader_cpu_ns_;
  return total;
}

}  // namespace flowfold
