#pragma once
// The flow table: folds packets into flows and expires them.
//
// Layout (chosen for the per-packet path, where the cost is memory latency):
//  - entries live in one array, addressed by 32-bit index; a free list reuses
//    them without allocation, and pages are touched only when first used;
//  - an open-addressing hash table (linear probing, backward-shift deletion,
//    grows by doubling) maps a key's hash to an entry index; each slot keeps
//    the low 32 bits of the hash, so probing, deleting and rehashing never
//    touch an entry, and most mismatches are rejected without a key compare;
//  - a timer wheel of vectors of (index, hash) pairs orders entries by their
//    next possible deadline (min(last seen + idle, interval start + active)).
//    A packet never touches the wheel; when a bucket comes due each entry is
//    checked against its real deadline and either expired or filed again, its
//    hash slot fetched together with it. Removed entries leave stale filings
//    behind, recognised by the tick they were filed at (or, for a reused
//    entry filed at the same tick, by a hash that names no slot of it).
//    Expiry work per call is bounded.
//  - prefetchSlot()/prefetchEntry() let the caller overlap the cache misses of
//    a batch of packets (VPP style) before update() runs on each in order.
//
// Time is injected: every call takes `now_ms`, the caller's clock (packet
// timestamps in file mode), so runs over a capture are deterministic and tests
// drive the cache with plain numbers.

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "flowfold/flowcache/flow_record.h"
#include "flowfold/flowcache/cache_packet.h"
#include "flowfold/flowcache/prefetch.h"

namespace flowfold {

struct FlowCacheOptions {
  uint64_t active_timeout_ms = 60'000;
  uint64_t idle_timeout_ms = 15'000;
  uint32_t max_flows = 1'000'000;
  /// How long a TCP flow stays in the cache after its FIN or RST (counted
  /// from its last packet), so that the rest of the closing handshake (the
  /// last ACKs, a RST after the FIN, retransmitted FINs) joins it instead of
  /// starting flows of its own; then it ends with flowEndReason 3. 0 ends the
  /// flow at the FIN or RST itself. At most the idle timeout (longer acts as
  /// the idle timeout). 10 s: see README.md, "What flowfold measures".
  uint64_t tcp_end_timeout_ms = 10'000;
  /// Most entries examined by one expire() call, so a million flows timing
  /// out together never stall the packet path; the rest follow on later calls.
  uint32_t max_expiry_work = 4096;
  /// Flow ids (flowId, IPFIX 148): the n-th flow this cache creates (n from
  /// 0) gets flow_id_base + n * flow_id_stride + flow_id_offset. A cache of
  /// its own numbers its flows 1, 2, 3, ...; the probe gives its caches the
  /// same base and stride (the number of caches) and each its own offset (its
  /// index), so no two caches ever hand out the same id, without sharing a
  /// counter between threads. The base is a plain option: live capture takes
  /// the start time (ms << 16) so ids stay unique across restarts with no
  /// state file; reading a file, 1, so a capture always gives the same ids.
  uint64_t flow_id_base = 1;
  uint64_t flow_id_stride = 1;
  uint64_t flow_id_offset = 0;
  /// Not 0: no record spans a multiple of this (packet time since the
  /// epoch, so UTC-aligned). The first packet of a flow after a boundary
  /// ends the flow's record there, as an active timeout does (flowEndReason
  /// 2), and starts the next: every record's packets lie in one interval, so
  /// per-interval sums (per-minute graphs, accounting) are exact instead of
  /// counting a long flow's bytes at its start.
  uint64_t split_interval_ms = 0;
};

// The flow cache's counters, one line each: X(name, shown, help). The name
// is the field, the key in the stats line and the Prometheus name; `shown`
// says where the probe shows it (probe/src/stats.cc, metrics_families.cc):
//   kCount      stats line (always) and its own family flowfold_<name>_total
//   kGauge      stats line (always) and its own gauge flowfold_<name>
//   kSum        stats line only (always): the sum of the kEndReason counters
//   kEndReason  stats line (when not 0) and flowfold_flow_records_total{reason="<name>"}
//   kInternal   neither (the decoder's packets/decoded are what is shown)
// Adding a counter is one line here, and one row in README.md's counter table.
#define FLOWFOLD_FLOW_CACHE_COUNTERS(X)                                                         \
  X(packets_folded, kInternal, "Packets folded into flows (the decoder's packets are shown).") \
  X(flows_created, kCount, "Flows created in the cache.")                                      \
  X(flows_active, kGauge, "Flows in the cache now.")                                           \
  X(flows_peak, kGauge, "Most flows held in the cache at once.")                               \
  X(tcp_end_reused, kCount, "Flows ended by a SYN in their tcp_end window (port reuse).")          \
  X(tcp_end_cut, kCount, "Flows in their tcp_end window exported early: the cache was full.")       \
  X(records, kSum, "Flow records emitted in total (the sum of the end reasons).")              \
  X(ended_idle, kEndReason, "Idle timeout (IPFIX flowEndReason 1).")                           \
  X(ended_active, kEndReason, "Active timeout (flowEndReason 2): the flow stays in the cache.") \
  X(ended_tcp, kEndReason, "TCP FIN or RST, after the tcp_end window (flowEndReason 3).")       \
  X(evicted, kEndReason, "Cache full: lack of resources (flowEndReason 5).")                   \
  X(flushed, kEndReason, "End of input or shutdown: forced end (flowEndReason 4).")

struct FlowCacheCounters {
#define FLOWFOLD_FLOW_CACHE_FIELD(name, ...) uint64_t name = 0;
  FLOWFOLD_FLOW_CACHE_COUNTERS(FLOWFOLD_FLOW_CACHE_FIELD)
#undef FLOWFOLD_FLOW_CACHE_FIELD
};

/// Labels flows beside the cache (DPI, probe/dpi). The cache knows nothing
/// of how: it marks each new flow as under inspection, lets its owner ask
/// and clear that per packet (lastFlowInspecting(), endInspection()), and
/// asks the labeler for the label of every record it emits. An entry index
/// names a flow from its creation until its last record (`last`), after
/// which the index may be given to a new flow.
class FlowLabeler {
 public:
  virtual ~FlowLabeler() = default;
  /// The flow in entry `index` is leaving the cache or emitting a record:
  /// `record` (nullptr when the flow leaves with nothing to report since
  /// its last record) takes its label; `last`: the flow leaves the cache.
  virtual void labelRecord(uint32_t index, bool last, FlowRecord* record) = 0;
};

class FlowCache {
 public:
  explicit FlowCache(const FlowCacheOptions& options);
  ~FlowCache();
  FlowCache(const FlowCache&) = delete;
  FlowCache& operator=(const FlowCache&) = delete;

  /// Folds one packet into its flow (creating it, evicting if full).
  void update(const TimedCachePacket& packet) { update(packet, packet.ts_ms, hashFlowKey(packet.key)); }
  /// Same, with hash = hashFlowKey(packet.key) computed by the caller.
  void update(const TimedCachePacket& packet, uint64_t hash) { update(packet, packet.ts_ms, hash); }
  /// Same, for a packet seen at ts_ms.
  void update(const CachePacket& packet, uint64_t ts_ms, uint64_t hash);

  /// Which flow the last update() folded its packet into: its entry index
  /// times two, plus one when the packet started a new flow there (created,
  /// or a SYN reusing an ended flow's entry). Entries are reused only by new
  /// flows, so (index, new) follows a flow without reading its id: the
  /// packet recorder's index numbers flows by it (recorder/flow_tags.h).
  uint64_t lastFlowTag() const { return last_tag_; }

  /// DPI: every flow created from now on is under inspection until
  /// endInspection(), and `labeler` labels its records. Set before the
  /// first packet; nullptr (the default) costs a test per record.
  void setLabeler(FlowLabeler* labeler) { labeler_ = labeler; }
  /// Whether the flow of the last update() is still under inspection.
  bool lastFlowInspecting() const {
    const Entry& e = entries_[last_tag_ >> 1];
    return e.inspecting() && e.live();  // a flow ended by its first packet (FIN, no tcp_end window) is gone
  }
  /// The flow of the last update() needs no more of its packets inspected.
  void endInspection() { entries_[last_tag_ >> 1].setInspecting(false); }

  /// Hints for a batch: call prefetchSlot() for every packet of the batch,
  /// then prefetchEntry() for each, then update() for each.
  void prefetchSlot(uint64_t hash) const { prefetchRead(&slots_[hash & slot_mask_]); }
  [[gnu::always_inline]] void prefetchEntry(uint64_t hash) const {
    // The key sits within a few slots of its home at the table's load.
    const auto hash_lo = static_cast<uint32_t>(hash);
    for (uint64_t i = 0, pos = hash & slot_mask_; i < 4; ++i, pos = (pos + 1) & slot_mask_) {
      const Slot& s = slots_[pos];
      if (s.index1 == 0) return;
      if (s.hash_lo == hash_lo) {
        prefetchEntryLines(s.index1 - 1);
        return;
      }
    }
  }

  /// Expires flows whose idle or active timeout has passed at now_ms.
  /// Returns true when it stopped early because of max_expiry_work.
  bool expire(uint64_t now_ms);

  /// Exports every flow with reason forced-end and empties the cache.
  void flushAll() { flushAll(SIZE_MAX, [] {}); }
  /// The same, calling hand_off() each time output() holds `chunk` records,
  /// so the caller can move them out: with ten million flows in the cache,
  /// one output vector of all of them would double the peak memory.
  void flushAll(size_t chunk, const std::function<void()>& hand_off);

  /// Records produced so far (expired, ended, evicted, flushed). The caller
  /// moves them out (swap with an empty vector) and hands them to exporters.
  std::vector<FlowRecord>& output() { return output_; }

  size_t activeFlows() const { return counters_.flows_active; }
  size_t capacity() const { return options_.max_flows; }
  const FlowCacheCounters& counters() const { return counters_; }
  const FlowCacheOptions& options() const { return options_; }

  /// Bytes of memory per flow entry (the entry and its flow id), for the
  /// memory budget in the docs.
  static size_t entryBytes();

 private:
  /// Both cache lines of an entry (96 bytes at a 32-byte boundary: always
  /// exactly two): the fields a packet or an expiry touches are in both.
  void prefetchEntryLines(uint32_t index) const {
    const char* p = reinterpret_cast<const char*>(entries_ + index);
    prefetchRead(p);
    prefetchRead(p + sizeof(Entry) - 1);
  }
  /// Gives the flow in entry `index` the next id (a new flow: created, or a
  /// SYN reusing the entry of an ended one).
  void assignFlowId(uint32_t index) {
    flow_ids_[index] = next_flow_id_;
    next_flow_id_ += options_.flow_id_stride;
  }

  // Low bits of the wheel tick an entry is filed at, kept in the entry.
  // Enough to tell "filed at this tick" from every other tick a live entry
  // can be filed at (all within one turn of the wheel: see filedAt()).
  static constexpr unsigned kTickBits = 12;
  static constexpr uint32_t kTickMask = (1u << kTickBits) - 1;
  // Set in an entry whose flow carries MPLS: its label stack entries are in
  // mpls_stacks_ at the entry's index (they do not fit in the entry).
  static constexpr uint32_t kHasMpls = 1u << kTickBits;
  // Set in an entry whose flow is under inspection (setLabeler()).
  static constexpr uint32_t kInspecting = 2u << kTickBits;

  // 96 bytes, so that an entry never straddles a third cache line (at most
  // 128 bytes per flow with the hash table and the wheel): the record's
  // fields, the two timestamps as 32-bit offsets from the interval start (a
  // flow whose span would overflow them, which only a clock jump of weeks
  // can cause as timeouts are at most 7 days, is exported first). The key's
  // hash is not kept: the wheel carries it (see Filed).
  struct Entry {
    FlowKey key;                 // 44
    uint32_t mpls_and_tick;      // kHasMpls (stack in mpls_stacks_) | kInspecting | filed tick (kTickBits)
    uint64_t packets;            // in the current active-timeout interval
    uint64_t octets;
    uint64_t interval_start_ms;  // start of the current active-timeout interval
    int32_t last_offset_ms;      // last packet time - interval_start_ms
    uint32_t first_age_ms;       // last packet time - first packet time; free: the free list link
    std::array<uint8_t, 6> src_mac;
    std::array<uint8_t, 6> dst_mac;
    uint8_t tcp_flags;
    uint8_t tos;
    uint8_t min_ttl;             // a free entry has min_ttl > max_ttl, which a flow never has
    uint8_t max_ttl;

    bool live() const { return min_ttl <= max_ttl; }
    void markFree(uint32_t next_free) {
      setInspecting(false);
      min_ttl = 1;
      max_ttl = 0;
      first_age_ms = next_free;  // index + 1; 0 = end of the list
    }
    uint32_t nextFree() const { return first_age_ms; }
    bool hasMpls() const { return (mpls_and_tick & kHasMpls) != 0; }
    void setHasMpls(bool on) { mpls_and_tick = (on ? kHasMpls : 0) | (mpls_and_tick & ~kHasMpls); }
    bool inspecting() const { return (mpls_and_tick & kInspecting) != 0; }
    void setInspecting(bool on) { mpls_and_tick = (on ? kInspecting : 0) | (mpls_and_tick & ~kInspecting); }
    uint32_t filedTick() const { return mpls_and_tick & kTickMask; }
    void setFiledTick(uint64_t tick) {
      mpls_and_tick = (mpls_and_tick & ~kTickMask) | (static_cast<uint32_t>(tick) & kTickMask);
    }
    uint64_t lastMs() const { return interval_start_ms + static_cast<int64_t>(last_offset_ms); }
    uint64_t firstMs() const { return lastMs() - first_age_ms; }
  };
  struct Slot {
    uint32_t hash_lo;  // low 32 bits of the key hash (home slot = hash_lo & mask)
    uint32_t index1;   // entry index + 1; 0 = empty
  };
  // The hash table's storage: anonymous memory, with huge pages where the
  // kernel offers them (lookups land on random slots; with 4 KiB pages each
  // is also a TLB miss, and a prefetch waits for the page walk), zeroed by
  // the kernel (an empty slot is all zeros).
  class SlotArray {
   public:
    SlotArray() = default;
    explicit SlotArray(size_t count);
    ~SlotArray();
    SlotArray(SlotArray&& other) noexcept { swap(other); }
    SlotArray& operator=(SlotArray&& other) noexcept {
      swap(other);
      return *this;
    }
    Slot& operator[](size_t i) { return data_[i]; }
    const Slot& operator[](size_t i) const { return data_[i]; }
    size_t size() const { return size_; }
    const Slot* begin() const { return data_; }
    const Slot* end() const { return data_ + size_; }
    /// Every slot empty again (the pages go back to the kernel).
    void clear();

   private:
    void swap(SlotArray& other) noexcept {
      std::swap(data_, other.data_);
      std::swap(size_, other.size_);
      std::swap(bytes_, other.bytes_);
    }
    Slot* data_ = nullptr;
    size_t size_ = 0;
    size_t bytes_ = 0;
  };

  // A wheel entry: the flow's index and the low 32 bits of its key hash, so
  // that expiry fetches the flow's hash slot at the same time as its entry
  // (not after it, from a hash kept in the entry), and the entry is 8 bytes
  // smaller. A filing left behind by an earlier life of the entry (the flow
  // ended on FIN/RST and the entry was reused) can carry the same tick: its
  // hash then names no slot of this index, which is how it is told apart.
  struct Filed {
    uint32_t index;
    uint32_t hash_lo;
  };

  /// The flow's entry index, created if new (evicting when full); slot_pos
  /// is where its hash slot is.
  uint32_t findOrCreate(const FlowKey& key, uint64_t hash, bool& created, uint64_t& slot_pos);
  uint64_t insertSlot(uint32_t hash_lo, uint32_t index);
  /// Where the slot of `flow` is; false when there is none (a stale filing).
  bool findSlot(Filed flow, uint64_t& pos) const;
  void eraseSlotAt(uint64_t pos);
  /// Whether the hash of `flow` is the live entry's, not an earlier life's.
  bool current(Filed flow) const {
    uint64_t pos;
    return findSlot(flow, pos);
  }
  void growTable();
  uint32_t allocateEntry();
  void releaseEntry(uint32_t index);
  /// The flow's record (if it has packets since its last one); `last`: the
  /// flow leaves the cache (the labeler is told even without a record).
  void emit(const Entry& e, FlowEndReason reason, bool last);
  /// Sets the fields a flow's first packet (of an interval) gives it.
  void startInterval(Entry& e, const CachePacket& p, uint64_t ts_ms);
  /// Keeps the MPLS stack of the flow in entry `index` (allocating the side
  /// array on the first flow with MPLS).
  void keepMplsStack(uint32_t index, const MplsStack& stack);
  /// The stack of the flow in `e` (all 0 without MPLS).
  MplsStack mplsStackOf(const Entry& e) const {
    return e.hasMpls() ? mpls_stacks_[&e - entries_] : MplsStack{};
  }
  /// Exports and frees the flow whose slot is at `slot_pos`.
  void removeFlow(Filed flow, uint64_t slot_pos, FlowEndReason reason);
  void evictOne();
  /// Exports and frees `flow` to make room.
  void evictFlow(Filed flow, uint64_t slot_pos);
  /// Whether the flow has seen a FIN or RST in its current interval: it is in
  /// its tcp_end window (only while tcp_end_ms_ != 0; at 0 it is gone).
  static bool ending(const Entry& e) {
    return (e.tcp_flags & kTcpEndFlags) != 0 && e.key.protocol == 6 && e.packets != 0;
  }
  /// The idle timeout that applies to the flow now (shorter in its window).
  uint64_t idleTimeoutOf(const Entry& e) const { return ending(e) ? tcp_end_ms_ : options_.idle_timeout_ms; }
  /// The end reason, and its counter, of a flow exported by expiry or flush.
  FlowEndReason endReasonOf(const Entry& e, FlowEndReason otherwise, uint64_t& counter);

  // timer wheel
  uint64_t deadlineOf(const Entry& e) const;
  /// split_interval_ms: true when the packet at ts_ms is in a later interval
  /// than the first packet of the flow's current record.
  bool crossesSplit(const Entry& e, uint64_t ts_ms);
  /// Files `flow` in the wheel bucket of `deadline_ms`, where reviewEntry()
  /// examines it when that bucket comes due.
  void scheduleReview(Filed flow, uint64_t deadline_ms);
  /// Whether the entry `index`, found in the bucket of `tick`, is live and
  /// filed at that tick (by this life or, rarely, an earlier one: current()).
  bool filedAt(uint32_t index, uint64_t tick) const;
  /// Examines one entry that came due at `tick`: expires it or files it again.
  void reviewEntry(Filed flow, uint64_t now_ms, uint64_t tick);

  static constexpr uint8_t kTcpEndFlags = 0x05;  // FIN | RST

  FlowCacheOptions options_;
  uint64_t tcp_end_ms_ = 0;  // min(tcp_end_timeout_ms, idle_timeout_ms); 0 = end at the FIN/RST
  std::vector<FlowRecord> output_;
  FlowCacheCounters counters_;

  // entries
  Entry* entries_ = nullptr;  // raw storage for max_flows entries, touched lazily
  size_t entries_bytes_ = 0;
  uint32_t used_ = 0;         // entries ever handed out (bump pointer)
  uint32_t free_head_ = 0;    // free list (index + 1; 0 = empty)
  // MPLS label stacks, by entry index, valid where the entry has kHasMpls.
  // Mapped on the first flow with MPLS (pages touched as used), so traffic
  // without MPLS costs no memory and no work beyond a test per new flow.
  MplsStack* mpls_stacks_ = nullptr;
  size_t mpls_stacks_bytes_ = 0;
  // Flow ids, by entry index, written when a flow is created and read when it
  // emits a record. Beside the entries, not in them: the 96-byte entry is
  // full, and a third cache line per entry would cost every packet, where
  // this line is touched only by new flows and records (and prefetched with
  // the entry there: allocateEntry(), expire()). Mapped with the entries
  // (address space for max_flows, pages touched as used).
  uint64_t* flow_ids_ = nullptr;
  size_t flow_ids_bytes_ = 0;
  uint64_t last_tag_ = 0;  // lastFlowTag()
  FlowLabeler* labeler_ = nullptr;
  uint64_t next_flow_id_ = 0;  // flow_id_base + flow_id_offset, then + flow_id_stride per flow

  // hash table
  SlotArray slots_;
  uint64_t slot_mask_ = 0;
  uint64_t max_slots_ = 0;

  // timer wheel: a ring of buckets, each a vector of flows
  std::vector<std::vector<Filed>> wheel_;
  unsigned tick_shift_ = 0;     // a tick lasts 2^tick_shift_ ms
  uint64_t tickOf(uint64_t ms) const { return ms >> tick_shift_; }
  uint64_t next_tick_ = 0;      // the next tick (tickOf(time)) to process
  // split_interval_ms: the interval the last packet fell in, [start, end).
  uint64_t split_start_ms_ = 0, split_end_ms_ = 0;
  bool wheel_started_ = false;
  std::vector<Filed> due_;      // a bucket taken off the wheel, being reviewed
  size_t due_pos_ = 0;          // how far an interrupted expire() got in due_
  uint64_t due_now_ = 0;
  uint64_t due_tick_ = 0;
};

}  // namespace flowfold
