// fuzz_flowcache: bytes -> options (max_flows 1..16, small or large
// timeouts, small expiry budgets) and a sequence of operations on a
// FlowCache: update() over a small key space with timestamps that jump
// forward and backward, expire(now) with its own clock, flushAll().
//
// Invariants: activeFlows() <= max_flows after every operation; every
// emitted record is well-formed (packets >= 1, first <= last, min_ttl <=
// max_ttl, a known key and end reason; an idle-timeout record really was
// idle); an expire() past every deadline that completes empties the cache;
// counters agree with what was seen; and after the final flushAll()
// the packets and octets emitted per key equal what update() was given.

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "flowfold/flowcache/flow_cache.h"
#include "fuzz_util.h"

namespace {

using flowfold::FlowCache;
using flowfold::FlowCacheOptions;
using flowfold::FlowEndReason;
using flowfold::FlowKey;
using flowfold::FlowRecord;
using flowfold::TimedCachePacket;

constexpr size_t kKeys = 24;

FlowKey keyFor(size_t index) {
  FlowKey k;
  k.ip_version = 4;
  k.src_addr = {10, 0, 0, static_cast<uint8_t>(index)};
  k.dst_addr = {192, 0, 2, 1};
  k.protocol = index % 3 == 0 ? 17 : 6;  // TCP keys can end on FIN/RST
  k.src_port = static_cast<uint16_t>(1000 + index);
  k.dst_port = 80;
  return k;
}

size_t indexOf(const FlowKey& k) {
  for (size_t i = 0; i < kKeys; ++i)
    if (keyFor(i) == k) return i;
  FUZZ_CHECK(!"record with a key never updated");
  return 0;
}

uint64_t timeout(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return in.ConsumeIntegralInRange<uint64_t>(1, 20);          // wheel tick 1 ms
    case 1: return in.ConsumeIntegralInRange<uint64_t>(1, 100'000);
    case 2: return in.ConsumeIntegralInRange<uint64_t>(1, 7 * 86'400'000ull);  // config maximum
    default: return 15'000;
  }
}

// A clock step: mostly small and forward, sometimes back, sometimes far.
uint64_t step(FuzzedDataProvider& in, uint64_t now) {
  const uint8_t s = in.ConsumeIntegral<uint8_t>();
  // (Far jumps are kept rare: each makes expire() walk the whole wheel.)
  if (s < 160) return now + (s & 31);
  if (s < 200) return now + uint64_t{in.ConsumeIntegral<uint16_t>()};
  if (s < 236) return now - std::min<uint64_t>(now, in.ConsumeIntegral<uint16_t>());
  if (s < 248) return now + in.ConsumeIntegralInRange<uint64_t>(0, 1ull << 33);
  return now - std::min<uint64_t>(now, in.ConsumeIntegralInRange<uint64_t>(0, 1ull << 33));
}

struct Totals {
  uint64_t packets = 0;
  uint64_t octets = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  FlowCacheOptions options;
  options.max_flows = in.ConsumeIntegralInRange<uint32_t>(1, 16);
  options.idle_timeout_ms = timeout(in);
  options.active_timeout_ms = timeout(in);
  options.max_expiry_work = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 8) : 4096;
  FlowCache cache(options);

  std::array<Totals, kKeys> in_totals{}, out_totals{};
  std::array<uint64_t, kKeys> last_id{};  // the latest flow id seen per key
  uint64_t updates = 0, records = 0;
  uint64_t packet_clock = 1'000'000'000'000 + in.ConsumeIntegral<uint32_t>();
  uint64_t expire_clock = packet_clock;
  uint64_t latest = 0;  // latest time the cache has been told of (packets or expire)

  auto drain = [&] {
    std::vector<FlowRecord> out;
    out.swap(cache.output());
    for (const FlowRecord& r : out) {
      const size_t i = indexOf(r.key);
      FUZZ_CHECK(r.packets >= 1);
      FUZZ_CHECK(r.first_ms <= r.last_ms);
      FUZZ_CHECK(r.min_ttl <= r.max_ttl);
      const auto reason = static_cast<uint8_t>(r.end_reason);
      FUZZ_CHECK(reason >= 1 && reason <= 5);
      // Flow ids (default base 1, stride 1): one of the flows created so
      // far, and a key's later records never carry an earlier flow's id.
      FUZZ_CHECK(r.flow_id >= 1 && r.flow_id <= cache.counters().flows_created);
      FUZZ_CHECK(r.flow_id >= last_id[i]);
      last_id[i] = r.flow_id;
      if (r.end_reason == FlowEndReason::kIdleTimeout)
        FUZZ_CHECK(r.last_ms + options.idle_timeout_ms <= latest);
      if (r.end_reason == FlowEndReason::kEndOfFlow) FUZZ_CHECK(r.key.protocol == 6 && (r.tcp_flags & 0x05));
      out_totals[i].packets += r.packets;
      out_totals[i].octets += r.octets;
      ++records;
    }
  };

  for (int op = 0; op < 2000 && in.remaining_bytes() > 0; ++op) {
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 176) {
      const size_t i = in.ConsumeIntegralInRange<size_t>(0, kKeys - 1);
      TimedCachePacket p;
      p.key = keyFor(i);
      packet_clock = step(in, packet_clock);
      p.ts_ms = packet_clock;
      p.ip_length = in.ConsumeIntegral<uint16_t>();
      const uint8_t flags = in.ConsumeIntegral<uint8_t>();
      p.tcp_flags = p.key.protocol == 6 && flags >= 224 ? flags : static_cast<uint8_t>(flags & 0x1a);
      p.ttl = in.ConsumeIntegral<uint8_t>();
      p.tos = static_cast<uint8_t>(kind);
      latest = std::max(latest, p.ts_ms);
      cache.update(p);
      ++updates;
      in_totals[i].packets += 1;
      in_totals[i].octets += p.ip_length;
    } else if (kind < 240) {
      expire_clock = in.ConsumeBool() ? packet_clock : step(in, expire_clock);
      latest = std::max(latest, expire_clock);
      cache.expire(expire_clock);
    } else if (kind < 248) {
      // Past every deadline: a completed expire() leaves no flow behind.
      expire_clock = latest + 2 * std::max(options.idle_timeout_ms, options.active_timeout_ms) + 2;
      latest = expire_clock;
      int calls = 0;
      while (cache.expire(expire_clock)) {
        drain();
        FUZZ_CHECK(++calls < 100'000);
      }
      FUZZ_CHECK_EQ(cache.activeFlows(), size_t{0});
    } else {
      cache.flushAll();
      FUZZ_CHECK_EQ(cache.activeFlows(), size_t{0});
    }
    FUZZ_CHECK(cache.activeFlows() <= options.max_flows);
    drain();
  }
  cache.flushAll();
  FUZZ_CHECK_EQ(cache.activeFlows(), size_t{0});
  drain();

  for (size_t i = 0; i < kKeys; ++i) {
    FUZZ_CHECK_EQ(out_totals[i].packets, in_totals[i].packets);
    FUZZ_CHECK_EQ(out_totals[i].octets, in_totals[i].octets);
  }
  const auto& c = cache.counters();
  FUZZ_CHECK_EQ(c.packets_folded, updates);
  FUZZ_CHECK_EQ(c.records, records);
  FUZZ_CHECK(c.flows_peak <= options.max_flows);
  // An evicted flow emits a record only if it saw packets since its last
  // active-timeout export; the other counters count records.
  const uint64_t counted = c.ended_idle + c.ended_active + c.ended_tcp + c.flushed;
  FUZZ_CHECK(counted <= records && records <= counted + c.evicted);
  return 0;
}
