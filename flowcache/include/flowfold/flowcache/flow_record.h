#pragma once
// What the cache hands to exporters: one flow's counters since its last export.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/mpls.h"

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

/// What DPI (nDPI, `dpi: true`) says about a flow's application; all zero
/// when DPI is off or never saw the flow. Ids are nDPI's protocol and
/// category numbers (ndpi_protocol_ids.h); exporters name them through
/// app_names.h. The same label is in every record of a flow.
struct AppLabel {
  static constexpr uint8_t kInspected = 1;  // DPI saw the flow's packets: the ids below are its verdict
  static constexpr uint8_t kGuessed = 2;    // the flow ended (or exported) before nDPI settled: its best guess

  uint16_t master = 0;    // e.g. TLS (91) in TLS.YouTube; 0 for a plain protocol
  uint16_t app = 0;       // e.g. YouTube (124), or DNS (5) for a plain protocol; 0 unknown
  uint16_t category = 0;  // ndpi_protocol_category_t, e.g. 5 (Web)
  uint8_t flags = 0;
  /// TLS/QUIC SNI, HTTP Host, DNS query name, ... as nDPI read it,
  /// NUL-terminated; empty when none. nDPI keeps at most 79 characters.
  std::array<char, 80> server_name{};

  bool inspected() const { return (flags & kInspected) != 0; }
  bool guessed() const { return (flags & kGuessed) != 0; }
  /// nDPI named an application or protocol.
  bool known() const { return master != 0 || app != 0; }
  size_t serverNameLength() const {
    size_t n = 0;
    while (n < server_name.size() && server_name[n] != '\0') ++n;
    return n;
  }
  std::string_view serverName() const { return {server_name.data(), serverNameLength()}; }
  friend bool operator==(const AppLabel&, const AppLabel&) = default;
};

struct FlowRecord {
  FlowRecord() = default;
  /// Every field at once: lets the flow cache build a record in place in its
  /// output vector (value-initialising one first, then assigning, cost a
  /// zeroing pass; assigning a local and copying it, a store-forwarding stall).
  FlowRecord(const FlowKey& key_, uint64_t packets_, uint64_t octets_, uint64_t first_ms_, uint64_t last_ms_,
             const MplsStack& mpls_stack_, const std::array<uint8_t, 6>& src_mac_, const std::array<uint8_t, 6>& dst_mac_,
             uint8_t tcp_flags_, uint8_t tos_, uint8_t min_ttl_, uint8_t max_ttl_, FlowEndReason end_reason_,
             uint64_t flow_id_)
      : key(key_), packets(packets_), octets(octets_), first_ms(first_ms_), last_ms(last_ms_),
        mpls_stack(mpls_stack_), src_mac(src_mac_), dst_mac(dst_mac_), tcp_flags(tcp_flags_), tos(tos_),
        min_ttl(min_ttl_), max_ttl(max_ttl_), end_reason(end_reason_), flow_id(flow_id_) {}

  FlowKey key;
  uint64_t packets = 0;   // packetDeltaCount (2)
  uint64_t octets = 0;    // octetDeltaCount (1): sum of IP total lengths
  uint64_t first_ms = 0;  // flowStartMilliseconds (152), Unix epoch
  uint64_t last_ms = 0;   // flowEndMilliseconds (153), Unix epoch
  // mplsTopLabelStackSection (70), mplsLabelStackSection2 (71) and 3 (72):
  // the first packet's top three entries (mpls.h), all 0 without MPLS.
  MplsStack mpls_stack{};
  std::array<uint8_t, 6> src_mac{};  // sourceMacAddress (56)
  std::array<uint8_t, 6> dst_mac{};  // destinationMacAddress (80)
  uint8_t tcp_flags = 0;  // tcpControlBits (6): OR over all packets
  uint8_t tos = 0;        // ipClassOfService (5) of the first packet
  uint8_t min_ttl = 255;  // minimumTTL (52) / hop limit
  uint8_t max_ttl = 0;    // maximumTTL (53)
  FlowEndReason end_reason = FlowEndReason::kForcedEnd;
  // flowId (148): the flow's number, given by the cache when the flow was
  // created and the same in every record of it (each active-timeout
  // interval); unique per probe (FlowCacheOptions::flow_id_*). 0: none.
  uint64_t flow_id = 0;
  // applicationId (95), applicationName (96), ... with `dpi: true`.
  AppLabel app{};

  /// The top label's 20-bit value, 0 without MPLS (MySQL's mpls_label).
  uint32_t mplsTopLabel() const { return mplsLabel(mpls_stack[0]); }
};

}  // namespace flowfold
