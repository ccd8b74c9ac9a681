// Tunnels: every encapsulation in every mode (outer, inner, both), with
// hand-built packets whose inner and outer values are known by
// construction. Failure paths (inner packet cut, not IP, malformed), nesting,
// the depth limit, outer fragments and the link-layer context are covered
// below. The Harness checks packets == decoded + skipped after every call.

#include <string>
#include <vector>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

Bytes be16(uint16_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }

/// Outer IPv4 around `payload`: 203.0.113.1 -> 203.0.113.2, TOS 0x10,
/// TTL 255, total length computed, the given flags/fragment offset word.
Bytes outer4(uint8_t protocol, const Bytes& payload, uint16_t frag = 0) {
  const auto total = static_cast<uint16_t>(20 + payload.size());
  Bytes h = {0x45, 0x10, static_cast<uint8_t>(total >> 8), static_cast<uint8_t>(total),
             0x00, 0x07, static_cast<uint8_t>(frag >> 8), static_cast<uint8_t>(frag),
             0xff, protocol, 0x00, 0x00,
             203, 0, 113, 1,
             203, 0, 113, 2};
  return cat({h, payload});
}

/// Outer IPv6 around `payload`: 2001:db8:ff::1 -> 2001:db8:ff::2, hop limit 255.
Bytes outer6(uint8_t next, const Bytes& payload) {
  const auto plen = static_cast<uint16_t>(payload.size());
  Bytes h = {0x60, 0x00, 0x00, 0x00, static_cast<uint8_t>(plen >> 8), static_cast<uint8_t>(plen),
             next, 0xff,
             0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
             0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
  return cat({h, payload});
}

/// UDP 49152 -> `dst` around `payload` (length computed).
Bytes udp(uint16_t dst, const Bytes& payload) {
  return cat({{0xc0, 0x00}, be16(dst), be16(static_cast<uint16_t>(8 + payload.size())), {0x00, 0x00},
              payload});
}

/// The tunnelled Ethernet header: 02:00:00:00:00:02 <- 02:00:00:00:00:01.
Bytes innerEthernet(uint16_t type) {
  return cat({{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01}, be16(type)});
}

const Bytes kOuterEth4 = ethernet(0x08, 0x00);
const Bytes kOuterEth6 = ethernet(0x86, 0xdd);
const Bytes kInnerUdp4 = cat({kIpv4Udp, kUdp1234To53});  // 32 bytes
const std::array<uint8_t, 6> kOuterSrcMac = {0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb};
const std::array<uint8_t, 6> kInnerSrcMac = {0x02, 0, 0, 0, 0, 0x01};
const std::array<uint8_t, 6> kInnerDstMac = {0x02, 0, 0, 0, 0, 0x02};

/// What a flow's packet should look like.
struct Expect {
  uint8_t version;
  std::array<uint8_t, 16> src, dst;
  uint8_t protocol;
  uint16_t src_port, dst_port;
  uint32_t length;
  uint8_t tos, ttl, tcp_flags;
};

// The three inner packets (values as built in decoder_test_util.h).
const Expect kUdp4 = {4, v4(192, 0, 2, 1), v4(198, 51, 100, 2), 17, 1234, 53, 32, 0x28, 64, 0};
const Expect kTcp4 = {4, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 6, 50000, 443, 40, 0x00, 128, 0x12};
const Expect kUdp6 = {6, v6("2001:db8::1"), v6("2001:db8::2"), 17, 1234, 53, 52, 0xb8, 64, 0};

Expect outerExpect4(uint8_t protocol, uint32_t length, uint16_t dst_port = 0) {
  return {4, v4(203, 0, 113, 1), v4(203, 0, 113, 2), protocol,
          static_cast<uint16_t>(dst_port != 0 ? 49152 : 0), dst_port, length, 0x10, 255, 0};
}
Expect outerExpect6(uint8_t next, uint32_t length) {
  return {6, v6("2001:db8:ff::1"), v6("2001:db8:ff::2"), next, 0, 0, length, 0x00, 255, 0};
}

void expectPacket(const DecodedPacket& info, const Expect& e, uint8_t depth, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(info.key.ip_version, e.version);
  EXPECT_EQ(info.key.src_addr, e.src);
  EXPECT_EQ(info.key.dst_addr, e.dst);
  EXPECT_EQ(info.key.protocol, e.protocol);
  EXPECT_EQ(info.key.src_port, e.src_port);
  EXPECT_EQ(info.key.dst_port, e.dst_port);
  EXPECT_EQ(info.ip_length, e.length);
  EXPECT_EQ(info.tos, e.tos);
  EXPECT_EQ(info.ttl, e.ttl);
  EXPECT_EQ(info.tcp_flags, e.tcp_flags);
  EXPECT_EQ(info.tunnel_depth, depth);
}

struct TunnelCase {
  std::string name;
  Bytes frame;              // an Ethernet frame
  Expect outer;
  Expect inner;
  std::string counter;      // the tunnel's counter
  bool inner_mac;           // the inner packet has its own Ethernet header
};

std::vector<TunnelCase> tunnelCases() {
  const uint32_t u4 = 32, t4 = 40, u6 = 52;  // inner IP lengths
  std::vector<TunnelCase> cases;
  // ---- IP in IP
  cases.push_back({"4in4", cat({kOuterEth4, outer4(4, kInnerUdp4)}), outerExpect4(4, 20 + u4), kUdp4,
                   "tunnel_ipip", false});
  cases.push_back({"6in4", cat({kOuterEth4, outer4(41, ipv6Udp())}), outerExpect4(41, 20 + u6), kUdp6,
                   "tunnel_6in4", false});
  cases.push_back({"4in6", cat({kOuterEth6, outer6(4, kIpv4Tcp)}), outerExpect6(4, 40 + t4), kTcp4,
                   "tunnel_ipip", false});
  cases.push_back({"6in6", cat({kOuterEth6, outer6(41, ipv6Udp())}), outerExpect6(41, 40 + u6), kUdp6,
                   "tunnel_6in4", false});
  // ---- GRE
  cases.push_back({"gre-ipv4", cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, kInnerUdp4}))}),
                   outerExpect4(47, 20 + 4 + u4), kUdp4, "tunnel_gre", false});
  cases.push_back({"gre-checksum-key-seq",
                   cat({kOuterEth4, outer4(47, cat({{0xb0, 0x00, 0x08, 0x00},  // C, K, S; IPv4
                                                    {0x12, 0x34, 0x00, 0x00},  // checksum, reserved1
                                                    {0x00, 0x00, 0x00, 0x2a},  // key 42
                                                    {0x00, 0x00, 0x00, 0x01},  // sequence 1
                                                    kIpv4Tcp}))}),
                   outerExpect4(47, 20 + 16 + t4), kTcp4, "tunnel_gre", false});
  cases.push_back({"gre-key-ipv6",
                   cat({kOuterEth4, outer4(47, cat({{0x20, 0x00, 0x86, 0xdd, 0x00, 0x00, 0x00, 0x07}, ipv6Udp()}))}),
                   outerExpect4(47, 20 + 8 + u6), kUdp6, "tunnel_gre", false});
  cases.push_back({"gre-over-ipv6",
                   cat({kOuterEth6, outer6(47, cat({{0x00, 0x00, 0x08, 0x00}, kInnerUdp4}))}),
                   outerExpect6(47, 40 + 4 + u4), kUdp4, "tunnel_gre", false});
  cases.push_back({"gre-teb",
                   cat({kOuterEth4, outer4(47, cat({{0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x00, 0x07},
                                                    innerEthernet(0x0800), kInnerUdp4}))}),
                   outerExpect4(47, 20 + 8 + 14 + u4), kUdp4, "tunnel_gre", true});
  // ---- ERSPAN over GRE
  cases.push_back({"erspan-type-i",
                   cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x88, 0xbe},  // no S: type I, no header
                                                    innerEthernet(0x0800), kInnerUdp4}))}),
                   outerExpect4(47, 20 + 4 + 14 + u4), kUdp4, "tunnel_erspan", true});
  cases.push_back({"erspan-type-ii",
                   cat({kOuterEth4, outer4(47, cat({{0x10, 0x00, 0x88, 0xbe, 0x00, 0x00, 0x00, 0x05},  // S, seq 5
                                                    {0x10, 0x64, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},  // ver 1, VLAN 100, session 1
                                                    innerEthernet(0x0800), kIpv4Tcp}))}),
                   outerExpect4(47, 20 + 8 + 8 + 14 + t4), kTcp4, "tunnel_erspan", true});
  cases.push_back({"erspan-type-iii-subheader",
                   cat({kOuterEth4, outer4(47, cat({{0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x05},
                                                    {0x20, 0x01, 0x00, 0x65},  // ver 2, VLAN 1, session 101
                                                    {0x01, 0x02, 0x03, 0x04},  // timestamp
                                                    {0x00, 0x00, 0x00, 0x01},  // SGT 0; FT 0 (Ethernet), O set
                                                    {0, 0, 0, 0, 0, 0, 0, 0},  // platform subheader
                                                    innerEthernet(0x0800), kInnerUdp4}))}),
                   outerExpect4(47, 20 + 8 + 12 + 8 + 14 + u4), kUdp4, "tunnel_erspan", true});
  cases.push_back({"erspan-type-iii-ip-frame",
                   cat({kOuterEth4, outer4(47, cat({{0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x05},
                                                    {0x20, 0x01, 0x00, 0x65, 0x01, 0x02, 0x03, 0x04},
                                                    {0x00, 0x00, 0x08, 0x00},  // FT 2 (IP), no subheader
                                                    kInnerUdp4}))}),
                   outerExpect4(47, 20 + 8 + 12 + u4), kUdp4, "tunnel_erspan", false});
  // ---- UDP tunnels
  cases.push_back({"vxlan",
                   cat({kOuterEth4, outer4(17, udp(4789, cat({{0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00},
                                                              innerEthernet(0x0800), kInnerUdp4})))}),
                   outerExpect4(17, 20 + 8 + 8 + 14 + u4, 4789), kUdp4, "tunnel_vxlan", true});
  cases.push_back({"geneve-options",
                   cat({kOuterEth4,
                        outer4(17, udp(6081, cat({{0x02, 0x00, 0x65, 0x58, 0x00, 0x00, 0x0a, 0x00},  // 2 words of options
                                                  {0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef},  // one option
                                                  innerEthernet(0x0800), kIpv4Tcp})))}),
                   outerExpect4(17, 20 + 8 + 16 + 14 + t4, 6081), kTcp4, "tunnel_geneve", true});
  cases.push_back({"geneve-ipv6-payload",
                   cat({kOuterEth4, outer4(17, udp(6081, cat({{0x00, 0x00, 0x86, 0xdd, 0x00, 0x00, 0x0a, 0x00},
                                                              ipv6Udp()})))}),
                   outerExpect4(17, 20 + 8 + 8 + u6, 6081), kUdp6, "tunnel_geneve", false});
  cases.push_back({"gtpu",
                   cat({kOuterEth4, outer4(17, udp(2152, cat({{0x30, 0xff, 0x00, 0x20, 0x00, 0x00, 0x00, 0x01},
                                                              kInnerUdp4})))}),
                   outerExpect4(17, 20 + 8 + 8 + u4, 2152), kUdp4, "tunnel_gtpu", false});
  cases.push_back({"gtpu-extension-headers",
                   cat({kOuterEth4,
                        outer4(17, udp(2152, cat({{0x34, 0xff, 0x00, 0x38, 0x00, 0x00, 0x00, 0x01},  // E; length 56
                                                  {0x00, 0x01, 0x00, 0x85},  // seq, N-PDU, next: PDU session container
                                                  {0x01, 0x10, 0x05, 0xc0},  // 4 bytes, next 0xc0
                                                  {0x02, 1, 2, 3, 4, 5, 6, 0x00},  // 8 bytes, next 0: end
                                                  kIpv4Tcp})))}),
                   outerExpect4(17, 20 + 8 + 8 + 4 + 12 + t4, 2152), kTcp4, "tunnel_gtpu", false});
  cases.push_back({"gtpu-sequence-only",
                   cat({kOuterEth4,
                        outer4(17, udp(2152, cat({{0x32, 0xff, 0x00, 0x24, 0x00, 0x00, 0x00, 0x01},  // S only
                                                  {0x12, 0x34, 0x00, 0x85},  // next type ignored: E not set
                                                  kInnerUdp4})))}),
                   outerExpect4(17, 20 + 8 + 8 + 4 + u4, 2152), kUdp4, "tunnel_gtpu", false});
  return cases;
}

TEST(DecoderTunnel, OuterModeAccountsTheOuterPacketAndOpensNothing) {
  for (const TunnelCase& c : tunnelCases()) {
    Harness h(dlt::kEn10mb);
    ASSERT_EQ(h.run(c.frame), DecodeStatus::kOk) << c.name;
    expectPacket(h.info, c.outer, 0, c.name);
    EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}})) << c.name;
  }
}

TEST(DecoderTunnel, InnerModeAccountsTheInnerPacket) {
  for (const TunnelCase& c : tunnelCases()) {
    Harness h(dlt::kEn10mb, TunnelMode::kInner);
    ASSERT_EQ(h.run(c.frame), DecodeStatus::kOk) << c.name;
    expectPacket(h.info, c.inner, 1, c.name);
    EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {c.counter, 1}, {"tunnel_decapsulated", 1}}))
        << c.name;
    EXPECT_TRUE(h.info.has_mac) << c.name;
    EXPECT_EQ(h.info.src_mac, c.inner_mac ? kInnerSrcMac : kOuterSrcMac) << c.name;
    if (c.inner_mac) {
      EXPECT_EQ(h.info.dst_mac, kInnerDstMac) << c.name;
    }
  }
}

TEST(DecoderTunnel, BothModeGivesTheOuterAndTheInnerPacket) {
  for (const TunnelCase& c : tunnelCases()) {
    Harness h(dlt::kEn10mb, TunnelMode::kBoth);
    ASSERT_EQ(h.run(c.frame), DecodeStatus::kOk) << c.name;
    expectPacket(h.info, c.outer, 0, c.name + " outer");
    expectPacket(h.inner, c.inner, 1, c.name + " inner");
    EXPECT_EQ(h.info.src_mac, kOuterSrcMac) << c.name;
    EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {c.counter, 1}, {"tunnel_decapsulated", 1}}))
        << c.name;
  }
}

TEST(DecoderTunnel, BothModeWithoutATunnelGivesNoSecondPacket) {
  Harness h(dlt::kEn10mb, TunnelMode::kBoth);
  h.inner.tunnel_depth = 7;  // left over from an earlier packet
  ASSERT_EQ(h.run(cat({kOuterEth4, kInnerUdp4})), DecodeStatus::kOk);
  expectPacket(h.info, kUdp4, 0, "plain UDP");
  EXPECT_EQ(h.inner.tunnel_depth, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderTunnel, PptpAndGtpSignallingStayOuterFlows) {
  struct Case {
    std::string name;
    Bytes frame;
    Expect outer;
  };
  const std::vector<Case> cases = {
      // Enhanced GRE (version 1, PPTP) carrying PPP: not a tunnel flowfold opens.
      {"gre-v1-pptp",
       cat({kOuterEth4, outer4(47, {0x30, 0x81, 0x88, 0x0b, 0x00, 0x04, 0x00, 0x01, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21})}),
       outerExpect4(47, 20 + 16)},
      // GTP-U echo request (type 1), and GTP' (PT 0).
      {"gtpu-echo", cat({kOuterEth4, outer4(17, udp(2152, {0x32, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00}))}),
       outerExpect4(17, 20 + 8 + 12, 2152)},
      {"gtp-prime", cat({kOuterEth4, outer4(17, udp(2152, cat({{0x20, 0xff, 0x00, 0x20, 0, 0, 0, 1}, kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 32, 2152)},
  };
  for (const Case& c : cases) {
    for (TunnelMode mode : {TunnelMode::kInner, TunnelMode::kBoth}) {
      Harness h(dlt::kEn10mb, mode);
      ASSERT_EQ(h.run(c.frame), DecodeStatus::kOk) << c.name;
      expectPacket(h.info, c.outer, 0, c.name);
      EXPECT_EQ(h.inner.tunnel_depth, 0) << c.name;
      EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}})) << c.name;
    }
  }
}

TEST(DecoderTunnel, UndecodableInnerPacketIsAccountedAsTheOuterFlow) {
  struct Case {
    std::string name;
    Bytes frame;
    Expect outer;
    uint32_t caplen = 0;  // 0: the whole frame
  };
  const Bytes vxlan_header = {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00};
  Bytes bad_ihl = kInnerUdp4;
  bad_ihl[0] = 0x44;  // IHL 4: 16 bytes, less than the minimum
  const Bytes arp = {0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01};
  const std::vector<Case> cases = {
      {"gre-carrying-arp", cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x06}, arp}))}),
       outerExpect4(47, 20 + 4 + 8)},
      {"gre-routing-bit", cat({kOuterEth4, outer4(47, cat({{0x40, 0x00, 0x08, 0x00}, kInnerUdp4}))}),
       outerExpect4(47, 20 + 4 + 32)},
      {"gre-cut-short", cat({kOuterEth4, outer4(47, {0x00, 0x00})}), outerExpect4(47, 20 + 2)},
      {"gre-teb-carrying-arp",
       cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x65, 0x58}, innerEthernet(0x0806), arp}))}),
       outerExpect4(47, 20 + 4 + 14 + 8)},
      {"erspan-iii-frame-type-7",
       cat({kOuterEth4, outer4(47, cat({{0x10, 0x00, 0x22, 0xeb, 0x00, 0x00, 0x00, 0x05},
                                        {0x20, 0x01, 0x00, 0x65, 0x01, 0x02, 0x03, 0x04},
                                        {0x00, 0x00, 0x1c, 0x00},  // FT 7
                                        kInnerUdp4}))}),
       outerExpect4(47, 20 + 8 + 12 + 32)},
      {"vxlan-without-i-flag",
       cat({kOuterEth4, outer4(17, udp(4789, cat({{0x00, 0, 0, 0, 0, 0, 0x64, 0}, innerEthernet(0x0800), kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 14 + 32, 4789)},
      {"vxlan-inner-bad-ihl",
       cat({kOuterEth4, outer4(17, udp(4789, cat({vxlan_header, innerEthernet(0x0800), bad_ihl})))}),
       outerExpect4(17, 20 + 8 + 8 + 14 + 32, 4789)},
      // Cut by the snap length inside the inner IPv4 header (14 + 20 + 8 + 8 + 14 + 10).
      {"vxlan-inner-cut-by-snaplen",
       cat({kOuterEth4, outer4(17, udp(4789, cat({vxlan_header, innerEthernet(0x0800), kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 14 + 32, 4789), 14 + 20 + 8 + 8 + 14 + 10},
      // Cut inside the inner UDP ports: the inner packet would be keyed wrongly.
      {"vxlan-inner-ports-cut-by-snaplen",
       cat({kOuterEth4, outer4(17, udp(4789, cat({vxlan_header, innerEthernet(0x0800), kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 14 + 32, 4789), 14 + 20 + 8 + 8 + 14 + 20 + 2},
      {"geneve-version-1",
       cat({kOuterEth4, outer4(17, udp(6081, cat({{0x40, 0x00, 0x08, 0x00, 0, 0, 0x0a, 0}, kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 32, 6081)},
      {"geneve-options-beyond-datagram",
       cat({kOuterEth4, outer4(17, udp(6081, {0x3f, 0x00, 0x08, 0x00, 0, 0, 0x0a, 0}))}),
       outerExpect4(17, 20 + 8 + 8, 6081)},
      {"gtpu-extension-length-0",
       cat({kOuterEth4, outer4(17, udp(2152, cat({{0x34, 0xff, 0x00, 0x28, 0, 0, 0, 1},
                                                  {0x00, 0x01, 0x00, 0x85},
                                                  {0x00, 0x00, 0x00, 0x00},
                                                  kInnerUdp4})))}),
       outerExpect4(17, 20 + 8 + 8 + 8 + 32, 2152)},
      {"gtpu-carrying-non-ip",
       cat({kOuterEth4, outer4(17, udp(2152, cat({{0x30, 0xff, 0x00, 0x08, 0, 0, 0, 1}, arp})))}),
       outerExpect4(17, 20 + 8 + 8 + 8, 2152)},
      // Protocol 4 announces IPv4; an IPv6 packet there is malformed.
      {"ipip-carrying-ipv6", cat({kOuterEth4, outer4(4, ipv6Udp())}), outerExpect4(4, 20 + 52)},
      {"ipip-empty", cat({kOuterEth4, outer4(4, {})}), outerExpect4(4, 20)},
  };
  for (const Case& c : cases) {
    for (TunnelMode mode : {TunnelMode::kInner, TunnelMode::kBoth}) {
      Harness h(dlt::kEn10mb, mode);
      const uint32_t caplen = c.caplen != 0 ? c.caplen : static_cast<uint32_t>(c.frame.size());
      ASSERT_EQ(h.runPrefix(c.frame, caplen), DecodeStatus::kOk) << c.name;
      expectPacket(h.info, c.outer, 0, c.name);
      EXPECT_EQ(h.inner.tunnel_depth, 0) << c.name;
      EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"tunnel_inner_undecodable", 1}})) << c.name;
    }
  }
}

TEST(DecoderTunnel, OuterPacketThatDoesNotDecodeIsSkippedAsBefore) {
  // The tunnel modes change nothing for a packet whose outer headers fail.
  Harness h(dlt::kEn10mb, TunnelMode::kInner);
  Bytes frame = cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, kInnerUdp4}))});
  EXPECT_EQ(h.runPrefix(frame, 14 + 10), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"truncated_ip", 1}}));
}

TEST(DecoderTunnel, NestedTunnelsAreOpenedToTheInnermostPacket) {
  // IPv4 (203.0.113.x) > IP-in-IP (192.0.2.1 -> 198.51.100.2, GRE) > GRE > IPv4 TCP.
  Bytes middle = cat({ipv4Header(20 + 4 + 40, 47), {0x00, 0x00, 0x08, 0x00}, kIpv4Tcp});
  Bytes frame = cat({kOuterEth4, outer4(4, middle)});
  Harness inner(dlt::kEn10mb, TunnelMode::kInner);
  ASSERT_EQ(inner.run(frame), DecodeStatus::kOk);
  expectPacket(inner.info, kTcp4, 2, "innermost");
  EXPECT_EQ(inner.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"tunnel_ipip", 1}, {"tunnel_gre", 1},
                                    {"tunnel_decapsulated", 1}}));
  // Both: the outer and the innermost packet; the middle one is no flow.
  Harness both(dlt::kEn10mb, TunnelMode::kBoth);
  ASSERT_EQ(both.run(frame), DecodeStatus::kOk);
  expectPacket(both.info, outerExpect4(4, 20 + 64), 0, "outer");
  expectPacket(both.inner, kTcp4, 2, "innermost");
}

TEST(DecoderTunnel, NestedTunnelWithUndecodableCoreStopsAtTheLastPacketThatDecoded) {
  // IPv4 > GRE > IPv4 (192.0.2.1 -> 198.51.100.2, GRE) > GRE > ARP.
  const Bytes arp = {0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01};
  Bytes middle = cat({ipv4Header(20 + 4 + 8, 47), {0x00, 0x00, 0x08, 0x06}, arp});
  Harness h(dlt::kEn10mb, TunnelMode::kInner);
  ASSERT_EQ(h.run(cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, middle}))})), DecodeStatus::kOk);
  expectPacket(h.info, {4, v4(192, 0, 2, 1), v4(198, 51, 100, 2), 47, 0, 0, 32, 0x00, 64, 0}, 1, "middle");
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"tunnel_gre", 1}, {"tunnel_decapsulated", 1},
                                {"tunnel_inner_undecodable", 1}}));
}

TEST(DecoderTunnel, DepthLimitStopsAtFourEncapsulations) {
  // Six IPv4 headers, 203.0.113.1 -> .2, each carrying the next (protocol 4),
  // the last UDP: five encapsulations, one more than kMaxTunnelDepth.
  static_assert(Decoder::kMaxTunnelDepth == 4);
  Bytes packet = kInnerUdp4;
  for (int i = 0; i < 5; ++i) packet = outer4(4, packet);
  Harness h(dlt::kRaw, TunnelMode::kInner);
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  // Depth 4 is the fifth header: 20 bytes of IPv4 around the UDP packet.
  expectPacket(h.info, outerExpect4(4, 20 + 32), 4, "depth 4");
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"tunnel_ipip", 4}, {"tunnel_decapsulated", 1},
                                {"tunnel_depth_limit", 1}}));
  // Four encapsulations are within the limit.
  Harness four(dlt::kRaw, TunnelMode::kInner);
  ASSERT_EQ(four.run(outer4(4, outer4(4, outer4(4, outer4(4, kInnerUdp4))))), DecodeStatus::kOk);
  expectPacket(four.info, kUdp4, 4, "innermost");
  EXPECT_EQ(four.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"tunnel_ipip", 4}, {"tunnel_decapsulated", 1}}));
}

TEST(DecoderTunnel, FragmentedOuterPacketsAreNotOpened) {
  Bytes gre = cat({{0x00, 0x00, 0x08, 0x00}, kInnerUdp4});
  // First fragment (MF set, offset 0): the inner header is there, but the
  // rest of the datagram is not; all its fragments stay in the outer flow.
  Harness eth(dlt::kEn10mb, TunnelMode::kInner);
  ASSERT_EQ(eth.run(cat({kOuterEth4, outer4(47, gre, 0x2000)})), DecodeStatus::kOk);
  expectPacket(eth.info, outerExpect4(47, 20 + 36), 0, "first fragment");
  ASSERT_EQ(eth.run(cat({kOuterEth4, outer4(47, Bytes(16, 0xab), 0x0005)})), DecodeStatus::kOk);
  expectPacket(eth.info, outerExpect4(47, 20 + 16), 0, "last fragment");
  EXPECT_EQ(eth.counts(), (Counts{{"packets", 2}, {"decoded", 2}, {"fragments_first", 1}, {"fragments_later", 1},
                                  {"tunnel_outer_fragment", 2}}));
}

TEST(DecoderTunnel, LinkContextCarriesOverUnlessTheInnerFrameHasItsOwn) {
  // Outer VLAN 100 and IP-in-IP: the inner flow keeps VLAN 100 and the frame's MACs.
  Bytes tagged = cat({ethernet(0x81, 0x00), {0x00, 0x64, 0x08, 0x00}, outer4(4, kInnerUdp4)});
  Harness h(dlt::kEn10mb, TunnelMode::kInner);
  ASSERT_EQ(h.run(tagged), DecodeStatus::kOk);
  expectPacket(h.info, kUdp4, 1, "ipip");
  EXPECT_EQ(h.info.key.vlan_id, 100);
  EXPECT_EQ(h.info.src_mac, kOuterSrcMac);
  // Outer QinQ 100/101, VXLAN carrying a frame tagged 200: the inner frame's tag only.
  Bytes vxlan = cat({ethernet(0x88, 0xa8), {0x00, 0x64, 0x81, 0x00}, {0x00, 0x65, 0x08, 0x00},
                     outer4(17, udp(4789, cat({{0x08, 0, 0, 0, 0, 0, 0x64, 0}, innerEthernet(0x8100),
                                               {0x00, 0xc8, 0x08, 0x00}, kInnerUdp4})))});
  ASSERT_EQ(h.run(vxlan), DecodeStatus::kOk);
  expectPacket(h.info, kUdp4, 1, "vxlan");
  EXPECT_EQ(h.info.key.vlan_id, 200);
  EXPECT_EQ(h.info.key.inner_vlan_id, 0);
  EXPECT_EQ(h.info.src_mac, kInnerSrcMac);
  // Both: the outer flow keeps its own tags.
  Harness both(dlt::kEn10mb, TunnelMode::kBoth);
  ASSERT_EQ(both.run(vxlan), DecodeStatus::kOk);
  EXPECT_EQ(both.info.key.vlan_id, 100);
  EXPECT_EQ(both.info.key.inner_vlan_id, 101);
  EXPECT_EQ(both.inner.key.vlan_id, 200);
  // An MPLS label outside the tunnel is kept by the inner flow.
  Bytes mpls = cat({ethernet(0x88, 0x47), {0x00, 0x01, 0x41, 0x40},  // label 20, bottom of stack
                    outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, kInnerUdp4}))});
  ASSERT_EQ(h.run(mpls), DecodeStatus::kOk);
  expectPacket(h.info, kUdp4, 1, "mpls gre");
  EXPECT_TRUE(h.info.has_mpls);
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x1000141, 0, 0}));  // label 20, TC 0, S 1
}

TEST(DecoderTunnel, InnerFragmentsAreMatchedThroughTheFragmentTable) {
  // GRE carrying a fragmented UDP datagram: the later fragment gets the
  // ports its first fragment (seen through the same tunnel) had.
  Bytes first = kInnerUdp4;
  first[6] = 0x20;  // MF
  Bytes later = {0x45, 0x28, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x01,  // id 0x1234, offset 8 bytes, last
                 0x40, 0x11, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02,
                 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
  Harness h(dlt::kEn10mb, TunnelMode::kInner);
  ASSERT_EQ(h.run(cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, first}))})), DecodeStatus::kOk);
  ASSERT_EQ(h.run(cat({kOuterEth4, outer4(47, cat({{0x00, 0x00, 0x08, 0x00}, later}))})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.info.key.dst_port, 53);
  EXPECT_EQ(h.info.ip_length, 28u);
  EXPECT_TRUE(h.info.is_fragment);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"decoded", 2}, {"fragments_first", 1}, {"fragments_later", 1},
                                {"tunnel_gre", 2}, {"tunnel_decapsulated", 2}}));
}

TEST(DecoderTunnel, EveryPrefixAndMutationOfTunnelFramesIsSafe) {
  // Each prefix is a snap length: the outer packet decodes or is cut as in
  // mode outer; an inner packet that is cut never changes the status.
  uint32_t seed = 12345;
  for (const TunnelCase& c : tunnelCases()) {
    for (TunnelMode mode : {TunnelMode::kInner, TunnelMode::kBoth}) {
      Harness h(dlt::kEn10mb, mode);
      Harness outer(dlt::kEn10mb);
      for (size_t len = 0; len <= c.frame.size(); ++len) {
        const auto caplen = static_cast<uint32_t>(len);
        const auto wirelen = static_cast<uint32_t>(c.frame.size());
        EXPECT_EQ(h.runPrefix(c.frame, caplen, wirelen), outer.runPrefix(c.frame, caplen, wirelen))
            << c.name << " caplen " << len;
      }
      for (int round = 0; round < 500; ++round) {
        Bytes copy = c.frame;
        for (int flips = 0; flips < 3; ++flips) {
          seed = seed * 1103515245u + 12345u;
          copy[(seed >> 8) % copy.size()] = static_cast<uint8_t>(seed >> 24);
        }
        h.run(copy);
        if (h.status == DecodeStatus::kOk) {
          EXPECT_LE(h.info.tunnel_depth, Decoder::kMaxTunnelDepth);
        }
      }
    }
  }
}

TEST(DecoderTunnel, ModeNames) {
  TunnelMode mode = TunnelMode::kOuter;
  EXPECT_TRUE(parseTunnelMode("inner", mode));
  EXPECT_EQ(mode, TunnelMode::kInner);
  EXPECT_TRUE(parseTunnelMode("both", mode));
  EXPECT_EQ(mode, TunnelMode::kBoth);
  EXPECT_TRUE(parseTunnelMode("outer", mode));
  EXPECT_EQ(mode, TunnelMode::kOuter);
  EXPECT_FALSE(parseTunnelMode("Inner", mode));
  EXPECT_FALSE(parseTunnelMode("", mode));
  EXPECT_EQ(tunnelModeName(TunnelMode::kBoth), "both");
}

}  // namespace
}  // namespace flowfold::probe::test
