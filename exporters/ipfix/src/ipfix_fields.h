#pragma once
// The IPFIX templates flowfold exports, declared once per field group.
//
// Each X-macro row is  X(member, C type, IANA name, IANA element id).  The same
// row generates the member of the packed record struct (so the struct layout
// IS the template: libfixbuf reads the internal record at offsets it computes
// from the element lengths) and the entry of the template table (length =
// sizeof(C type)). The writers below fill the structs member by member.
//
// libfixbuf transcodes the internal record to the wire: integers, addresses
// (ipv4Address) and dateTimeMilliseconds are given in host byte order and
// swapped by libfixbuf; macAddress, ipv6Address and octetArray are copied as
// they are (network order). The internal template is identical to the
// external one, which keeps libfixbuf's transcoding plan a straight copy.

#include <array>
#include <cstddef>
#include <cstdint>

#include "flowfold/exporters/template_ids.h"
#include "flowfold/flowcache/flow_record.h"
#include "flowfold/flowcache/wire.h"

namespace flowfold::ipfix {

using Octets3 = std::array<uint8_t, 3>;
using Octets6 = std::array<uint8_t, 6>;
using Octets16 = std::array<uint8_t, 16>;

// clang-format off
#define FLOWFOLD_IPFIX_IPV4_FIELDS(X)                                        \
  X(src_addr,       uint32_t, "sourceIPv4Address",         8)                \
  X(dst_addr,       uint32_t, "destinationIPv4Address",    12)               \
  X(icmp_type_code, uint16_t, "icmpTypeCodeIPv4",          32)

#define FLOWFOLD_IPFIX_IPV6_FIELDS(X)                                        \
  X(src_addr,       Octets16, "sourceIPv6Address",         27)               \
  X(dst_addr,       Octets16, "destinationIPv6Address",    28)               \
  X(icmp_type_code, uint16_t, "icmpTypeCodeIPv6",          139)

// Fields common to both IP versions, largest first.
#define FLOWFOLD_IPFIX_FLOW_FIELDS(X)                                        \
  X(octets,         uint64_t, "octetDeltaCount",           1)                \
  X(packets,        uint64_t, "packetDeltaCount",          2)                \
  X(start_ms,       uint64_t, "flowStartMilliseconds",     152)              \
  X(end_ms,         uint64_t, "flowEndMilliseconds",       153)              \
  X(flow_id,        uint64_t, "flowId",                    148)              \
  X(ingress_if,     uint32_t, "ingressInterface",          10)               \
  X(src_port,       uint16_t, "sourceTransportPort",       7)                \
  X(dst_port,       uint16_t, "destinationTransportPort",  11)               \
  X(vlan_id,        uint16_t, "vlanId",                    58)               \
  X(post_vlan_id,   uint16_t, "postVlanId",                59)               \
  X(inner_vlan_id,  uint16_t, "dot1qCustomerVlanId",       245)              \
  X(tcp_flags,      uint16_t, "tcpControlBits",            6)                \
  X(src_mac,        Octets6,  "sourceMacAddress",          56)               \
  X(dst_mac,        Octets6,  "destinationMacAddress",     80)               \
  X(mpls_top,       Octets3,  "mplsTopLabelStackSection",  70)               \
  X(mpls_2,         Octets3,  "mplsLabelStackSection2",    71)               \
  X(mpls_3,         Octets3,  "mplsLabelStackSection3",    72)               \
  X(protocol,       uint8_t,  "protocolIdentifier",        4)                \
  X(tos,            uint8_t,  "ipClassOfService",          5)                \
  X(min_ttl,        uint8_t,  "minimumTTL",                52)               \
  X(max_ttl,        uint8_t,  "maximumTTL",                53)               \
  X(end_reason,     uint8_t,  "flowEndReason",             136)              \
  X(ip_version,     uint8_t,  "ipVersion",                 60)
// clang-format on

#define FLOWFOLD_IPFIX_MEMBER(member, type, name, id) type member;
#define FLOWFOLD_IPFIX_SPEC(member, type, name, id) FieldSpec{name, id, sizeof(type)},

// RFC 7011 message framing, for every writer of messages.
inline constexpr uint16_t kIpfixVersion = 10;
inline constexpr size_t kMessageHeaderSize = 16;
inline constexpr size_t kSetHeaderSize = 4;
inline constexpr uint16_t kTemplateSetId = 2;
inline constexpr uint16_t kOptionsTemplateSetId = 3;

struct FieldSpec {
  const char* name;  // IANA name, as libfixbuf's information model knows it
  uint16_t id;       // IANA element id
  uint16_t length;   // octets on the wire and in the internal record
  uint32_t enterprise = 0;  // 0: an IANA element; else its Private Enterprise Number (RFC 5103's reverse: 29305)
};

#pragma pack(push, 1)
struct Ipv4Fields {
  FLOWFOLD_IPFIX_IPV4_FIELDS(FLOWFOLD_IPFIX_MEMBER)
};
struct Ipv6Fields {
  FLOWFOLD_IPFIX_IPV6_FIELDS(FLOWFOLD_IPFIX_MEMBER)
};
struct FlowFields {
  FLOWFOLD_IPFIX_FLOW_FIELDS(FLOWFOLD_IPFIX_MEMBER)
};
struct Ipv4Record {
  Ipv4Fields ip;
  FlowFields flow;
};
struct Ipv6Record {
  Ipv6Fields ip;
  FlowFields flow;
};
#pragma pack(pop)

inline constexpr FieldSpec kIpv4Fields[] = {FLOWFOLD_IPFIX_IPV4_FIELDS(FLOWFOLD_IPFIX_SPEC)};
inline constexpr FieldSpec kIpv6Fields[] = {FLOWFOLD_IPFIX_IPV6_FIELDS(FLOWFOLD_IPFIX_SPEC)};
inline constexpr FieldSpec kFlowFields[] = {FLOWFOLD_IPFIX_FLOW_FIELDS(FLOWFOLD_IPFIX_SPEC)};

// Host to network byte order for every member, row by row (used by the
// direct encoder; libfixbuf does this itself).
inline uint8_t toNetwork(uint8_t v) { return v; }
inline uint16_t toNetwork(uint16_t v) { return __builtin_bswap16(v); }
inline uint32_t toNetwork(uint32_t v) { return __builtin_bswap32(v); }
inline uint64_t toNetwork(uint64_t v) { return __builtin_bswap64(v); }
template <size_t N>
inline std::array<uint8_t, N> toNetwork(const std::array<uint8_t, N>& v) { return v; }
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "toNetwork() assumes a little-endian host");

// Copies a record into another (the message buffer) member by member, in
// network byte order. Not "copy the struct, then swap it in place": that copy
// reads the source's narrow, just-written members with wide loads, which the
// CPU cannot forward from its store buffer (a stall of a dozen cycles each,
// most of the direct encoder's time before).
#define FLOWFOLD_IPFIX_COPY_TO_NETWORK(member, type, name, id) out.member = toNetwork(in.member);
inline void copyToNetworkOrder(const Ipv4Fields& in, Ipv4Fields& out) {
  FLOWFOLD_IPFIX_IPV4_FIELDS(FLOWFOLD_IPFIX_COPY_TO_NETWORK)
}
inline void copyToNetworkOrder(const Ipv6Fields& in, Ipv6Fields& out) {
  FLOWFOLD_IPFIX_IPV6_FIELDS(FLOWFOLD_IPFIX_COPY_TO_NETWORK)
}
inline void copyToNetworkOrder(const FlowFields& in, FlowFields& out) {
  FLOWFOLD_IPFIX_FLOW_FIELDS(FLOWFOLD_IPFIX_COPY_TO_NETWORK)
}

#undef FLOWFOLD_IPFIX_MEMBER
#undef FLOWFOLD_IPFIX_COPY_TO_NETWORK
#undef FLOWFOLD_IPFIX_SPEC

template <size_t N>
constexpr size_t totalLength(const FieldSpec (&fields)[N]) {
  size_t n = 0;
  for (const auto& f : fields) n += f.length;
  return n;
}
static_assert(sizeof(Ipv4Fields) == totalLength(kIpv4Fields));
static_assert(sizeof(Ipv6Fields) == totalLength(kIpv6Fields));
static_assert(sizeof(FlowFields) == totalLength(kFlowFields));
static_assert(sizeof(Ipv4Record) == 93 && sizeof(Ipv6Record) == 117,
              "wire record sizes changed: update the documentation and the tests");

// ---- record writers: one assignment per row above, in the same order ----

inline uint16_t icmpTypeCode(const FlowKey& key) {
  const bool icmp = (key.ip_version == 4 && key.protocol == kProtoIcmp) ||
                    (key.ip_version == 6 && key.protocol == kProtoIcmpv6);
  return icmp ? key.dst_port : 0;
}

/// mplsTopLabelStackSection / mplsLabelStackSectionN of one entry (mpls.h):
/// label (20 bits) | TC (3 bits) | S (1 bit); all 0 for an absent entry.
inline Octets3 mplsLabelStackSection(uint32_t entry) {
  const uint32_t v = mplsSection(entry);
  return {static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// The writers fill a record in host byte order (what libfixbuf takes) or,
// with Order::kNetwork, straight in network byte order (the direct encoder
// writes the message in one pass over the FlowRecord). Every value is
// converted to its member's own type first: toNetwork() must swap the
// member's width, not the source's.
enum class Order { kHost, kNetwork };

template <Order order, class T>
inline T inOrder(T v) {
  if constexpr (order == Order::kNetwork) {
    return toNetwork(v);
  } else {
    return v;
  }
}

template <Order order = Order::kHost>
inline void writeIpv4Fields(const FlowKey& key, Ipv4Fields& out) {
  const auto& s = key.src_addr;
  const auto& d = key.dst_addr;
  out.src_addr = inOrder<order>(uint32_t{s[0]} << 24 | uint32_t{s[1]} << 16 | uint32_t{s[2]} << 8 | s[3]);
  out.dst_addr = inOrder<order>(uint32_t{d[0]} << 24 | uint32_t{d[1]} << 16 | uint32_t{d[2]} << 8 | d[3]);
  out.icmp_type_code = inOrder<order>(icmpTypeCode(key));
}

template <Order order = Order::kHost>
inline void writeIpv6Fields(const FlowKey& key, Ipv6Fields& out) {
  out.src_addr = key.src_addr;
  out.dst_addr = key.dst_addr;
  out.icmp_type_code = inOrder<order>(icmpTypeCode(key));
}

template <Order order = Order::kHost>
inline void writeFlowFields(const FlowRecord& r, FlowFields& out) {
  out.octets = inOrder<order>(static_cast<uint64_t>(r.octets));
  out.packets = inOrder<order>(static_cast<uint64_t>(r.packets));
  out.start_ms = inOrder<order>(static_cast<uint64_t>(r.first_ms));
  out.end_ms = inOrder<order>(static_cast<uint64_t>(r.last_ms));
  out.flow_id = inOrder<order>(static_cast<uint64_t>(r.flow_id));
  out.ingress_if = inOrder<order>(static_cast<uint32_t>(r.key.ingress_if));
  out.src_port = inOrder<order>(static_cast<uint16_t>(r.key.src_port));
  out.dst_port = inOrder<order>(static_cast<uint16_t>(r.key.dst_port));
  out.vlan_id = inOrder<order>(static_cast<uint16_t>(r.key.vlan_id));
  out.post_vlan_id = inOrder<order>(static_cast<uint16_t>(r.key.inner_vlan_id));
  out.inner_vlan_id = inOrder<order>(static_cast<uint16_t>(r.key.inner_vlan_id));
  out.tcp_flags = inOrder<order>(static_cast<uint16_t>(r.tcp_flags));
  out.src_mac = r.src_mac;
  out.dst_mac = r.dst_mac;
  out.mpls_top = mplsLabelStackSection(r.mpls_stack[0]);
  out.mpls_2 = mplsLabelStackSection(r.mpls_stack[1]);
  out.mpls_3 = mplsLabelStackSection(r.mpls_stack[2]);
  out.protocol = r.key.protocol;
  out.tos = r.tos;
  out.min_ttl = r.min_ttl;
  out.max_ttl = r.max_ttl;
  out.end_reason = static_cast<uint8_t>(r.end_reason);
  out.ip_version = r.key.ip_version;
}

/// The whole record of the flow (Ipv4Record or Ipv6Record).
template <Order order = Order::kHost>
inline void writeRecord(const FlowRecord& r, Ipv4Record& out) {
  writeIpv4Fields<order>(r.key, out.ip);
  writeFlowFields<order>(r, out.flow);
}
template <Order order = Order::kHost>
inline void writeRecord(const FlowRecord& r, Ipv6Record& out) {
  writeIpv6Fields<order>(r.key, out.ip);
  writeFlowFields<order>(r, out.flow);
}

}  // namespace flowfold::ipfix
