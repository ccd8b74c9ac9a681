#pragma once
// Biflow records (RFC 5103), for an IPFIX exporter with `biflow: true`: one
// record per conversation. The key fields (addresses, ports, protocol, VLANs,
// interface) and the flow fields are the initiator's, as in a uniflow record
// (templates 256/257); the responder's per-direction fields follow as
// reverse information elements (the same element ids with the enterprise bit
// and RFC 5103's reverse PEN 29305), then biflowDirection (239). Each side
// keeps its own end reason: flowEndReason is the initiator's,
// reverseFlowEndReason the responder's (RFC 5103 section 6.1 leaves
// flowEndReason reversible). With local_networks, the forward side's
// flowDirection is appended (templates 262/263).

#include "ipfix_direction.h"
#include "ipfix_fields.h"

namespace flowfold::ipfix {

inline constexpr uint32_t kReversePen = 29305;

// The per-direction fields of FlowFields, reversed; the same rows as there.
// clang-format off
#define FLOWFOLD_IPFIX_REVERSE_FIELDS(X)                                          \
  X(octets,     uint64_t, "reverseOctetDeltaCount",           1)                 \
  X(packets,    uint64_t, "reversePacketDeltaCount",          2)                 \
  X(start_ms,   uint64_t, "reverseFlowStartMilliseconds",     152)               \
  X(end_ms,     uint64_t, "reverseFlowEndMilliseconds",       153)               \
  X(flow_id,    uint64_t, "reverseFlowId",                    148)               \
  X(tcp_flags,  uint16_t, "reverseTcpControlBits",            6)                 \
  X(src_mac,    Octets6,  "reverseSourceMacAddress",          56)                \
  X(dst_mac,    Octets6,  "reverseDestinationMacAddress",     80)                \
  X(mpls_top,   Octets3,  "reverseMplsTopLabelStackSection",  70)                \
  X(mpls_2,     Octets3,  "reverseMplsLabelStackSection2",    71)                \
  X(mpls_3,     Octets3,  "reverseMplsLabelStackSection3",    72)                \
  X(tos,        uint8_t,  "reverseIpClassOfService",          5)                 \
  X(min_ttl,    uint8_t,  "reverseMinimumTTL",                52)                \
  X(max_ttl,    uint8_t,  "reverseMaximumTTL",                53)                \
  X(end_reason, uint8_t,  "reverseFlowEndReason",             136)
// clang-format on

#define FLOWFOLD_IPFIX_MEMBER(member, type, name, id) type member;
#define FLOWFOLD_IPFIX_REVERSE_SPEC(member, type, name, id) FieldSpec{name, id, sizeof(type), kReversePen},
#define FLOWFOLD_IPFIX_COPY_TO_NETWORK(member, type, name, id) out.member = toNetwork(in.member);

/// RFC 5103 biflowDirection: 1 = the forward fields are the initiator's;
/// 2 = the reverse ones would be (a record heard one way only, from the
/// side that did not initiate).
enum class BiflowDirection : uint8_t { kArbitrary = 0, kInitiator = 1, kReverseInitiator = 2, kPerimeter = 3 };

#pragma pack(push, 1)
struct ReverseFields {
  FLOWFOLD_IPFIX_REVERSE_FIELDS(FLOWFOLD_IPFIX_MEMBER)
};
struct BiflowFields {
  uint8_t biflow_direction;
};
struct Ipv4BiflowRecord {
  Ipv4Fields ip;
  FlowFields flow;
  ReverseFields rev;
  BiflowFields bi;
};
struct Ipv6BiflowRecord {
  Ipv6Fields ip;
  FlowFields flow;
  ReverseFields rev;
  BiflowFields bi;
};
struct Ipv4BiflowDirectionRecord {
  Ipv4Fields ip;
  FlowFields flow;
  ReverseFields rev;
  BiflowFields bi;
  DirectionFields dir;
};
struct Ipv6BiflowDirectionRecord {
  Ipv6Fields ip;
  FlowFields flow;
  ReverseFields rev;
  BiflowFields bi;
  DirectionFields dir;
};
#pragma pack(pop)

inline constexpr FieldSpec kReverseFields[] = {FLOWFOLD_IPFIX_REVERSE_FIELDS(FLOWFOLD_IPFIX_REVERSE_SPEC)};
/// What follows FlowFields in each biflow template.
inline constexpr FieldSpec kBiflowTail[] = {FLOWFOLD_IPFIX_REVERSE_FIELDS(FLOWFOLD_IPFIX_REVERSE_SPEC)
                                                FieldSpec{"biflowDirection", 239, 1}};
inline constexpr FieldSpec kBiflowDirectionTail[] = {FLOWFOLD_IPFIX_REVERSE_FIELDS(FLOWFOLD_IPFIX_REVERSE_SPEC)
                                                         FieldSpec{"biflowDirection", 239, 1},
                                                     FieldSpec{"flowDirection", 61, 1}};

inline void copyToNetworkOrder(const ReverseFields& in, ReverseFields& out) {
  FLOWFOLD_IPFIX_REVERSE_FIELDS(FLOWFOLD_IPFIX_COPY_TO_NETWORK)
}
inline void copyToNetworkOrder(const BiflowFields& in, BiflowFields& out) { out = in; }

#undef FLOWFOLD_IPFIX_MEMBER
#undef FLOWFOLD_IPFIX_REVERSE_SPEC
#undef FLOWFOLD_IPFIX_COPY_TO_NETWORK

static_assert(sizeof(ReverseFields) == totalLength(kReverseFields));
static_assert(sizeof(Ipv4BiflowRecord) == sizeof(Ipv4Record) + sizeof(ReverseFields) + 1);
static_assert(sizeof(Ipv6BiflowDirectionRecord) == sizeof(Ipv6Record) + sizeof(ReverseFields) + 2);
static_assert(sizeof(Ipv4BiflowRecord) == 161 && sizeof(Ipv6BiflowRecord) == 185,
              "biflow record sizes changed: update the README (Templates) and the tests");

/// The reverse fields of the responder's flow; all 0 for a conversation
/// heard in one direction only (no responder).
template <Order order = Order::kHost>
inline void writeReverseFields(const FlowRecord* r, ReverseFields& out) {
  if (r == nullptr) {
    out = ReverseFields{};
    return;
  }
  out.octets = inOrder<order>(static_cast<uint64_t>(r->octets));
  out.packets = inOrder<order>(static_cast<uint64_t>(r->packets));
  out.start_ms = inOrder<order>(static_cast<uint64_t>(r->first_ms));
  out.end_ms = inOrder<order>(static_cast<uint64_t>(r->last_ms));
  out.flow_id = inOrder<order>(static_cast<uint64_t>(r->flow_id));
  out.tcp_flags = inOrder<order>(static_cast<uint16_t>(r->tcp_flags));
  out.src_mac = r->src_mac;
  out.dst_mac = r->dst_mac;
  out.mpls_top = mplsLabelStackSection(r->mpls_stack[0]);
  out.mpls_2 = mplsLabelStackSection(r->mpls_stack[1]);
  out.mpls_3 = mplsLabelStackSection(r->mpls_stack[2]);
  out.tos = r->tos;
  out.min_ttl = r->min_ttl;
  out.max_ttl = r->max_ttl;
  out.end_reason = static_cast<uint8_t>(r->end_reason);
}

/// One conversation: `initiator`'s record forward (its flowEndReason too),
/// `responder`'s (or none) reversed.
template <Order order = Order::kHost, class Record>
inline void writeBiflowRecord(const FlowRecord& initiator, const FlowRecord* responder, BiflowDirection biflow,
                              FlowDirection direction, Record& out) {
  if constexpr (requires { out.ip.src_addr[15]; }) {
    writeIpv6Fields<order>(initiator.key, out.ip);
  } else {
    writeIpv4Fields<order>(initiator.key, out.ip);
  }
  writeFlowFields<order>(initiator, out.flow);
  writeReverseFields<order>(responder, out.rev);
  out.bi.biflow_direction = static_cast<uint8_t>(biflow);
  if constexpr (requires { out.dir; }) out.dir.direction = static_cast<uint8_t>(direction);
}

}  // namespace flowfold::ipfix
