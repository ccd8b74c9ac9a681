#include "flowfold/flowcache/flow_cache.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace flowfold {

namespace {
constexpr uint32_t kWheelBuckets = 4096;  // power of two
constexpr uint32_t kNotFiled = 0xFFFFFFFF;   // detached: waiting in due_
constexpr uint32_t kFreeEntry = 0xFFFFFFFE;  // on the free list
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kProtoTcp = 6;
}  // namespace

struct FlowCache::Entry {
  FlowRecord rec;
  uint64_t interval_start_ms;  // start of the current active-timeout interval
  uint32_t wheel_prev;         // index + 1, 0 = none
  uint32_t wheel_next;         // index + 1, 0 = none (free list link when free)
  uint32_t bucket;             // wheel bucket, kNotFiled or kFreeEntry
};

size_t FlowCache::entryBytes() { return sizeof(Entry); }

FlowCache::FlowCache(const FlowCacheOptions& options) : options_(options) {
  if (options_.max_flows == 0) throw std::invalid_argument("max_flows must be at least 1");
  if (options_.max_flows > (1u << 30)) throw std::invalid_argument("max_flows must be at most 2^30");
  if (options_.idle_timeout_ms == 0 || options_.active_timeout_ms == 0)
    throw std::invalid_argument("timeouts must be at least 1 ms");
  if (options_.max_expiry_work == 0) options_.max_expiry_work = 1;

  // Raw storage: pages are touched only as entries are first used, so a
  // large max_flows costs address space, not resident memory.
  entries_ = static_cast<Entry*>(std::malloc(sizeof(Entry) * options_.max_flows));
  if (!entries_) throw std::bad_alloc();

  const uint64_t want = std::max<uint64_t>(1024, uint64_t{options_.max_flows} * 2);
  slots_.assign(std::bit_ceil(want), Slot{0, 0});
  slot_mask_ = slots_.size() - 1;

  const uint64_t horizon = std::max(options_.active_timeout_ms, options_.idle_timeout_ms);
  tick_ms_ = std::max<uint64_t>(1, (horizon + kWheelBuckets - 2) / (kWheelBuckets - 1));
  wheel_.assign(kWheelBuckets, 0);
}

FlowCache::~FlowCache() { std::free(entries_); }

FlowCache::Entry& FlowCache::entry(uint32_t index) { return entries_[index]; }

// ---------------------------------------------------------------- hash table

uint32_t FlowCache::findOrCreate(const FlowKey& key, uint64_t hash, uint64_t now_ms, bool& created) {
  const auto hash_hi = static_cast<uint32_t>(hash >> 32);
  uint64_t pos = hash & slot_mask_;
  for (;; pos = (pos + 1) & slot_mask_) {
    const Slot& s = slots_[pos];
    if (s.index1 == 0) break;
    if (s.hash_hi == hash_hi && entries_[s.index1 - 1].rec.key == key) {
      created = false;
      return s.index1 - 1;
    }
  }
  created = true;
  if (active_ >= options_.max_flows) {
    evictOne(now_ms);
    // Eviction may have shifted slots: find the insertion point again.
    pos = hash & slot_mask_;
    while (slots_[pos].index1 != 0) pos = (pos + 1) & slot_mask_;
  }
  const uint32_t index = allocateEntry();
  slots_[pos] = Slot{hash_hi, index + 1};
  ++active_;
  return index;
}

void FlowCache::eraseSlotOf(uint32_t index) {
  const Entry& e = entries_[index];
  uint64_t pos = hashFlowKey(e.rec.key) & slot_mask_;
  while (slots_[pos].index1 != index + 1) pos = (pos + 1) & slot_mask_;
  // Backward-shift deletion keeps probe chains unbroken without tombstones.
  uint64_t hole = pos;
  for (uint64_t next = (hole + 1) & slot_mask_; slots_[next].index1 != 0; next = (next + 1) & slot_mask_) {
    const uint64_t home = hashFlowKey(entries_[slots_[next].index1 - 1].rec.key) & slot_mask_;
    // Move `next` into the hole if its home is not in (hole, next].
    const bool home_between = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
    if (!home_between) {
      slots_[hole] = slots_[next];
      hole = next;
    }
  }
  slots_[hole] = Slot{0, 0};
}

uint32_t FlowCache::allocateEntry() {
  if (free_head_ != 0) {
    const uint32_t index = free_head_ - 1;
    free_head_ = entries_[index].wheel_next;
    return index;
  }
  assert(used_ < options_.max_flows);
  return used_++;
}

void FlowCache::releaseEntry(uint32_t index) {
  Entry& e = entries_[index];
  e.bucket = kFreeEntry;
  e.wheel_next = free_head_;
  free_head_ = index + 1;
  --active_;
}

// ---------------------------------------------------------------- packets

void FlowCache::update(const PacketSummary& p) {
  const uint64_t hash = hashFlowKey(p.key);
  bool created = false;
  const uint32_t index = findOrCreate(p.key, hash, p.ts_ms, created);
  Entry& e = entries_[index];
  FlowRecord& r = e.rec;
  if (created) {
    ++counters_.flows_created;
    new (&e) Entry{};
    r.key = p.key;
    r.first_ms = r.last_ms = p.ts_ms;
    e.interval_start_ms = p.ts_ms;
    if (!wheel_started_) {
      wheel_started_ = true;
      wheel_time_ = p.ts_ms / tick_ms_ * tick_ms_;
    }
    wheelInsert(index, deadlineOf(e));
  }
  if (r.packets == 0) {
    // First packet of the flow or of a new active-timeout interval.
    r.first_ms = r.last_ms = p.ts_ms;
    r.tos = p.tos;
    r.src_mac = p.src_mac;
    r.dst_mac = p.dst_mac;
    r.mpls_top_label = p.mpls_top_label;
    r.min_ttl = r.max_ttl = p.ttl;
    r.tcp_flags = 0;
  }
  ++r.packets;
  r.octets += p.ip_length;
  r.tcp_flags |= p.tcp_flags;
  r.first_ms = std::min(r.first_ms, p.ts_ms);
  r.last_ms = std::max(r.last_ms, p.ts_ms);
  r.min_ttl = std::min(r.min_ttl, p.ttl);
  r.max_ttl = std::max(r.max_ttl, p.ttl);
  ++counters_.packets;

  if (p.key.protocol == kProtoTcp && (p.tcp_flags & (kTcpFin | kTcpRst))) {
    ++counters_.ended_tcp;
    removeFlow(index, FlowEndReason::kEndOfFlow);
  }
}

void FlowCache::emit(Entry& e, FlowEndReason reason) {
  if (e.rec.packets == 0) return;  // nothing since the last active export
  e.rec.end_reason = reason;
  output_.push_back(e.rec);
  ++counters_.records;
}

void FlowCache::removeFlow(uint32_t index, FlowEndReason reason) {
  Entry& e = entries_[index];
  emit(e, reason);
  if (e.bucket != kNotFiled) wheelUnlink(index);
  eraseSlotOf(index);
  releaseEntry(index);
}

// ---------------------------------------------------------------- timer wheel

uint64_t FlowCache::deadlineOf(const Entry& e) const {
  return std::min(e.rec.last_ms + options_.idle_timeout_ms, e.interval_start_ms + options_.active_timeout_ms);
}

uint32_t FlowCache::bucketOf(uint64_t time_ms) const {
  return static_cast<uint32_t>((time_ms / tick_ms_) & (kWheelBuckets - 1));
}

void FlowCache::wheelInsert(uint32_t index, uint64_t deadline_ms) {
  // A deadline already past (clock went backwards) is filed in the next bucket due.
  const uint32_t b = bucketOf(std::max(deadline_ms, wheel_time_));
  Entry& e = entries_[index];
  e.bucket = b;
  e.wheel_prev = 0;
  e.wheel_next = wheel_[b];
  if (wheel_[b] != 0) entries_[wheel_[b] - 1].wheel_prev = index + 1;
  wheel_[b] = index + 1;
}

void FlowCache::wheelUnlink(uint32_t index) {
  Entry& e = entries_[index];
  if (e.wheel_prev != 0) {
    entries_[e.wheel_prev - 1].wheel_next = e.wheel_next;
  } else {
    wheel_[e.bucket] = e.wheel_next;
  }
  if (e.wheel_next != 0) entries_[e.wheel_next - 1].wheel_prev = e.wheel_prev;
  e.bucket = kNotFiled;
}

void FlowCache::reviewEntry(uint32_t index, uint64_t now_ms) {
  Entry& e = entries_[index];
  if (e.bucket != kNotFiled) return;  // removed (FIN/RST, eviction) while waiting
  const uint64_t idle_deadline = e.rec.last_ms + options_.idle_timeout_ms;
  const uint64_t active_deadline = e.interval_start_ms + options_.active_timeout_ms;
  if (idle_deadline <= now_ms) {
    if (e.rec.packets != 0) ++counters_.expired_idle;
    emit(e, FlowEndReason::kIdleTimeout);
    eraseSlotOf(index);
    releaseEntry(index);
    return;
  }
  if (active_deadline <= now_ms) {
    if (e.rec.packets != 0) ++counters_.expired_active;
    emit(e, FlowEndReason::kActiveTimeout);
    // The flow stays; the next record carries only what comes after now.
    e.rec.packets = 0;
    e.rec.octets = 0;
    e.interval_start_ms = now_ms;
  }
  wheelInsert(index, deadlineOf(e));
}

bool FlowCache::expire(uint64_t now_ms) {
  if (!wheel_started_) return false;
  uint32_t budget = options_.max_expiry_work;
  uint32_t buckets_scanned = 0;
  for (;;) {
    // Finish the bucket an earlier call left half done.
    while (due_pos_ < due_.size()) {
      if (budget == 0) return true;
      reviewEntry(due_[due_pos_++], due_now_);
      --budget;
    }
    due_.clear();
    due_pos_ = 0;
    // A bucket is due once every deadline it can hold has passed.
    if (wheel_time_ + tick_ms_ - 1 > now_ms) return false;
    if (buckets_scanned >= kWheelBuckets) {
      // The clock jumped past a whole rotation: every entry has been reviewed
      // once in this call, so skip the empty stretch.
      wheel_time_ = now_ms / tick_ms_ * tick_ms_;
      return false;
    }
    const uint32_t b = bucketOf(wheel_time_);
    for (uint32_t i = wheel_[b]; i != 0; i = entries_[i - 1].wheel_next) {
      entries_[i - 1].bucket = kNotFiled;
      due_.push_back(i - 1);
    }
    wheel_[b] = 0;
    due_now_ = now_ms;
    wheel_time_ += tick_ms_;
    ++buckets_scanned;
  }
}

void FlowCache::evictOne(uint64_t now_ms) {
  // Entries already taken off the wheel are the most overdue.
  while (due_pos_ < due_.size()) {
    const uint32_t index = due_[due_pos_++];
    if (entries_[index].bucket == kNotFiled) {
      ++counters_.evicted;
      removeFlow(index, FlowEndReason::kLackOfResources);
      return;
    }
  }
  // Otherwise the first entry of the earliest non-empty bucket: the flow
  // nearest its timeout, which is (approximately) the least recently seen.
  // Entries seen since they were filed are re-filed at their real deadline.
  uint64_t t = wheel_time_;
  for (uint32_t scanned = 0; scanned < 2 * kWheelBuckets; ++scanned, t += tick_ms_) {
    const uint32_t b = bucketOf(t);
    while (wheel_[b] != 0) {
      const uint32_t index = wheel_[b] - 1;
      Entry& e = entries_[index];
      const uint64_t deadline = deadlineOf(e);
      if (bucketOf(std::max(deadline, wheel_time_)) != b && deadline > t + tick_ms_ && scanned < kWheelBuckets) {
        wheelUnlink(index);
        wheelInsert(index, deadline);
        continue;
      }
      ++counters_.evicted;
      removeFlow(index, FlowEndReason::kLackOfResources);
      return;
    }
  }
  (void)now_ms;
}

void FlowCache::flushAll() {
  for (uint32_t index = 0; index < used_; ++index) {
    Entry& e = entries_[index];
    if (e.bucket == kFreeEntry) continue;
    if (e.rec.packets != 0) ++counters_.flushed;
    emit(e, FlowEndReason::kForcedEnd);
  }
  // Everything is gone: reset the structures wholesale instead of erasing
  // one slot at a time.
  std::fill(slots_.begin(), slots_.end(), Slot{0, 0});
  std::fill(wheel_.begin(), wheel_.end(), 0u);
  due_.clear();
  due_pos_ = 0;
  used_ = 0;
  free_head_ = 0;
  active_ = 0;
  wheel_started_ = false;
}

}  // namespace flowfold
