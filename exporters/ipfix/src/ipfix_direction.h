#pragma once
// Records with flowDirection (61), exported only when local_networks is set
// (local_networks.h): templates 258 (IPv4) and 259 (IPv6) are those of 256
// and 257 with flowDirection appended. Flows without a direction (local to
// local, remote to remote) still go out in 256/257: IANA defines no value
// for them, so their records carry no flowDirection at all.

#include "flowfold/exporters/local_networks.h"
#include "ipfix_fields.h"

namespace flowfold::ipfix {

inline constexpr FieldSpec kDirectionFields[] = {FieldSpec{"flowDirection", 61, 1}};

#pragma pack(push, 1)
struct DirectionFields {
  uint8_t direction;  // 0 ingress, 1 egress
};
struct Ipv4DirectionRecord {
  Ipv4Fields ip;
  FlowFields flow;
  DirectionFields dir;
};
struct Ipv6DirectionRecord {
  Ipv6Fields ip;
  FlowFields flow;
  DirectionFields dir;
};
#pragma pack(pop)
static_assert(sizeof(Ipv4DirectionRecord) == sizeof(Ipv4Record) + 1);
static_assert(sizeof(Ipv6DirectionRecord) == sizeof(Ipv6Record) + 1);

inline void copyToNetworkOrder(const DirectionFields& in, DirectionFields& out) { out = in; }

template <Order order = Order::kHost>
inline void writeRecord(const FlowRecord& r, FlowDirection d, Ipv4DirectionRecord& out) {
  writeIpv4Fields<order>(r.key, out.ip);
  writeFlowFields<order>(r, out.flow);
  out.dir.direction = static_cast<uint8_t>(d);
}
template <Order order = Order::kHost>
inline void writeRecord(const FlowRecord& r, FlowDirection d, Ipv6DirectionRecord& out) {
  writeIpv6Fields<order>(r.key, out.ip);
  writeFlowFields<order>(r, out.flow);
  out.dir.direction = static_cast<uint8_t>(d);
}

}  // namespace flowfold::ipfix
