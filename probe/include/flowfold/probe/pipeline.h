#pragma once
// The packet side of one capture: decoder -> flow cache -> the shared export
// stage's queue. Data flows one way; the packet thread never waits on a
// socket or a disk (only, in file mode, on a full export queue).
//
// FlowFolder is the part after the decoder (cache, clock, hand-off to the
// export stage); Pipeline is a decoder in front of a FlowFolder. A
// ShardedPipeline's workers are FlowFolders alone.

#include <array>
#include <cstring>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <mutex>

#include "flowfold/dpi/inspector.h"
#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/flowcache/sampler.h"
#include "flowfold/probe/decoder.h"
#include "flowfold/recorder/recorder.h"
#include "flowfold/probe/export_stage.h"
#include "flowfold/recorder/flow_tags.h"
#include "flowfold/probe/packet_sink.h"

namespace flowfold {

struct PipelineOptions {
  FlowCacheOptions cache;
  uint32_t export_batch = 4096;
  /// File mode: a full export queue makes the reader wait. Live (false): the
  /// packet thread never waits (stalling would drop packets in the kernel
  /// instead). The records that do not fit wait in the pipeline and expiry
  /// pauses (flows stay in the cache, their records unchanged) until the
  /// export thread has caught up; only beyond `max_backlog_records` are the
  /// oldest dropped, and counted.
  bool wait_when_queue_full = true;
  uint64_t max_backlog_records = 1u << 17;
  /// Live: how long finish() waits for room in the export queue in all
  /// (a stop must end even when an exporter is stuck); what is left then is
  /// dropped and counted. File mode waits without bound.
  uint64_t stop_timeout_ms = 45'000;
  uint16_t ingress_if = 0;
  /// Tunnelled packets: outer flow, inner flow, or both (one packet, two flows).
  probe::TunnelMode tunnels = probe::TunnelMode::kOuter;
  /// Non-zero: the records waiting are handed over whenever the clock crosses
  /// a multiple of this many ms, so that no batch spans such a boundary. A
  /// file exporter that rotates (rotate: 5m) puts a batch in the file of the
  /// batch's time: from a capture file, whose batches fill slowly in packet
  /// time, records would otherwise land in a later interval's file.
  uint64_t handoff_boundary_ms = 0;
  /// Packet sampling 1:N before the decoder and the cache (sampler.h).
  SamplingOptions sampling;
  /// Application labels from nDPI (probe/dpi): each folder inspects the
  /// first packets of its flows.
  bool dpi = false;
};

/// Counters of one pipeline, copied out by publishStats() so that other
/// threads (stats log, metrics) never read the packet thread's live fields.
struct PipelineStats {
  probe::DecodeCounters decode;
  FlowCacheCounters cache;  ///< cache.flows_active: the flows in the cache now
  uint64_t now_ms = 0;
  /// CPU time of the thread(s) that ran the pipeline, as of the last
  /// publishStats() (summed over workers and captures when added up).
  uint64_t cpu_ns = 0;
  /// The packet recorder's counters, when recording (recording_sink.h).
  bool recording = false;
  recorder::RecorderCounters recorder;
  /// Sampling: packets the sampler passed over (never decoded, in no flow).
  /// Packets read = decode.packets + sampled_out.
  uint64_t sampled_out = 0;
  /// DPI's counters, when `dpi` is on.
  bool dpi = false;
  dpi::DpiCounters dpi_counters;
};

/// The folding half of a pipeline: decoded packets -> flow cache -> the
/// shared export stage's queue. A Pipeline puts its decoder in front of one;
/// each worker of a ShardedPipeline owns one alone (its packets come decoded
/// from the reader thread, so it has no decoder nor fragment table).
/// One thread (the packet thread, or the worker) makes every call but stats().
class FlowFolder {
 public:
  FlowFolder(const PipelineOptions& options, ExportStage& export_stage);
  ~FlowFolder();
  FlowFolder(const FlowFolder&) = delete;
  FlowFolder& operator=(const FlowFolder&) = delete;

  /// The flow-table lookups are memory bound, so packets pass through a
  /// short ring: a frame is decoded on arrival, in place into its ring slot
  /// (nextSlot(), then pushSlot()), hashed and its hash slot prefetched one
  /// frame later, its flow entry prefetched kEntryLag frames later, and it
  /// is folded into the cache when the ring is full, in capture order. The
  /// misses of consecutive packets overlap instead of being paid one after
  /// another (VPP style).
  ///
  /// Where the next frame is decoded to: its ring slot, written in place.
  [[gnu::always_inline]] probe::DecodedPacket& nextSlot() { return ring_[head_ & kRingMask].info; }
  /// Takes the frame in nextSlot(): decoded (the slot holds its fields, the
  /// key's ingress_if set) or not (it only moves the clock, as it would have).
  [[gnu::always_inline]] void pushSlot(uint64_t ts_ms, bool decoded) {
    Pending& p = ring_[head_ & kRingMask];
    p.ts_ms = ts_ms;
    p.stage = decoded ? Stage::kDecoded : Stage::kSkipped;
    enqueue();
  }

  /// A packet decoded elsewhere (the reader thread of a sharded pipeline, or
  /// the inner flow of a tunnel): it takes the same prefetching path.
  void onDecoded(const probe::DecodedPacket& info, uint64_t ts_ms, uint64_t hash) {
    Pending& p = ring_[head_ & kRingMask];
    p.info = info;
    p.ts_ms = ts_ms;
    p.hash = hash;
    p.stage = Stage::kHashed;
    cache_.prefetchSlot(hash);
    enqueue();
  }

  /// DPI: whether this folder inspects packets (PipelineOptions::dpi).
  bool inspecting() const { return inspector_ != nullptr; }
  /// DPI: the packet about to be pushed into nextSlot() has `size` bytes
  /// from its IP header at `l3`, valid only for now. They are kept with it
  /// (copied into its slot) until it is folded, when DPI may read them.
  /// Returns false when they are too long to keep: the caller then folds the
  /// ring (foldPending()) right after pushing, while `l3` is still valid.
  bool keepPacketBytes(const uint8_t* l3, size_t size) {
    Pending& p = ring_[head_ & kRingMask];
    p.dpi_size = static_cast<uint32_t>(size);
    if (size == 0) {
      p.dpi_bytes = nullptr;
      return true;
    }
    if (size > kDpiSlotBytes) {
      p.dpi_bytes = l3;
      return false;
    }
    uint8_t* slot = dpi_slots_.get() + (head_ & kRingMask) * kDpiSlotBytes;
    std::memcpy(slot, l3, size);
    p.dpi_bytes = slot;
    return true;
  }

  /// Recording: each frame folded is tagged with its flow (flow_tags.h).
  /// Only for frames that each make one flow (not tunnels `both`).
  void setFlowTags(recorder::FlowTags* tags) { tags_ = tags; }

  /// Folds the frames still in the ring into the cache (end of a capture
  /// read): afterwards every frame handed in has been accounted.
  void foldPending() {
    while (tail_ != head_) fold(ring_[tail_++ & kRingMask]);
  }

  /// Moves the clock (a live idle link: no packets, time still passes).
  void advanceClock(uint64_t now_ms);

  /// Hands whatever records are waiting to the export stage now, however few
  /// (live capture: a finished flow reaches the collector within a read
  /// timeout, not when a batch happens to fill). tick: even none, so that
  /// the exporters see the clock move (Exporter::exportBatch()).
  void handOffPending(bool tick = false) {
    if (!cache_.output().empty() || (tick && !backlog_)) handOff(false);
  }

  /// End of input or shutdown: what is pending is folded, every flow goes
  /// to the export stage (forced end) with a request to flush, and the
  /// counters are published with `decode` (those of whatever decoded the
  /// packets; none for a worker). Idempotent.
  void finish(const probe::DecodeCounters& decode = {}, uint64_t sampled_out = 0);

  /// Copies the counters for other threads, with `decode` and `sampled_out`
  /// as above (those of whatever decoded and sampled the packets).
  void publishStats(const probe::DecodeCounters& decode = {}, uint64_t sampled_out = 0);
  /// The last published counters (any thread).
  PipelineStats stats() const;

  // Views for the thread that owns the folder (and tests).
  const FlowCacheCounters& cacheCounters() const { return cache_.counters(); }
  const dpi::DpiCounters* dpiCounters() const { return inspector_ ? &inspector_->counters() : nullptr; }
  size_t activeFlows() const { return cache_.activeFlows(); }
  uint64_t nowMs() const { return now_ms_; }

 private:
  static constexpr uint64_t kRingSize = 16;  // power of two
  static constexpr uint64_t kRingMask = kRingSize - 1;
  static constexpr uint64_t kEntryLag = 8;
  // DPI: the bytes kept per ring slot (keepPacketBytes()): a whole IP
  // packet of a 1500-byte MTU link. Longer ones (jumbo frames, packets
  // coalesced by the capturing host's offloads) are read in place.
  static constexpr size_t kDpiSlotBytes = 1536;
  // Where a frame is on its way through the ring. A folded slot goes back
  // to kSkipped, so the stages below need not check that a slot holds a
  // frame still in the ring: an old one is skipped like an undecoded one.
  enum class Stage : uint8_t {
    kSkipped,  // not decoded (counted by the decoder), or already folded
    kDecoded,  // key set, not yet hashed
    kHashed,   // hash set, its slot prefetched
  };
  struct Pending {
    probe::DecodedPacket info;
    uint64_t ts_ms;
    uint64_t hash;
    Stage stage = Stage::kSkipped;
    // DPI only: the packet's bytes from its IP header (keepPacketBytes()).
    uint32_t dpi_size = 0;
    const uint8_t* dpi_bytes = nullptr;
  };
  [[gnu::always_inline]] void enqueue() {
    ++head_;
    // The key was written field by field by the decoder just now; hashing it
    // at once read those narrow stores back with 8-byte loads, which the CPU
    // cannot forward from its store buffer (a stall per word). A frame later
    // the stores have reached the cache.
    hashAndPrefetchSlot(ring_[(head_ - 2) & kRingMask]);
    const Pending& q = ring_[(head_ - 1 - kEntryLag) & kRingMask];
    if (q.stage == Stage::kHashed) cache_.prefetchEntry(q.hash);
    if (head_ - tail_ == kRingSize) fold(ring_[tail_++ & kRingMask]);
  }
  /// Hashes a decoded frame's key (once) and prefetches its hash slot.
  [[gnu::always_inline]] void hashAndPrefetchSlot(Pending& p) {
    if (p.stage != Stage::kDecoded) return;
    p.hash = hashFlowKey(p.info.key);
    p.stage = Stage::kHashed;
    cache_.prefetchSlot(p.hash);
  }
  /// Folds one frame: the clock advances (and expires flows) exactly as if
  /// each frame had been folded the moment it was read.
  [[gnu::always_inline]] void fold(Pending& p) {
    hashAndPrefetchSlot(p);  // the newest frame, when the ring is emptied by foldPending()
    if (p.ts_ms > now_ms_) advanceClock(p.ts_ms);
    if (p.stage == Stage::kHashed) {
      account(p);
      if (inspector_) [[unlikely]] inspectFolded(p);
      if (tags_) [[unlikely]] tags_->tag(cache_.lastFlowTag());
    } else if (tags_) [[unlikely]] {
      tags_->tag(recorder::FlowTags::kNoFlow);
    }
    p.stage = Stage::kSkipped;
  }
  void account(const Pending& p);
  /// DPI: the packet just folded goes to the inspector while its flow is
  /// under inspection (a test of its entry otherwise).
  void inspectFolded(Pending& p) {
    if (cache_.lastFlowInspecting()) inspector_->inspect(cache_, p.info.key, p.dpi_bytes, p.dpi_size, p.ts_ms);
    p.dpi_bytes = nullptr;
    p.dpi_size = 0;
  }
  void handOff(bool flush);
  void keepBacklog(ExportBatch& batch);

  PipelineOptions options_;
  recorder::FlowTags* tags_ = nullptr;  // recording: where each folded frame's flow goes
  std::array<Pending, kRingSize> ring_;
  uint64_t head_ = 0;  // frames written into the ring
  uint64_t tail_ = 0;  // frames folded
  FlowCache cache_;
  std::unique_ptr<dpi::FlowInspector> inspector_;  // DPI on: labels cache_'s records
  std::unique_ptr<uint8_t[]> dpi_slots_;           // DPI on: kRingSize slots of kDpiSlotBytes
  uint64_t now_ms_ = 0;

  ExportStage& export_stage_;
  // Set when finish() begins: from then on live hand-offs wait for room, until
  // stop_deadline_.
  bool finished_ = false;
  std::chrono::steady_clock::time_point stop_deadline_;
  // Live: records are waiting in cache_.output() for room in the queue.
  bool backlog_ = false;

  mutable std::mutex stats_mu_;
  PipelineStats published_;
};

/// One capture's pipeline: its decoder in front of a FlowFolder, both run
/// by the capture's thread (the packet thread). The shape for a live
/// capture, and for a file read with one worker. Satisfies FlowPipeline
/// (packet_sink.h).
class Pipeline {
 public:
  Pipeline(const PipelineOptions& options, int datalink, ExportStage& export_stage);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// One captured frame (packet thread), decoded at once into the folder's
  /// ring (see FlowFolder), folded into the cache a few frames later.
  [[gnu::always_inline]] void onPacket(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms) {
    if (sampling_) [[unlikely]] {
      if (!sampler_.select()) return;
    }
    probe::DecodedPacket& info = folder_.nextSlot();
    // Tunnel mode `both`: a decapsulated packet also updates its inner flow.
    probe::DecodedPacket* inner = both_ ? &inner_ : nullptr;
    const bool decoded = decoder_.decode(data, caplen, wirelen, ts_ms, info, inner) == probe::DecodeStatus::kOk;
    info.key.ingress_if = ingress_if_;
    if (inspecting_) [[unlikely]] {
      onPacketInspected(data, caplen, ts_ms, info, decoded);
      return;
    }
    folder_.pushSlot(ts_ms, decoded);
    if (both_ && decoded && inner_.tunnel_depth != 0) [[unlikely]] {
      inner_.key.ingress_if = ingress_if_;
      folder_.onDecoded(inner_, ts_ms, hashFlowKey(inner_.key));
    }
  }

  /// Folds the frames still in the ring (see FlowFolder::foldPending()).
  void foldPending() { folder_.foldPending(); }
  /// Recording: tags each frame with its flow for the recorder's index
  /// (flow_tags.h). False (nothing set) in tunnel mode `both`, where a frame
  /// can make two flows.
  bool setFlowTags(recorder::FlowTags* tags) {
    if (!acceptsFlowTags()) return false;
    folder_.setFlowTags(tags);
    return true;
  }
  /// Not with sampling either: a frame passed over is folded nowhere.
  bool acceptsFlowTags() const { return !both_ && !sampling_; }
  /// The capture's read burst ended: fold what is pending.
  void onBurstEnd() { foldPending(); }

  /// Moves the pipeline clock (a live idle link: no packets, time still passes).
  void advanceClock(uint64_t now_ms) { folder_.advanceClock(now_ms); }

  /// Hands whatever records are waiting to the export stage now, however few
  /// (live capture: a finished flow reaches the collector within a read
  /// timeout, not when a batch happens to fill).
  void handOffPending(bool tick = false) { folder_.handOffPending(tick); }

  /// End of input or shutdown: every flow goes to the export stage (forced
  /// end) with a request to flush. Idempotent. The packet thread calls it.
  void finish() { folder_.finish(decoder_.counters(), sampler_.passedOver()); }

  /// Copies the counters for other threads (packet thread, between reads).
  void publishStats() { folder_.publishStats(decoder_.counters(), sampler_.passedOver()); }
  /// The last published counters (any thread).
  PipelineStats stats() const { return folder_.stats(); }

  // Packet-thread views (tests, and the thread that owns the pipeline).
  const probe::DecodeCounters& decodeCounters() const { return decoder_.counters(); }
  const FlowCacheCounters& cacheCounters() const { return folder_.cacheCounters(); }
  size_t activeFlows() const { return folder_.activeFlows(); }
  uint64_t nowMs() const { return folder_.nowMs(); }

 private:
  probe::Decoder decoder_;
  bool both_;
  bool sampling_;
  Sampler sampler_;
  uint16_t ingress_if_;
  /// onPacket() with DPI on: the packet's bytes travel with it to the fold.
  void onPacketInspected(const uint8_t* data, uint32_t caplen, uint64_t ts_ms, probe::DecodedPacket& info,
                         bool decoded);

  probe::DecodedPacket inner_;  // mode both: the second flow of the packet being decoded
  FlowFolder folder_;
  bool inspecting_;
};

static_assert(FlowPipeline<Pipeline>, "a capture feeds a Pipeline (packet_sink.h)");

}  // namespace flowfold
