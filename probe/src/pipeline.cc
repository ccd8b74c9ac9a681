#include "flowfold/probe/pipeline.h"

#include "flowfold/probe/thread_cpu.h"

namespace flowfold {

FlowFolder::FlowFolder(const PipelineOptions& options, ExportStage& export_stage)
    : options_(options), cache_(options.cache), export_stage_(export_stage) {
  if (options_.export_batch == 0) options_.export_batch = 1;
  cache_.output().reserve(options_.export_batch * 2);
  if (options_.dpi) {
    inspector_ = std::make_unique<dpi::FlowInspector>();
    dpi_slots_ = std::make_unique<uint8_t[]>(kRingSize * kDpiSlotBytes);
    cache_.setLabeler(inspector_.get());
  }
}

FlowFolder::~FlowFolder() {
  finish();
}

Pipeline::Pipeline(const PipelineOptions& options, int datalink, ExportStage& export_stage)
    : decoder_(datalink, {}, options.tunnels),
      both_(options.tunnels == probe::TunnelMode::kBoth),
      sampling_(options.sampling.enabled()),
      sampler_(options.sampling),
      ingress_if_(options.ingress_if),
      folder_(options, export_stage),
      inspecting_(folder_.inspecting()) {}

void Pipeline::onPacketInspected(const uint8_t* data, uint32_t caplen, uint64_t ts_ms, probe::DecodedPacket& info,
                                 bool decoded) {
  // The bytes DPI reads: from the IP header to the end of the capture.
  const auto bytesFrom = [&](const probe::DecodedPacket& d, bool& kept) {
    const size_t size = d.l3_offset < caplen ? caplen - d.l3_offset : 0;
    kept = folder_.keepPacketBytes(size ? data + d.l3_offset : nullptr, size) && kept;
  };
  bool kept = true;
  if (decoded) bytesFrom(info, kept);
  folder_.pushSlot(ts_ms, decoded);
  if (both_ && decoded && inner_.tunnel_depth != 0) {
    inner_.key.ingress_if = ingress_if_;
    bytesFrom(inner_, kept);
    folder_.onDecoded(inner_, ts_ms, hashFlowKey(inner_.key));
  }
  if (!kept) folder_.foldPending();  // `data` is valid only until this returns
}

Pipeline::~Pipeline() {
  finish();  // with the decoder's counters, before the folder's own finish() would publish none
}

void FlowFolder::account(const Pending& p) {
  cache_.update(p.info, p.ts_ms, p.hash);  // the decoder's DecodedPacket is the table's input
  // A backlog is offered again as the clock moves (advanceClock), not per packet.
  if (cache_.output().size() >= options_.export_batch && !backlog_) handOff(false);
}

void FlowFolder::advanceClock(uint64_t now_ms) {
  const uint64_t boundary = options_.handoff_boundary_ms;
  if (boundary != 0 && now_ms / boundary > now_ms_ / boundary && !cache_.output().empty() && !backlog_)
    [[unlikely]] handOff(false);  // stamped with the time before the boundary
  if (now_ms > now_ms_) now_ms_ = now_ms;
  if (backlog_) [[unlikely]] {
    // Expiry keeps in step with what the export thread takes: a flow that
    // is due stays in the cache rather than expiring into records that would
    // have to be dropped. Its counts stay exact; a packet of its key that
    // comes meanwhile continues it instead of starting a new flow.
    handOff(false);
    if (backlog_) return;
  }
  cache_.expire(now_ms_);
  if (cache_.output().size() >= options_.export_batch) handOff(false);
}

void FlowFolder::handOff(bool flush) {
  ExportBatch batch;
  batch.records = export_stage_.queue().spareRecords();
  batch.records.reserve(options_.export_batch * 2);
  batch.records.swap(cache_.output());
  batch.now_ms = now_ms_;
  batch.flush = flush;
  ExportQueue& queue = export_stage_.queue();
  if (options_.wait_when_queue_full) {
    queue.push(std::move(batch), true);
  } else if (finished_) {
    queue.pushWaitingUntil(std::move(batch), stop_deadline_);
  } else if (queue.tryPush(batch)) {
    backlog_ = false;
  } else {
    keepBacklog(batch);
  }
}

void FlowFolder::keepBacklog(ExportBatch& batch) {
  // The records go back to the cache's output, to be offered again with
  // those that come next; the spare vector goes back to the queue.
  cache_.output().swap(batch.records);
  export_stage_.queue().recycle(std::move(batch.records));
  backlog_ = true;
  std::vector<FlowRecord>& waiting = cache_.output();
  if (waiting.size() > options_.max_backlog_records) {
    // Bounded memory: an exporter that stays slower than the traffic loses
    // the oldest records, counted with the queue's drops. Down to three
    // quarters of the bound, so the records kept are moved once per quarter
    // of it, not on every tick of an overload.
    const size_t excess = waiting.size() - options_.max_backlog_records / 4 * 3;
    waiting.erase(waiting.begin(), waiting.begin() + static_cast<std::ptrdiff_t>(excess));
    export_stage_.queue().countDropped(excess);
  }
}

void FlowFolder::finish(const probe::DecodeCounters& decode, uint64_t sampled_out) {
  if (finished_) return;
  finished_ = true;
  backlog_ = false;  // what waits is handed over first, now waiting for room
  stop_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.stop_timeout_ms);
  foldPending();
  // Drain expiry that is already due, then everything else as forced end.
  while (cache_.expire(now_ms_)) {
    if (cache_.output().size() >= options_.export_batch) handOff(false);
  }
  cache_.flushAll(options_.export_batch, [this] { handOff(false); });
  handOff(true);
  publishStats(decode, sampled_out);
}

void FlowFolder::publishStats(const probe::DecodeCounters& decode, uint64_t sampled_out) {
  std::lock_guard lock(stats_mu_);
  published_.decode = decode;
  published_.sampled_out = sampled_out;
  published_.cache = cache_.counters();
  published_.now_ms = now_ms_;
  published_.cpu_ns = threadCpuNs();  // publishStats() runs on the packet thread
  if (inspector_) {
    published_.dpi = true;
    published_.dpi_counters = inspector_->counters();
  }
}

PipelineStats FlowFolder::stats() const {
  std::lock_guard lock(stats_mu_);
  return published_;
}

}  // namespace flowfold
