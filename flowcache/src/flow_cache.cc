#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/flowcache/wire.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdlib>
#include <new>
#include <stdexcept>

#include <sys/mman.h>

namespace flowfold {

namespace {
constexpr uint32_t kWheelBuckets = 2048;   // power of two
constexpr uint64_t kInitialSlots = 4096;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr size_t kPrefetchAhead = 8;
constexpr size_t kHugePage = 2u << 20;
// Whether a time difference fits the entry's 32-bit signed offsets.
constexpr bool fitsInt32(int64_t v) { return v == static_cast<int32_t>(v); }
}  // namespace

size_t FlowCache::entryBytes() {
  static_assert(sizeof(Entry) == 96, "the entry is the bulk of the memory per flow: keep it packed");
  // filedAt() tells ticks apart by their low kTickBits bits; a live entry is
  // filed at most one turn of the wheel ahead of the tick being reviewed.
  static_assert(2 * kWheelBuckets <= kTickMask + 1, "the filed tick's bits must cover two turns of the wheel");
  // The entry and its flow id beside it (flow_ids_).
  return sizeof(Entry) + sizeof(uint64_t);
}

FlowCache::FlowCache(const FlowCacheOptions& options) : options_(options) {
  if (options_.max_flows == 0) throw std::invalid_argument("max_flows must be at least 1");
  if (options_.max_flows > (1u << 30)) throw std::invalid_argument("max_flows must be at most 2^30");
  if (options_.idle_timeout_ms == 0 || options_.active_timeout_ms == 0)
    throw std::invalid_argument("timeouts must be at least 1 ms");
  if (options_.max_expiry_work == 0) options_.max_expiry_work = 1;
  static_assert(kTcpEndFlags == (kTcpFin | kTcpRst));
  tcp_end_ms_ = std::min(options_.tcp_end_timeout_ms, options_.idle_timeout_ms);

  // Raw storage: pages are touched only as entries are first used, so a
  // large max_flows costs address space, not resident memory.
  entries_bytes_ = (sizeof(Entry) * options_.max_flows + kHugePage - 1) / kHugePage * kHugePage;
  void* mem = mmap(nullptr, entries_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  // Lookups land on random entries: with 4 KiB pages nearly every one is also
  // a TLB miss. Huge pages (where the kernel offers them) remove most of those.
  madvise(mem, entries_bytes_, MADV_HUGEPAGE);
  entries_ = static_cast<Entry*>(mem);

  // The flow ids beside the entries, mapped the same way (see flow_ids_).
  flow_ids_bytes_ = (sizeof(uint64_t) * options_.max_flows + kHugePage - 1) / kHugePage * kHugePage;
  mem = mmap(nullptr, flow_ids_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    munmap(entries_, entries_bytes_);
    throw std::bad_alloc();
  }
  madvise(mem, flow_ids_bytes_, MADV_HUGEPAGE);
  flow_ids_ = static_cast<uint64_t*>(mem);
  if (options_.flow_id_stride == 0) options_.flow_id_stride = 1;
  next_flow_id_ = options_.flow_id_base + options_.flow_id_offset;

  // The table keeps its load at or under three quarters (8-byte slots with 32
  // hash bits: a probe rarely leaves the home cache line, and the table costs
  // 11 to 21 bytes a flow instead of 16 to 32 at one half); it starts small
  // (cache friendly) and doubles up to what max_flows needs.
  max_slots_ = std::bit_ceil(std::max<uint64_t>(kInitialSlots, (uint64_t{options_.max_flows} * 4 + 2) / 3));
  slots_ = SlotArray(std::min(kInitialSlots, max_slots_));
  slot_mask_ = slots_.size() - 1;

  const uint64_t horizon = std::max(options_.active_timeout_ms, options_.idle_timeout_ms);
  // A power of two, so a time becomes a tick with a shift, not a 64-bit
  // division on every packet.
  const uint64_t min_tick_ms = std::max<uint64_t>(1, (horizon + kWheelBuckets - 2) / (kWheelBuckets - 1));
  tick_shift_ = static_cast<unsigned>(std::countr_zero(std::bit_ceil(min_tick_ms)));
  wheel_.resize(kWheelBuckets);
}

FlowCache::~FlowCache() {
  munmap(entries_, entries_bytes_);
  munmap(flow_ids_, flow_ids_bytes_);
  if (mpls_stacks_ != nullptr) munmap(mpls_stacks_, mpls_stacks_bytes_);
}

// ---------------------------------------------------------------- hash table

FlowCache::SlotArray::SlotArray(size_t count) : size_(count) {
  // Huge pages from 2 MiB up; a smaller table (the first few doublings) is
  // not rounded up to one, which would zero 2 MiB for each of them.
  constexpr size_t kPage = 4096;
  const bool huge = count * sizeof(Slot) >= kHugePage;
  const size_t unit = huge ? kHugePage : kPage;
  bytes_ = (count * sizeof(Slot) + unit - 1) / unit * unit;
  void* mem = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  if (huge) madvise(mem, bytes_, MADV_HUGEPAGE);
  // Every page is touched at once (keys hash all over the table): fault them
  // in writable now, in one call, rather than one fault per page, and not
  // twice (a read maps the shared zero page, the write after it copies it).
  // Linux 5.14 and later; without it the pages fault in as they are used.
#ifdef MADV_POPULATE_WRITE
  madvise(mem, bytes_, MADV_POPULATE_WRITE);
#endif
  data_ = static_cast<Slot*>(mem);
}

FlowCache::SlotArray::~SlotArray() {
  if (data_ != nullptr) munmap(data_, bytes_);
}

void FlowCache::SlotArray::clear() {
  if (data_ != nullptr && madvise(data_, bytes_, MADV_DONTNEED) != 0) std::fill(data_, data_ + size_, Slot{0, 0});
}

uint32_t FlowCache::findOrCreate(const FlowKey& key, uint64_t hash, bool& created, uint64_t& slot_pos) {
  const auto hash_lo = static_cast<uint32_t>(hash);
  for (uint64_t pos = hash_lo & slot_mask_;; pos = (pos + 1) & slot_mask_) {
    const Slot& s = slots_[pos];
    if (s.index1 == 0) break;
    if (s.hash_lo == hash_lo && entries_[s.index1 - 1].key == key) {
      created = false;
      slot_pos = pos;
      return s.index1 - 1;
    }
  }
  created = true;
  if (counters_.flows_active >= options_.max_flows) evictOne();
  if ((counters_.flows_active + 1) * 4 > slots_.size() * 3 && slots_.size() < max_slots_) growTable();
  const uint32_t index = allocateEntry();
  slot_pos = insertSlot(hash_lo, index);
  if (++counters_.flows_active > counters_.flows_peak) counters_.flows_peak = counters_.flows_active;
  return index;
}

uint64_t FlowCache::insertSlot(uint32_t hash_lo, uint32_t index) {
  uint64_t pos = hash_lo & slot_mask_;
  while (slots_[pos].index1 != 0) pos = (pos + 1) & slot_mask_;
  slots_[pos] = Slot{hash_lo, index + 1};
  return pos;
}

void FlowCache::growTable() {
  SlotArray old = std::move(slots_);
  slots_ = SlotArray(old.size() * 2);
  slot_mask_ = slots_.size() - 1;
  for (const Slot& s : old)
    if (s.index1 != 0) insertSlot(s.hash_lo, s.index1 - 1);
}

bool FlowCache::findSlot(Filed flow, uint64_t& pos) const {
  for (pos = flow.hash_lo & slot_mask_;; pos = (pos + 1) & slot_mask_) {
    const Slot& s = slots_[pos];
    if (s.index1 == flow.index + 1 && s.hash_lo == flow.hash_lo) return true;
    if (s.index1 == 0) return false;
  }
}

void FlowCache::eraseSlotAt(uint64_t pos) {
  // Backward-shift deletion keeps probe chains unbroken without tombstones.
  uint64_t hole = pos;
  for (uint64_t next = (hole + 1) & slot_mask_; slots_[next].index1 != 0; next = (next + 1) & slot_mask_) {
    const uint64_t home = slots_[next].hash_lo & slot_mask_;
    // `next` may move into the hole unless its home lies in (hole, next]
    // (cyclically): that is, unless it sits fewer probes from its home than
    // the hole is from `next`.
    if (((next - home) & slot_mask_) >= ((next - hole) & slot_mask_)) {
      slots_[hole] = slots_[next];
      hole = next;
    }
  }
  slots_[hole] = Slot{0, 0};
}

uint32_t FlowCache::allocateEntry() {
  uint32_t index;
  if (free_head_ != 0) {
    index = free_head_ - 1;
    free_head_ = entries_[index].nextFree();
    // The free list is a chain through cold entries: fetch the next one now
    // (both its lines: a new flow writes all of it, and its flow id slot)
    // so the next new flow does not wait for it.
    if (free_head_ != 0) {
      const char* next = reinterpret_cast<const char*>(entries_ + (free_head_ - 1));
      prefetchWrite(next);
      prefetchWrite(next + sizeof(Entry) - 1);
      prefetchWrite(flow_ids_ + (free_head_ - 1));
    }
  } else {
    assert(used_ < options_.max_flows);
    index = used_++;
  }
  return index;
}

void FlowCache::releaseEntry(uint32_t index) {
  entries_[index].markFree(free_head_);
  free_head_ = index + 1;
  --counters_.flows_active;
}

// ---------------------------------------------------------------- packets

void FlowCache::startInterval(Entry& e, const CachePacket& p, uint64_t ts_ms) {
  const int64_t offset = static_cast<int64_t>(ts_ms - e.interval_start_ms);
  // A packet weeks away from the interval start (a clock jump) starts the
  // interval at its own time, so the offset always fits.
  if (!fitsInt32(offset)) e.interval_start_ms = ts_ms;
  e.last_offset_ms = static_cast<int32_t>(ts_ms - e.interval_start_ms);
  e.first_age_ms = 0;
  e.tos = p.tos;
  e.src_mac = p.src_mac;
  e.dst_mac = p.dst_mac;
  const bool mpls = mplsPresent(p.mpls_stack[0]);
  e.setHasMpls(mpls);
  if (mpls) [[unlikely]] keepMplsStack(static_cast<uint32_t>(&e - entries_), p.mpls_stack);
  e.min_ttl = e.max_ttl = p.ttl;
  e.tcp_flags = 0;
}

// Out of line: update() is flattened, and traffic without MPLS should not
// carry this (and the mapping) in its code.
[[gnu::noinline, gnu::cold]] void FlowCache::keepMplsStack(uint32_t index, const MplsStack& stack) {
  if (mpls_stacks_ == nullptr) [[unlikely]] {
    mpls_stacks_bytes_ = sizeof(MplsStack) * options_.max_flows;
    void* mem = mmap(nullptr, mpls_stacks_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
    mpls_stacks_ = static_cast<MplsStack*>(mem);
  }
  mpls_stacks_[index] = stack;
}

// update() and expire() run per packet and per flow coming due; flattened,
// every helper they call is inlined into them, so no call saves and restores
// registers on the hot path.
[[gnu::flatten]] void FlowCache::update(const CachePacket& p, uint64_t ts_ms, uint64_t hash) {
  bool created = false;
  uint64_t slot_pos = 0;  // stays valid below: nothing here moves a slot before the FIN/RST check
  const uint32_t index = findOrCreate(p.key, hash, created, slot_pos);
  const Filed flow{index, static_cast<uint32_t>(hash)};
  const bool tcp = p.key.protocol == kProtoTcp;
  Entry& e = entries_[index];
  bool created_here = created;
  if (p.tcp_flags & kTcpSyn) [[unlikely]] {
    if (!created && tcp && ending(e)) {
      // A SYN after this side's FIN or RST opens a new connection on the same
      // ports (a retransmitted SYN or SYN-ACK never follows a FIN): the old
      // flow ends here, and this packet starts a new one in the same entry.
      ++counters_.ended_tcp;
      ++counters_.tcp_end_reused;
      ++counters_.flows_created;
      emit(e, FlowEndReason::kEndOfFlow, true);
      assignFlowId(index);  // a new flow: a new id (after the old one's record)
      created_here = true;
      e.packets = 0;
      e.octets = 0;
      e.interval_start_ms = ts_ms;
      e.setInspecting(labeler_ != nullptr);
      // Its filing (the old flow's window) is earlier than any deadline of the
      // new flow: reviewEntry() files it again then.
    }
  }
  last_tag_ = (uint64_t{index} << 1) | (created_here ? 1 : 0);
  if (created) {
    ++counters_.flows_created;
    assignFlowId(index);
    // Every field is set here or by startInterval()/scheduleReview(): no zeroing pass
    // over the entry first (`Entry{}` compiled to a `rep stos`, a quarter of
    // update()'s time).
    e.key = p.key;
    e.packets = 0;
    e.octets = 0;
    e.interval_start_ms = ts_ms;
    if (!wheel_started_) {
      wheel_started_ = true;
      next_tick_ = tickOf(ts_ms);
    }
    startInterval(e, p, ts_ms);
    e.setInspecting(labeler_ != nullptr);
    // Filed below, once the packet's flags tell which deadline applies.
  } else if (e.packets == 0) {
    // First packet of a new active-timeout interval.
    startInterval(e, p, ts_ms);
  } else if (options_.split_interval_ms != 0 && crossesSplit(e, ts_ms)) [[unlikely]] {
    // The record so far stays in its interval; this packet starts the next.
    ++counters_.ended_active;
    emit(e, FlowEndReason::kActiveTimeout, false);
    e.packets = 0;
    e.octets = 0;
    e.interval_start_ms = ts_ms;
    startInterval(e, p, ts_ms);
  } else {
    const uint64_t last = std::max(e.lastMs(), ts_ms);
    const uint64_t first = std::min(e.firstMs(), ts_ms);
    const int64_t last_offset = static_cast<int64_t>(last - e.interval_start_ms);
    if (fitsInt32(last_offset) && last - first <= UINT32_MAX) {
      e.last_offset_ms = static_cast<int32_t>(last_offset);
      e.first_age_ms = static_cast<uint32_t>(last - first);
    } else {
      // The flow would span more than the offsets hold (weeks: only a jump of
      // the clock does that). Export what it has, as an active timeout would,
      // and let this packet start the next interval.
      ++counters_.ended_active;
      emit(e, FlowEndReason::kActiveTimeout, false);
      e.packets = 0;
      e.octets = 0;
      e.interval_start_ms = ts_ms;
      startInterval(e, p, ts_ms);
    }
  }
  ++e.packets;
  e.octets += p.ip_length;
  const uint8_t had_flags = e.tcp_flags;
  e.tcp_flags |= p.tcp_flags;
  e.min_ttl = std::min(e.min_ttl, p.ttl);
  e.max_ttl = std::max(e.max_ttl, p.ttl);
  ++counters_.packets_folded;

  if (tcp && (p.tcp_flags & (kTcpFin | kTcpRst))) [[unlikely]] {
    if (tcp_end_ms_ == 0) {
      // No tcp_end window: the flow ends at its FIN or RST.
      ++counters_.ended_tcp;
      if (created) {
        // Never filed: no stale filing to leave behind.
        eraseSlotAt(slot_pos);
        emit(e, FlowEndReason::kEndOfFlow, true);
        releaseEntry(index);
      } else {
        removeFlow(flow, slot_pos, FlowEndReason::kEndOfFlow);
      }
      return;
    }
    // The flow enters its tcp_end window: its deadline comes sooner than the
    // one it is filed for (once per flow; packets in the window only move it
    // later, as any packet does).
    if (!created && (had_flags & (kTcpFin | kTcpRst)) == 0) {
      scheduleReview(flow, deadlineOf(e));
      return;
    }
  }
  if (created) scheduleReview(flow, deadlineOf(e));
}

FlowEndReason FlowCache::endReasonOf(const Entry& e, FlowEndReason otherwise, uint64_t& counter) {
  if (ending(e)) {
    ++counters_.ended_tcp;
    return FlowEndReason::kEndOfFlow;
  }
  if (e.packets != 0) ++counter;
  return otherwise;
}

void FlowCache::emit(const Entry& e, FlowEndReason reason, bool last) {
  const auto index = static_cast<uint32_t>(&e - entries_);
  if (e.packets == 0) {  // nothing since the last active export
    if (labeler_ && last) [[unlikely]] labeler_->labelRecord(index, true, nullptr);
    return;
  }
  const uint64_t last_ms = e.lastMs();
  FlowRecord& r = output_.emplace_back(e.key, e.packets, e.octets, last_ms - e.first_age_ms, last_ms, mplsStackOf(e),
                                       e.src_mac, e.dst_mac, e.tcp_flags, e.tos, e.min_ttl, e.max_ttl, reason,
                                       flow_ids_[index]);
  if (labeler_) [[unlikely]] labeler_->labelRecord(index, last, &r);
  ++counters_.records;
}

void FlowCache::removeFlow(Filed flow, uint64_t slot_pos, FlowEndReason reason) {
  // The wheel keeps the stale filing; filedAt() and current() recognise it later.
  emit(entries_[flow.index], reason, true);
  eraseSlotAt(slot_pos);
  releaseEntry(flow.index);
}

// ---------------------------------------------------------------- timer wheel

bool FlowCache::crossesSplit(const Entry& e, uint64_t ts_ms) {
  if (ts_ms < split_start_ms_ || ts_ms >= split_end_ms_) {  // a division only when the interval changes
    split_start_ms_ = ts_ms - ts_ms % options_.split_interval_ms;
    split_end_ms_ = split_start_ms_ + options_.split_interval_ms;
  }
  return e.firstMs() < split_start_ms_;
}

uint64_t FlowCache::deadlineOf(const Entry& e) const {
  return std::min(e.lastMs() + idleTimeoutOf(e), e.interval_start_ms + options_.active_timeout_ms);
}

void FlowCache::scheduleReview(Filed flow, uint64_t deadline_ms) {
  // A deadline already past (the clock went backwards) goes in the next bucket due.
  // One beyond the wheel's span (packet times ahead of expire()'s clock) waits in
  // the last bucket of the turn and is filed again when that comes due: every
  // entry stays within one turn of next_tick_, where evictOne() and a skip
  // ahead in expire() can find it.
  const uint64_t tick = std::min(std::max(tickOf(deadline_ms), next_tick_), next_tick_ + kWheelBuckets - 1);
  entries_[flow.index].setFiledTick(tick);
  wheel_[tick & (kWheelBuckets - 1)].push_back(flow);
}

bool FlowCache::filedAt(uint32_t index, uint64_t tick) const {
  const Entry& e = entries_[index];
  // A live entry is filed within [tick, tick + kWheelBuckets] when the bucket
  // of `tick` is reviewed (or scanned by evictOne(), which looks at most two
  // turns ahead): the low kTickBits bits tell those ticks apart.
  return e.live() && e.filedTick() == (tick & kTickMask);
}

void FlowCache::reviewEntry(Filed flow, uint64_t now_ms, uint64_t tick) {
  Entry& e = entries_[flow.index];
  if (!e.live()) return;  // removed (FIN/RST, eviction) after it was filed
  if (e.filedTick() != (tick & kTickMask)) {
    // Filed for the next turn of the wheel (a deadline beyond its span, filed
    // while this bucket was being reviewed): keep it.
    if (((e.filedTick() - tick) & kTickMask) == kWheelBuckets) wheel_[tick & (kWheelBuckets - 1)].push_back(flow);
    return;
  }
  uint64_t slot_pos = 0;
  if (!findSlot(flow, slot_pos)) return;  // an earlier life's filing, at the same tick
  const uint64_t idle_deadline = e.lastMs() + idleTimeoutOf(e);
  const uint64_t active_deadline = e.interval_start_ms + options_.active_timeout_ms;
  if (idle_deadline <= now_ms) {
    // The idle timeout, or the end of the tcp_end window (reason 3).
    removeFlow(flow, slot_pos, endReasonOf(e, FlowEndReason::kIdleTimeout, counters_.ended_idle));
    return;
  }
  if (ending(e) && active_deadline <= now_ms) {
    // The active timeout comes in the window: the connection is over, so the
    // flow ends (reason 3) rather than staying for more.
    ++counters_.ended_tcp;
    removeFlow(flow, slot_pos, FlowEndReason::kEndOfFlow);
    return;
  }
  if (active_deadline <= now_ms) {
    if (e.packets != 0) ++counters_.ended_active;
    emit(e, FlowEndReason::kActiveTimeout, false);
    // The flow stays; the next record carries only what comes after now. Its
    // last packet time stays (the idle deadline), now relative to the new
    // start: less than an idle timeout (at most 7 days) before it. Should it
    // lie weeks after now (packet times ahead of the clock), the interval
    // starts at the last packet instead.
    const uint64_t last = e.lastMs();
    const int64_t last_offset = static_cast<int64_t>(last - now_ms);
    e.packets = 0;
    e.octets = 0;
    e.interval_start_ms = fitsInt32(last_offset) ? now_ms : last;
    e.last_offset_ms = static_cast<int32_t>(last - e.interval_start_ms);
  }
  scheduleReview(flow, deadlineOf(e));
}

[[gnu::flatten]] bool FlowCache::expire(uint64_t now_ms) {
  if (!wheel_started_) return false;
  uint32_t budget = options_.max_expiry_work;
  uint32_t buckets_scanned = 0;
  for (;;) {
    // Review the bucket taken off the wheel (perhaps by an earlier call).
    while (due_pos_ < due_.size()) {
      if (budget == 0) return true;
      // Entries come due in no useful order: fetch a few ahead, with the
      // hash slot that expiry erases.
      if (due_pos_ + kPrefetchAhead < due_.size()) {
        const Filed ahead = due_[due_pos_ + kPrefetchAhead];
        prefetchEntryLines(ahead.index);
        prefetchRead(&slots_[ahead.hash_lo & slot_mask_]);
        prefetchRead(flow_ids_ + ahead.index);  // read if it emits a record
      }
      reviewEntry(due_[due_pos_++], due_now_, due_tick_);
      --budget;
    }
    due_.clear();
    due_pos_ = 0;
    // A bucket is due once every deadline it can hold has passed.
    if (((next_tick_ + 1) << tick_shift_) - 1 > now_ms) return false;
    if (buckets_scanned >= kWheelBuckets) {
      // The clock jumped past a whole turn of the wheel: every entry has been
      // reviewed once in this call, so skip the empty stretch. The survivors
      // (deadlines after now_ms) may sit at ticks being skipped: file them
      // again from the new position.
      next_tick_ = tickOf(now_ms);
      std::vector<Filed> live;
      for (uint32_t b = 0; b < kWheelBuckets; ++b) {
        for (const Filed flow : wheel_[b]) {
          const Entry& e = entries_[flow.index];
          if (e.live() && (e.filedTick() & (kWheelBuckets - 1)) == b && current(flow)) live.push_back(flow);
        }
        wheel_[b].clear();
      }
      // A filing of an earlier life can be identical to the live one (same
      // hash, same bucket): keep one of each.
      const auto byIndex = [](Filed a, Filed b) { return a.index < b.index; };
      std::sort(live.begin(), live.end(), byIndex);
      live.erase(std::unique(live.begin(), live.end(), [](Filed a, Filed b) { return a.index == b.index; }), live.end());
      for (const Filed flow : live) scheduleReview(flow, deadlineOf(entries_[flow.index]));
      return false;
    }
    due_.swap(wheel_[next_tick_ & (kWheelBuckets - 1)]);
    due_tick_ = next_tick_;
    due_now_ = now_ms;
    ++next_tick_;
    ++buckets_scanned;
  }
}

void FlowCache::evictFlow(Filed flow, uint64_t slot_pos) {
  // A flow in its tcp_end window has ended already: only the wait for its
  // last packets is cut short, so it keeps reason 3 (counted in tcp_end_cut).
  const Entry& e = entries_[flow.index];
  if (ending(e)) ++counters_.tcp_end_cut;
  removeFlow(flow, slot_pos, endReasonOf(e, FlowEndReason::kLackOfResources, counters_.evicted));
}

void FlowCache::evictOne() {
  // Entries already taken off the wheel are the most overdue.
  while (due_pos_ < due_.size()) {
    const Filed flow = due_[due_pos_++];
    uint64_t slot_pos = 0;
    if (filedAt(flow.index, due_tick_) && findSlot(flow, slot_pos)) {
      evictFlow(flow, slot_pos);
      return;
    }
  }
  // Otherwise an entry of the earliest non-empty bucket: the flow nearest its
  // timeout, which is (approximately) the least recently seen. Entries seen
  // since they were filed move to the bucket of their real deadline first.
  for (uint64_t tick = next_tick_; tick < next_tick_ + 2 * kWheelBuckets; ++tick) {
    auto& bucket = wheel_[tick & (kWheelBuckets - 1)];
    while (!bucket.empty()) {
      const Filed flow = bucket.back();
      const uint32_t index = flow.index;
      if (!filedAt(index, tick)) {
        // Stale, or filed for a later turn: leave later turns in place.
        const Entry& e = entries_[index];
        if (e.live() && (e.filedTick() & (kWheelBuckets - 1)) == (tick & (kWheelBuckets - 1))) break;
        bucket.pop_back();
        continue;
      }
      bucket.pop_back();
      uint64_t slot_pos = 0;
      if (!findSlot(flow, slot_pos)) continue;  // an earlier life's filing
      const uint64_t real_tick = tickOf(deadlineOf(entries_[index]));
      // (In the turn's last bucket scheduleReview() would put it back here: evict it.)
      if (real_tick > tick && tick < next_tick_ + kWheelBuckets - 1) {
        scheduleReview(flow, deadlineOf(entries_[index]));
        continue;
      }
      evictFlow(flow, slot_pos);
      return;
    }
  }
  // Unreachable while the cache is full: every live entry is filed within one
  // turn of next_tick_.
  assert(false && "evictOne found no entry");
  // Never allocate past max_flows: evict any live entry.
  for (uint32_t index = 0; index < used_; ++index) {
    if (!entries_[index].live()) continue;
    const Filed flow{index, static_cast<uint32_t>(hashFlowKey(entries_[index].key))};
    uint64_t slot_pos = 0;
    if (findSlot(flow, slot_pos)) {
      evictFlow(flow, slot_pos);
      return;
    }
  }
}

void FlowCache::flushAll(size_t chunk, const std::function<void()>& hand_off) {
  for (uint32_t index = 0; index < used_; ++index) {
    Entry& e = entries_[index];
    if (!e.live()) continue;
    // A flow in its tcp_end window has ended: reason 3, as it would be later.
    emit(e, endReasonOf(e, FlowEndReason::kForcedEnd, counters_.flushed), true);
    if (output_.size() >= chunk) hand_off();
  }
  // Everything is gone: reset the structures wholesale instead of erasing
  // one slot at a time.
  slots_.clear();
  for (auto& bucket : wheel_) bucket.clear();
  due_.clear();
  due_pos_ = 0;
  used_ = 0;
  free_head_ = 0;
  counters_.flows_active = 0;
  wheel_started_ = false;
}

}  // namespace flowfold
