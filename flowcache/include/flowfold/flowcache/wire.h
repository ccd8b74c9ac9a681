#pragma once
// Small pieces of the wire formats that more than one part of the probe
// reads: network-order (big-endian) loads, EtherTypes and IP protocol
// numbers. Here, in the flow table's library, because the decoder, the table
// and the exporters all build on it.

#include <cstdint>

namespace flowfold {

/// The 16 / 32-bit big-endian value at `p` (no alignment needed).
inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// EtherTypes (IEEE registry).
inline constexpr uint16_t kEtherIpv4 = 0x0800;
inline constexpr uint16_t kEtherIpv6 = 0x86dd;
inline constexpr uint16_t kEtherVlan = 0x8100;      // 802.1Q customer tag
inline constexpr uint16_t kEtherQinq = 0x88a8;      // 802.1ad service tag
inline constexpr uint16_t kEtherQinqOld = 0x9100;   // pre-standard QinQ
inline constexpr uint16_t kEtherMplsUnicast = 0x8847;
inline constexpr uint16_t kEtherMplsMulticast = 0x8848;
inline constexpr uint16_t kEtherPppoeSession = 0x8864;  // discovery (0x8863) is not IP
inline constexpr uint16_t kEtherTeb = 0x6558;       // transparent Ethernet bridging (GRE, Geneve)
inline constexpr uint16_t kEtherErspan2 = 0x88be;   // ERSPAN type I (no S flag) or II, over GRE
inline constexpr uint16_t kEtherErspan3 = 0x22eb;   // ERSPAN type III, over GRE

// IP protocol numbers (IANA), as FlowKey::protocol holds them.
inline constexpr uint8_t kProtoIpv6HopByHop = 0;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpip = 4;   // IPv4 encapsulated (RFC 2003; 4in4, 4in6)
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoDccp = 33;
inline constexpr uint8_t kProtoIpv6 = 41;  // IPv6 encapsulated (RFC 4213; 6in4, 6to4, 6in6)
inline constexpr uint8_t kProtoIpv6Routing = 43;
inline constexpr uint8_t kProtoIpv6Fragment = 44;
inline constexpr uint8_t kProtoGre = 47;
inline constexpr uint8_t kProtoEsp = 50;
inline constexpr uint8_t kProtoAh = 51;
inline constexpr uint8_t kProtoIcmpv6 = 58;
inline constexpr uint8_t kProtoIpv6NoNext = 59;
inline constexpr uint8_t kProtoIpv6DestOpts = 60;
inline constexpr uint8_t kProtoSctp = 132;
inline constexpr uint8_t kProtoIpv6Mobility = 135;  // Mobility Header (RFC 6275)
inline constexpr uint8_t kProtoUdpLite = 136;
inline constexpr uint8_t kProtoHip = 139;           // Host Identity Protocol (RFC 7401)
inline constexpr uint8_t kProtoShim6 = 140;         // Shim6 (RFC 5533)
inline constexpr uint8_t kProtoExperiment1 = 253;   // experimentation and testing (RFC 3692, 4727)
inline constexpr uint8_t kProtoExperiment2 = 254;

}  // namespace flowfold
