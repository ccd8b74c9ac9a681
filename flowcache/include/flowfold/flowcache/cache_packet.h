#pragma once
// A packet as the flow table takes it. Its own header, so that the decoder
// (whose DecodedPacket extends CachePacket) needs nothing else of the table.
// The three packet structs: the decoder produces a DecodedPacket per packet,
// the cache folds its CachePacket part into the flow, and TimedCachePacket
// is a CachePacket with its time, for callers without a decoder.

#include <array>
#include <cstdint>

#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/mpls.h"

namespace flowfold {

/// What the cache folds into a flow, per packet. The decoder's
/// DecodedPacket extends it, so a decoded packet reaches the table as it is
/// (copying it into another struct per packet was a tenth of the packet
/// loop's instructions).
struct CachePacket {
  FlowKey key;
  uint32_t ip_length = 0;  // IP total length: what octetDeltaCount counts
  // The top three label stack entries (mpls.h). Entries 1 and 2 are read
  // only when entry 0 is present, but whoever fills a packet sets all three
  // (a packet compares equal to another only as a whole).
  MplsStack mpls_stack{};
  std::array<uint8_t, 6> src_mac{};
  std::array<uint8_t, 6> dst_mac{};
  uint8_t tcp_flags = 0;
  uint8_t tos = 0;
  uint8_t ttl = 0;

  friend bool operator==(const CachePacket&, const CachePacket&) = default;
};

/// A CachePacket with its time, for FlowCache::update() without a decoder:
/// tests, benchmarks and the fuzzer build these.
struct TimedCachePacket : CachePacket {
  uint64_t ts_ms = 0;
};

}  // namespace flowfold
