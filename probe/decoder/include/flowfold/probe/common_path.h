#pragma once
// The decoder's common case in one straight pass, inline in the packet loop:
// Ethernet, at most one 802.1Q tag, IPv4 without options and not a fragment,
// or IPv6 without extension headers, carrying TCP or UDP whose ports (and TCP
// flags) are captured and inside the datagram, whose length fits the frame.
// Nearly every packet of a typical link is one of these.
//
// It writes every field of `out` (no value-initialising pass first: that, and
// the register saves of the out-of-line decoder, were a fifth of the decode)
// exactly as the layer-by-layer walk in decoder.cc fills it for such a frame.
// tests/unit/decoder compares the two over every test capture, cut and
// mutated, into a DecodedPacket filled with garbage first; fuzz_decoder
// compares them on every input. Anything else returns false and takes the walk.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "flowfold/flowcache/cache_packet.h"
#include "flowfold/flowcache/wire.h"

namespace flowfold::probe {
namespace common_path {

// An address field of the key: `n` bytes of the packet, zeros after them.
template <size_t n>
inline void setAddress(std::array<uint8_t, 16>& field, const uint8_t* from) {
  if constexpr (n == 4) {
    uint32_t v;
    std::memcpy(&v, from, 4);
    const uint64_t low = v, zero = 0;
    std::memcpy(field.data(), &low, 8);
    std::memcpy(field.data() + 8, &zero, 8);
  } else {
    std::memcpy(field.data(), from, 16);
  }
}

// A template on DecodedPacket, which decoder.h defines after including this
// header; its static_assert on the size catches a field added there and not
// set here.
template <class Info>
[[gnu::always_inline]] inline bool decodeEthernet(const uint8_t* p, uint32_t caplen, uint32_t wirelen, Info& out) {
  size_t off = 14;
  if (caplen < off + 4 + 20 + 4) return false;  // shortest: a VLAN tag at most, IPv4, UDP ports
  uint16_t type = load16(p + 12);
  uint16_t vlan = 0;
  if (type == kEtherVlan) {
    vlan = load16(p + off) & 0x0fff;
    type = load16(p + off + 2);
    off += 4;
  }
  const uint8_t* h = p + off;
  const size_t wire_left = std::max(wirelen, caplen) - off;
  size_t total;
  size_t l4;
  uint8_t protocol;
  FlowKey& key = out.key;
  if (type == kEtherIpv4) {
    if (h[0] != 0x45 || (load16(h + 6) & 0x3fff) != 0) return false;  // options, fragment
    total = load16(h + 2);
    protocol = h[9];
    l4 = 20;
    key.ip_version = 4;
    setAddress<4>(key.src_addr, h + 12);
    setAddress<4>(key.dst_addr, h + 16);
    out.tos = h[1];
    out.ttl = h[8];
  } else if (type == kEtherIpv6) {
    if (caplen < off + 40 + 4 || (h[0] >> 4) != 6) return false;
    total = size_t{40} + load16(h + 4);
    protocol = h[6];
    l4 = 40;
    key.ip_version = 6;
    setAddress<16>(key.src_addr, h + 8);
    setAddress<16>(key.dst_addr, h + 24);
    out.tos = static_cast<uint8_t>(load16(h) >> 4);
    out.ttl = h[7];
  } else {
    return false;
  }
  const size_t need = protocol == kProtoTcp ? 14 : protocol == kProtoUdp ? 4 : 0;
  // Another protocol, ports not captured, ports absent from the datagram or
  // a length beyond the frame (the last two counted by the walk): the walk.
  if (need == 0 || caplen < off + l4 + need || total < l4 + need || total > wire_left) return false;
  const uint8_t* t = h + l4;
  key.protocol = protocol;
  key.src_port = load16(t);
  key.dst_port = load16(t + 2);
  key.vlan_id = vlan;
  key.inner_vlan_id = 0;
  key.ingress_if = 0;
  out.tcp_flags = protocol == kProtoTcp ? t[13] : 0;
  out.ip_length = static_cast<uint32_t>(total);
  out.mpls_stack = MplsStack{};
  std::memcpy(out.dst_mac.data(), p, 6);
  std::memcpy(out.src_mac.data(), p + 6, 6);
  out.has_mac = true;
  out.has_mpls = false;
  out.is_fragment = false;
  out.tunnel_depth = 0;
  out.l3_offset = static_cast<uint16_t>(off);
  return true;
}

}  // namespace common_path
}  // namespace flowfold::probe
