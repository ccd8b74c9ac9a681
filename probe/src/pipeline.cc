#include "flowfold/probe/pipeline.h"

#include "flowfold/probe/thread_cpu.h"

namespace flowfold {

Pipeline::Pipeline(const PipelineOptions& options, int datalink, ExportStage& export_stage)
    : options_(options),
      decoder_(datalink, {}, options.tunnels),
      both_(options.tunnels == probe::TunnelMode::kBoth),
      cache_(options.cache),
      export_stage_(export_stage) {
  if (options_.export_batch == 0) options_.export_batch = 1;
  cache_.output().reserve(options_.export_batch * 2);
}

Pipeline::~Pipeline() {
  finish();
}

void Pipeline::account(const Pending& p) {
  cache_.update(p.info, p.ts_ms, p.hash);  // the decoder's PacketInfo is the table's input
  if (cache_.output().size() >= options_.export_batch) handOff(false);
}

void Pipeline::advanceClock(uint64_t now_ms) {
  if (now_ms > now_ms_) now_ms_ = now_ms;
  cache_.expire(now_ms_);
  if (cache_.output().size() >= options_.export_batch) handOff(false);
}

void Pipeline::handOff(bool flush) {
  ExportBatch batch;
  batch.records = export_stage_.queue().spareRecords();
  batch.records.reserve(options_.export_batch * 2);
  batch.records.swap(cache_.output());
  batch.now_ms = now_ms_;
  batch.flush = flush;
  export_stage_.queue().push(std::move(batch), options_.wait_when_queue_full);
}

void Pipeline::finish() {
  if (finished_) return;
  finished_ = true;
  drain();
  // Drain expiry that is already due, then everything else as forced end.
  while (cache_.expire(now_ms_)) {
    if (cache_.output().size() >= options_.export_batch) handOff(false);
  }
  cache_.flushAll(options_.export_batch, [this] { handOff(false); });
  handOff(true);
  publishStats();
}

void Pipeline::publishStats() {
  std::lock_guard lock(stats_mu_);
  published_.decode = decoder_.counters();
  published_.cache = cache_.counters();
  published_.active_flows = cache_.activeFlows();
  published_.now_ms = now_ms_;
  published_.cpu_ns = threadCpuNs();  // publishStats() runs on the packet thread
}

PipelineStats Pipeline::stats() const {
  std::lock_guard lock(stats_mu_);
  return published_;
}

}  // namespace flowfold
