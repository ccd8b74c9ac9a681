// Flow-table micro-benchmarks: ns per key hashed, per packet folded, per flow
// expired (items_per_second).
//
// Table sizes are 1k, 100k and 1M active flows. The keys of a lookup come in a
// random order (a fixed shuffle), so above the CPU caches every packet pays
// for a hash slot and a flow entry fetched from DRAM: the memory-latency
// effect the pipeline's prefetching ring exists for.
//
//  BM_HashFlowKey                      hashFlowKey() over 1024 mixed IPv4/IPv6 keys
//  BM_FlowCacheHarness/N               the hit loop without the table: next index, key, hash
//  BM_FlowCacheHit/N                   update() of an existing flow, plain (no ring)
//  BM_FlowCacheHitRing/N               the same packets through the pipeline's 16-deep ring,
//                                      no prefetch (control: the ring's own cost)
//  BM_FlowCacheHitRingPrefetch/N       the pipeline's pattern: prefetchSlot() on arrival,
//                                      prefetchEntry() 8 packets later, update() 15 later
//  BM_FlowCacheInsert/N                update() of a new flow while N flows are active; the
//                                      oldest flows idle out (expire() runs every 256 new
//                                      flows, outside the timing), so N stays steady and a new
//                                      flow takes an entry freed by expiry, as in the probe
//  BM_FlowCacheExpire/N                expire() of N flows all due at once, per flow: review,
//                                      emit the record, erase the slot, free the entry

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "flowfold/flowcache/flow_cache.h"

namespace {

using flowfold::FlowCache;
using flowfold::FlowCacheOptions;
using flowfold::FlowKey;
using flowfold::TimedCachePacket;

constexpr uint64_t kBaseMs = 1'700'000'000'000ULL;

/// Makes `k` the key of flow i: a distinct IPv4/UDP key for every 32-bit i
/// (UDP: no FIN/RST ends a flow). Only the two addresses change, each written
/// as one 8-byte word: hashFlowKey() reads the key in 8-byte words, and
/// narrower stores just before would cost a store-forwarding stall per word,
/// a benchmark artifact of tens of ns that would swamp the table's own cost.
void setKey(FlowKey& k, uint32_t i) {
  const uint64_t src = __builtin_bswap32(10u << 24 | (i & 0xFFFFFF));  // 10.(i>>16).(i>>8).i
  const uint64_t dst = __builtin_bswap32(172u << 24 | 16u << 16 | (i >> 24) << 8 | 1);
  std::memcpy(k.src_addr.data(), &src, 8);  // the 4 address bytes and 4 zeros
  std::memcpy(k.dst_addr.data(), &dst, 8);
}

FlowKey keyFor(uint32_t i) {
  FlowKey k{};
  k.ip_version = 4;
  k.protocol = 17;
  k.src_port = 40000;
  k.dst_port = 53;
  setKey(k, i);
  return k;
}

TimedCachePacket packetTemplate() {
  TimedCachePacket p;
  p.key = keyFor(0);
  p.ts_ms = kBaseMs;
  p.ip_length = 120;
  p.ttl = 64;
  p.src_mac = {0x00, 0x50, 0x56, 1, 2, 3};
  p.dst_mac = {0x00, 0x16, 0x3e, 4, 5, 6};
  return p;
}

std::vector<uint32_t> shuffled(uint32_t n, uint64_t seed) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

// ---------------------------------------------------------------- hashing

void BM_HashFlowKey(benchmark::State& state) {
  std::vector<FlowKey> keys(1024);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < keys.size(); ++i) {
    FlowKey& k = keys[i];
    k = keyFor(static_cast<uint32_t>(rng()));
    if (i % 4 == 3) {  // a quarter IPv6, as flowgen's traffic
      k.ip_version = 6;
      for (auto& b : k.src_addr) b = static_cast<uint8_t>(rng());
      for (auto& b : k.dst_addr) b = static_cast<uint8_t>(rng());
    }
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(flowfold::hashFlowKey(keys[i]));
    i = (i + 1) & 1023;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HashFlowKey);

// ---------------------------------------------------------------- hits

/// A cache holding n flows (keys 0..n-1, created in that order, so flow i sits
/// in entry i) and a random order to look them up in. Shared by the three hit
/// benchmarks and by the repeated runs of each (hits change only counters).
struct HitFixture {
  std::unique_ptr<FlowCache> cache;
  std::vector<uint32_t> order;
};

HitFixture& hitFixture(uint32_t n) {
  static std::map<uint32_t, HitFixture> fixtures;
  HitFixture& f = fixtures[n];
  if (!f.cache) {
    FlowCacheOptions o;
    o.max_flows = n;
    o.idle_timeout_ms = o.active_timeout_ms = 24 * 3'600'000ULL;  // nothing expires
    f.cache = std::make_unique<FlowCache>(o);
    TimedCachePacket p = packetTemplate();
    for (uint32_t i = 0; i < n; ++i) {
      setKey(p.key, i);
      f.cache->update(p);
    }
    f.order = shuffled(n, n);
  }
  return f;
}

void BM_FlowCacheHit(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  HitFixture& f = hitFixture(n);
  FlowCache& cache = *f.cache;
  TimedCachePacket p = packetTemplate();
  size_t pos = 0;
  for (auto _ : state) {
    setKey(p.key, f.order[pos]);
    if (++pos == n) pos = 0;
    cache.update(p, flowfold::hashFlowKey(p.key));
  }
  state.SetItemsProcessed(state.iterations());
  if (cache.activeFlows() != n) state.SkipWithError("a lookup created a flow");
}

/// The pipeline's ring (probe/include/flowfold/probe/pipeline.h): 16 deep,
/// slot prefetched on arrival, entry prefetched kEntryLag (8) packets later,
/// folded when the ring is full (15 packets after arrival).
template <bool kPrefetch>
void hitRing(benchmark::State& state) {
  constexpr uint64_t kRingSize = 16, kRingMask = kRingSize - 1, kEntryLag = 8;
  struct Pending {
    TimedCachePacket p;
    uint64_t hash;
  };
  const auto n = static_cast<uint32_t>(state.range(0));
  HitFixture& f = hitFixture(n);
  FlowCache& cache = *f.cache;
  std::array<Pending, kRingSize> ring;
  for (auto& r : ring) r.p = packetTemplate();
  uint64_t head = 0, tail = 0;
  size_t pos = 0;
  for (auto _ : state) {
    Pending& in = ring[head & kRingMask];
    setKey(in.p.key, f.order[pos]);
    if (++pos == n) pos = 0;
    in.hash = flowfold::hashFlowKey(in.p.key);
    if constexpr (kPrefetch) cache.prefetchSlot(in.hash);
    ++head;
    if (head - tail > kEntryLag) {
      if constexpr (kPrefetch) cache.prefetchEntry(ring[(head - 1 - kEntryLag) & kRingMask].hash);
    }
    if (head - tail == kRingSize) {
      const Pending& out = ring[tail++ & kRingMask];
      cache.update(out.p, out.hash);
    }
  }
  while (tail != head) {
    const Pending& out = ring[tail++ & kRingMask];
    cache.update(out.p, out.hash);
  }
  state.SetItemsProcessed(state.iterations());
  if (cache.activeFlows() != n) state.SkipWithError("a lookup created a flow");
}

void BM_FlowCacheHitRing(benchmark::State& state) { hitRing<false>(state); }
void BM_FlowCacheHitRingPrefetch(benchmark::State& state) { hitRing<true>(state); }

/// The loop of the hit benchmarks without the table: next index, key, hash.
/// Part of every row above; subtract it for the table's own cost.
void BM_FlowCacheHarness(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  HitFixture& f = hitFixture(n);
  TimedCachePacket p = packetTemplate();
  size_t pos = 0;
  for (auto _ : state) {
    setKey(p.key, f.order[pos]);
    if (++pos == n) pos = 0;
    benchmark::DoNotOptimize(flowfold::hashFlowKey(p.key));
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_FlowCacheHarness)->Arg(1'000)->Arg(1'000'000);
BENCHMARK(BM_FlowCacheHit)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_FlowCacheHitRing)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_FlowCacheHitRingPrefetch)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// ---------------------------------------------------------------- inserts

/// A cache in a steady state of n active flows: flow i arrives at base + i ms
/// and idles out n ms later. Kept across the repeated runs of a size (the
/// state stays steady), so 1M flows are set up once.
struct InsertFixture {
  std::unique_ptr<FlowCache> cache;
  uint32_t next = 0;  // the next new flow's key index (and ms offset)
};

constexpr uint32_t kExpireEvery = 256;

InsertFixture& insertFixture(uint32_t n) {
  static std::map<uint32_t, InsertFixture> fixtures;
  InsertFixture& f = fixtures[n];
  if (!f.cache) {
    FlowCacheOptions o;
    o.idle_timeout_ms = n;
    o.active_timeout_ms = 2ULL * n;
    // Room for the flows that arrive between two expire() calls and for the
    // wheel's tick granularity (active / 4095 ms): nothing is ever evicted.
    o.max_flows = n + n / 1000 + 4 * kExpireEvery + 1024;
    f.cache = std::make_unique<FlowCache>(o);
    TimedCachePacket p = packetTemplate();
    for (; f.next < 2 * n; ++f.next) {  // one full turnover: entries come from the free list
      setKey(p.key, f.next);
      p.ts_ms = kBaseMs + f.next;
      f.cache->update(p);
      if (f.next % kExpireEvery == 0) {
        f.cache->expire(p.ts_ms);
        f.cache->output().clear();
      }
    }
  }
  return f;
}

void BM_FlowCacheInsert(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  InsertFixture& f = insertFixture(n);
  FlowCache& cache = *f.cache;
  TimedCachePacket p = packetTemplate();
  const uint64_t created_before = cache.counters().flows_created;
  for (auto _ : state) {
    setKey(p.key, f.next);
    p.ts_ms = kBaseMs + f.next;
    cache.update(p, flowfold::hashFlowKey(p.key));
    if (++f.next % kExpireEvery == 0) {
      state.PauseTiming();
      while (cache.expire(p.ts_ms)) cache.output().clear();
      cache.output().clear();
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["active_flows"] = static_cast<double>(cache.activeFlows());
  if (cache.counters().flows_created - created_before != static_cast<uint64_t>(state.iterations()) || cache.counters().evicted != 0)
    state.SkipWithError("not every packet created a flow, or the cache evicted");
}
BENCHMARK(BM_FlowCacheInsert)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// ---------------------------------------------------------------- expiry

/// Each iteration (untimed) fills the cache with n flows whose last packets
/// are spread at random over 10 s, so the wheel holds them in no particular
/// entry order; then (timed) expire() runs, in calls of at most
/// max_expiry_work (4096) entries as the pipeline makes them, until all are
/// gone. The records are dropped between calls (the pipeline hands them off).
void BM_FlowCacheExpire(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  constexpr uint64_t kSpreadMs = 10'000;
  FlowCacheOptions o;  // defaults: idle 15 s, active 60 s, 4096 entries per call
  o.max_flows = n + 1;
  FlowCache cache(o);
  std::mt19937_64 rng(n);
  std::vector<uint32_t> offset(n);
  for (auto& v : offset) v = static_cast<uint32_t>(rng() % kSpreadMs);
  TimedCachePacket p = packetTemplate();
  uint64_t round_base = kBaseMs;
  uint64_t expired = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // A first flow at the round's start time (the wheel starts at it on the first round).
    setKey(p.key, 0xFFFFFFFFu);
    p.ts_ms = round_base;
    cache.update(p);
    for (uint32_t i = 0; i < n; ++i) {
      setKey(p.key, i);
      p.ts_ms = round_base + offset[i];
      cache.update(p);
    }
    const uint64_t now = round_base + kSpreadMs + o.idle_timeout_ms + 1000;
    const uint64_t records_before = cache.counters().records;
    state.ResumeTiming();
    while (cache.expire(now)) cache.output().clear();
    cache.output().clear();
    state.PauseTiming();
    expired += cache.counters().records - records_before;
    if (cache.activeFlows() != 0) {
      state.SkipWithError("flows left after expiry");
      break;
    }
    round_base = now + 1;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(expired));
}
// Each iteration refills the cache untimed; fixed iterations bound the run time.
BENCHMARK(BM_FlowCacheExpire)->Arg(10'000)->Iterations(300);
BENCHMARK(BM_FlowCacheExpire)->Arg(100'000)->Iterations(30);
BENCHMARK(BM_FlowCacheExpire)->Arg(1'000'000)->Iterations(5);

}  // namespace
