#include "flowfold/probe/fragment_table.h"

#include <bit>
#include <cstring>

namespace flowfold::probe {

FragmentTable::FragmentTable(Config config) : timeout_ms_(config.timeout_ms) {
  uint32_t capacity = config.capacity < kWays ? kWays : config.capacity;
  uint32_t buckets = std::bit_ceil(capacity / kWays + (capacity % kWays != 0 ? 1 : 0));
  bucket_mask_ = buckets - 1;
  entries_ = std::make_unique<Entry[]>(static_cast<size_t>(buckets) * kWays);
}

FragmentTable::Entry* FragmentTable::bucket(const Key& key) const {
  // Keys are 44 bytes: five 8-byte words and one 4-byte word, multiply-mixed.
  uint64_t h = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&key);
  for (size_t i = 0; i + 8 <= sizeof(Key); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  uint32_t tail;
  std::memcpy(&tail, bytes + sizeof(Key) - 4, 4);
  h = (h ^ tail) * 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 32;
  return &entries_[(h & bucket_mask_) * kWays];
}

bool FragmentTable::insert(const Key& key, const Value& value, uint64_t now_ms) {
  Entry* ways = bucket(key);
  Entry* victim = nullptr;
  int victim_rank = 3;
  for (uint32_t i = 0; i < kWays; ++i) {
    Entry& e = ways[i];
    if (e.used && std::memcmp(&e.key, &key, sizeof(Key)) == 0) {
      victim = &e;  // same datagram (or a reused id): refresh in place
      victim_rank = 0;
      break;
    }
    int r = rank(e, now_ms);
    if (r < victim_rank || (r == victim_rank && r != 0 && e.ts_ms < victim->ts_ms)) {
      victim = &e;
      victim_rank = r;
    }
  }
  victim->key = key;
  victim->value = value;
  victim->used = true;
  victim->complete = false;
  victim->ts_ms = now_ms;
  return victim_rank == 2;
}

bool FragmentTable::find(const Key& key, uint64_t now_ms, Value& value, bool last_fragment) {
  Entry* ways = bucket(key);
  for (uint32_t i = 0; i < kWays; ++i) {
    Entry& e = ways[i];
    if (live(e, now_ms) && std::memcmp(&e.key, &key, sizeof(Key)) == 0) {
      value = e.value;
      if (last_fragment) e.complete = true;
      return true;
    }
  }
  return false;
}

}  // namespace flowfold::probe
