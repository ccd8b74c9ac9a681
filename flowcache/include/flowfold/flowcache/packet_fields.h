#pragma once
// A decoded packet as the flow table takes it. Its own header, so that the
// decoder (whose PacketInfo extends PacketFields) needs nothing else of the
// table.

#include <array>
#include <cstdint>

#include "flowfold/flowcache/flow_key.h"

namespace flowfold {

/// What the cache needs to know about one decoded packet. The decoder's
/// PacketInfo extends it, so a decoded packet reaches the table as it is
/// (copying it into another struct per packet was a tenth of the packet
/// loop's instructions).
struct PacketFields {
  FlowKey key;
  uint32_t ip_length = 0;  // IP total length: what octetDeltaCount counts
  uint32_t mpls_top_label = 0;  // 20 bits: the label value (higher bits are dropped)
  std::array<uint8_t, 6> src_mac{};
  std::array<uint8_t, 6> dst_mac{};
  uint8_t tcp_flags = 0;
  uint8_t tos = 0;
  uint8_t ttl = 0;

  friend bool operator==(const PacketFields&, const PacketFields&) = default;
};

/// A packet with its time: tests, benchmarks and the fuzzer build these.
struct PacketSummary : PacketFields {
  uint64_t ts_ms = 0;
};

}  // namespace flowfold
