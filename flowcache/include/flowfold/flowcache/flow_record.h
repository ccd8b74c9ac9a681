#pragma once
// What the cache hands to exporters: one flow's counters since its last export.

#include <array>
#include <cstdint>

#include "flowfold/flowcache/flow_key.h"

namespace flowfold {

/// IPFIX flowEndReason (IANA element 136) values.
enum class FlowEndReason : uint8_t {
  kIdleTimeout = 1,
  kActiveTimeout = 2,
  kEndOfFlow = 3,        // TCP FIN or RST seen
  kForcedEnd = 4,        // end of input, shutdown
  kLackOfResources = 5,  // evicted because the cache was full
};

const char* toString(FlowEndReason reason);

struct FlowRecord {
  FlowKey key;
  uint64_t packets = 0;   // packetDeltaCount (2)
  uint64_t octets = 0;    // octetDeltaCount (1): sum of IP total lengths
  uint64_t first_ms = 0;  // flowStartMilliseconds (152), Unix epoch
  uint64_t last_ms = 0;   // flowEndMilliseconds (153), Unix epoch
  uint32_t mpls_top_label = 0;  // mplsTopLabelStackSection (70): 20-bit label value, 0 if none
  std::array<uint8_t, 6> src_mac{};  // sourceMacAddress (56)
  std::array<uint8_t, 6> dst_mac{};  // destinationMacAddress (80)
  uint8_t tcp_flags = 0;  // tcpControlBits (6): OR over all packets
  uint8_t tos = 0;        // ipClassOfService (5) of the first packet
  uint8_t min_ttl = 255;  // minimumTTL (52) / hop limit
  uint8_t max_ttl = 0;    // maximumTTL (53)
  FlowEndReason end_reason = FlowEndReason::kForcedEnd;
};

}  // namespace flowfold
