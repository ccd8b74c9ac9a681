#pragma once
// Shared helpers for the decoder tests: byte-vector concatenation, address
// literals, a counters-by-name view, and a harness that checks the
// packets == decoded + skipped invariant after every decode.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "flowfold/probe/decoder.h"

namespace flowfold::probe::test {

using Bytes = std::vector<uint8_t>;
using Counts = std::map<std::string, uint64_t>;

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline std::array<uint8_t, 16> v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  std::array<uint8_t, 16> addr{};
  addr[0] = a;
  addr[1] = b;
  addr[2] = c;
  addr[3] = d;
  return addr;
}

inline std::array<uint8_t, 16> v6(const char* text) {
  std::array<uint8_t, 16> addr{};
  EXPECT_EQ(inet_pton(AF_INET6, text, addr.data()), 1) << text;
  return addr;
}

/// Every counter that is not zero, by name.
inline Counts nonZero(const DecodeCounters& c) {
  Counts out;
  c.forEach([&](std::string_view name, uint64_t value) {
    if (value != 0) out.emplace(std::string(name), value);
  });
  return out;
}

/// The invariant every test checks: each packet has exactly one outcome.
inline void expectInvariant(const DecodeCounters& c) {
  EXPECT_EQ(c.packets, c.decoded + c.skipped()) << "packets != decoded + skipped";
}

/// A decoder plus the last result; checks the invariant on every call.
struct Harness {
  explicit Harness(int dlt, FragmentTableConfig fragments = {},
                   TunnelMode tunnels = TunnelMode::kOuter)
      : decoder(dlt, fragments, tunnels) {}
  Harness(int dlt, TunnelMode tunnels) : Harness(dlt, {}, tunnels) {}

  DecodeStatus run(const Bytes& packet, uint32_t wirelen = 0, uint64_t ts_ms = 0) {
    return runPrefix(packet, static_cast<uint32_t>(packet.size()), wirelen, ts_ms);
  }
  // Decodes only the first `caplen` bytes, as a snap length would.
  DecodeStatus runPrefix(const Bytes& packet, uint32_t caplen, uint32_t wirelen = 0,
                         uint64_t ts_ms = 0) {
    if (wirelen == 0) wirelen = static_cast<uint32_t>(packet.size());
    // Mode both: `inner` receives the second flow (tunnel_depth 0 if none).
    DecodedPacket* second = decoder.tunnelMode() == TunnelMode::kBoth ? &inner : nullptr;
    status = decoder.decode(packet.data(), caplen, wirelen, ts_ms, info, second);
    expectInvariant(decoder.counters());
    return status;
  }
  Counts counts() const { return nonZero(decoder.counters()); }

  Decoder decoder;
  DecodedPacket info;
  DecodedPacket inner;
  DecodeStatus status = DecodeStatus::kOk;
};

// ---- hand-built headers --------------------------------------------------
// Canonical pieces reused across tests; each byte is annotated. Checksums
// are left 0: the decoder does not verify them.

/// Ethernet: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, then the EtherType.
inline Bytes ethernet(uint8_t type_hi, uint8_t type_lo) {
  return {0x00, 0x11, 0x22, 0x33, 0x44, 0x55,  // destination MAC
          0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,  // source MAC
          type_hi, type_lo};
}

/// IPv4, IHL 5, total length 32 (20 + UDP 8 + 4 payload), id 0x1234, no
/// fragmentation, TOS 0x28, TTL 64, UDP, 192.0.2.1 -> 198.51.100.2.
inline const Bytes kIpv4Udp = {
    0x45, 0x28, 0x00, 0x20,  // version 4, IHL 5, TOS 0x28, total length 32
    0x12, 0x34, 0x00, 0x00,  // id 0x1234, flags/offset 0
    0x40, 0x11, 0x00, 0x00,  // TTL 64, protocol 17, checksum
    0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
    0xc6, 0x33, 0x64, 0x02,  // 198.51.100.2
};
/// UDP 1234 -> 53, length 12, then 4 payload bytes.
inline const Bytes kUdp1234To53 = {
    0x04, 0xd2, 0x00, 0x35,  // ports 1234, 53
    0x00, 0x0c, 0x00, 0x00,  // length 12, checksum
    0xde, 0xad, 0xbe, 0xef,  // payload
};

/// IPv4 + TCP: total length 40, TTL 128, 10.0.0.1 -> 10.0.0.2, then a
/// 20-byte TCP header 50000 -> 443 with SYN|ACK.
inline const Bytes kIpv4Tcp = {
    0x45, 0x00, 0x00, 0x28,  // IHL 5, TOS 0, total length 40
    0xab, 0xcd, 0x40, 0x00,  // id, DF set (not a fragment)
    0x80, 0x06, 0x00, 0x00,  // TTL 128, protocol 6
    0x0a, 0x00, 0x00, 0x01,  // 10.0.0.1
    0x0a, 0x00, 0x00, 0x02,  // 10.0.0.2
    0xc3, 0x50, 0x01, 0xbb,  // ports 50000, 443
    0x00, 0x00, 0x00, 0x01,  // seq
    0x00, 0x00, 0x00, 0x00,  // ack
    0x50, 0x12, 0x72, 0x10,  // data offset 5, flags SYN|ACK (0x12), window
    0x00, 0x00, 0x00, 0x00,  // checksum, urgent pointer
};

/// IPv4 header without options: TOS 0, id 0x0001, no fragmentation, TTL 64,
/// 192.0.2.1 -> 198.51.100.2, the given total length and protocol.
inline Bytes ipv4Header(uint16_t total_length, uint8_t protocol) {
  return {0x45, 0x00, static_cast<uint8_t>(total_length >> 8), static_cast<uint8_t>(total_length),
          0x00, 0x01, 0x00, 0x00,  // id 1, flags/offset 0
          0x40, protocol, 0x00, 0x00,
          0xc0, 0x00, 0x02, 0x01,   // 192.0.2.1
          0xc6, 0x33, 0x64, 0x02};  // 198.51.100.2
}

/// IPv6 fixed header with traffic class 0xb8, hop limit 64,
/// 2001:db8::1 -> 2001:db8::2; payload length and next header given.
inline Bytes ipv6Header(uint16_t payload_length, uint8_t next_header) {
  return {0x6b, 0x80, 0x00, 0x00,  // version 6, traffic class 0xb8, flow label 0
          static_cast<uint8_t>(payload_length >> 8), static_cast<uint8_t>(payload_length),
          next_header, 0x40,  // next header, hop limit 64
          0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,   // 2001:db8::1
          0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};  // 2001:db8::2
}

/// IPv6 + UDP 1234 -> 53 (payload length 12).
inline Bytes ipv6Udp() { return cat({ipv6Header(12, 17), kUdp1234To53}); }

}  // namespace flowfold::probe::test
