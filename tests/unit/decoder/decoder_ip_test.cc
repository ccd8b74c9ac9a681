// IPv4 / IPv6 / transport layers, hand-built packets on raw-IP and Ethernet
// links, including one bad packet for every failure path.

#include <gtest/gtest.h>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

const Bytes kEthIpv4 = ethernet(0x08, 0x00);
const Bytes kEthIpv6 = ethernet(0x86, 0xdd);

void expectUdpPorts(const DecodedPacket& info) {
  EXPECT_EQ(info.key.protocol, 17);
  EXPECT_EQ(info.key.src_port, 1234);
  EXPECT_EQ(info.key.dst_port, 53);
}

// ---- IPv4 ----------------------------------------------------------------------

TEST(DecoderIpv4, OptionsAreSkippedByIhl) {
  Harness h(dlt::kRaw);
  Bytes packet = {
      0x46, 0x00, 0x00, 0x24,  // IHL 6 (24 bytes), total length 36
      0x00, 0x01, 0x00, 0x00,  //
      0x40, 0x11, 0x00, 0x00,  // TTL 64, UDP
      0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
      0xc6, 0x33, 0x64, 0x02,  // 198.51.100.2
      0x94, 0x04, 0x00, 0x00,  // Router Alert option
  };
  packet = cat({packet, kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 36u);
  EXPECT_EQ(h.info.key.src_addr, v4(192, 0, 2, 1));
}

TEST(DecoderIpv4, MaximumIhlOf15) {
  Harness h(dlt::kRaw);
  Bytes header = ipv4Header(72, 17);  // 60-byte header + 12-byte UDP
  header[0] = 0x4f;
  Bytes packet = cat({header, Bytes(39, 0x01), {0x00}, kUdp1234To53});  // 39 NOPs, EOL
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 72u);
}

TEST(DecoderIpv4, TcpFlagsTosTtl) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({kEthIpv4, kIpv4Tcp})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 6);
  EXPECT_EQ(h.info.key.src_port, 50000);
  EXPECT_EQ(h.info.key.dst_port, 443);
  EXPECT_EQ(h.info.tcp_flags, 0x12);
  EXPECT_EQ(h.info.tos, 0);
  EXPECT_EQ(h.info.ttl, 128);
  EXPECT_EQ(h.info.ip_length, 40u);
  EXPECT_FALSE(h.info.is_fragment);  // DF alone is not fragmentation
}

TEST(DecoderIpv4, SnapTruncatedPacketCountsFullLength) {
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Tcp;
  header[2] = 0x05;  // total length 1500
  header[3] = 0xdc;
  Bytes frame = cat({kEthIpv4, header, Bytes(1460, 0xaa)});
  ASSERT_EQ(frame.size(), 1514u);
  // 14 + 20 + 14: just enough for ports and the flags byte.
  ASSERT_EQ(h.runPrefix(frame, 48, 1514), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 1500u);
  EXPECT_EQ(h.info.key.src_port, 50000);
  EXPECT_EQ(h.info.tcp_flags, 0x12);
  // One byte less and the flags byte is gone although the packet carried it.
  EXPECT_EQ(h.runPrefix(frame, 47, 1514), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"decoded", 1}, {"truncated_l4", 1}}));
}

TEST(DecoderIpv4, SnapCutInsideOptionsStillDecodesWhatItNeeds) {
  // Options cut: the fixed header is there, a protocol without ports decodes.
  Harness h(dlt::kRaw);
  Bytes header = ipv4Header(64, 47);  // GRE
  header[0] = 0x46;
  Bytes packet = cat({header, {0x01, 0x01, 0x01, 0x00}, Bytes(40, 0)});
  ASSERT_EQ(h.runPrefix(packet, 22, 64), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 47);
  EXPECT_EQ(h.info.ip_length, 64u);
}

TEST(DecoderIpv4, IcmpTypeAndCodeGoToDstPort) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv4Header(28, 1), {0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 1);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0x0301);  // host unreachable: type 3 * 256 + code 1
}

TEST(DecoderIpv4, SctpUdpLiteAndDccpPorts) {
  struct Case {
    uint8_t protocol;
    Bytes l4;
    uint16_t src, dst;
  };
  const Case cases[] = {
      // SCTP common header: ports 2905 -> 2944, verification tag, checksum.
      {132, {0x0b, 0x59, 0x0b, 0x80, 0, 0, 0, 1, 0, 0, 0, 0}, 2905, 2944},
      // UDP-Lite: ports 5004 -> 5005, checksum coverage 8, checksum.
      {136, {0x13, 0x8c, 0x13, 0x8d, 0x00, 0x08, 0, 0}, 5004, 5005},
      // DCCP generic header (X=0): ports 5001 -> 5002, offset, ccval, checksum, type, seq.
      {33, {0x13, 0x89, 0x13, 0x8a, 0x03, 0x00, 0, 0, 0x00, 0, 0, 0}, 5001, 5002},
  };
  for (const Case& c : cases) {
    Harness h(dlt::kRaw);
    Bytes packet = cat({ipv4Header(static_cast<uint16_t>(20 + c.l4.size()), c.protocol), c.l4});
    ASSERT_EQ(h.run(packet), DecodeStatus::kOk) << int(c.protocol);
    EXPECT_EQ(h.info.key.protocol, c.protocol);
    EXPECT_EQ(h.info.key.src_port, c.src);
    EXPECT_EQ(h.info.key.dst_port, c.dst);
    EXPECT_EQ(h.info.tcp_flags, 0);
  }
}

TEST(DecoderIpv4, TunnelsAreAccountedAsTheOuterFlow) {
  Harness h(dlt::kRaw);
  // IP-in-IP (4): the inner UDP datagram is not looked at.
  ASSERT_EQ(h.run(cat({ipv4Header(52, 4), kIpv4Udp, kUdp1234To53})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 4);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0);
  EXPECT_EQ(h.info.ip_length, 52u);
  // IPv6-in-IPv4 (41).
  ASSERT_EQ(h.run(cat({ipv4Header(72, 41), ipv6Udp()})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 41);
  EXPECT_EQ(h.info.key.dst_port, 0);
  // GRE (47) carrying IPv4.
  ASSERT_EQ(h.run(cat({ipv4Header(56, 47), {0x00, 0x00, 0x08, 0x00}, kIpv4Udp, kUdp1234To53})),
            DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 47);
  EXPECT_EQ(h.info.key.dst_port, 0);
  // VXLAN stays a UDP flow to port 4789.
  Bytes vxlan = cat({ipv4Header(20 + 8 + 8 + 14 + 32, 17),
                     {0xc0, 0x00, 0x12, 0xb5, 0x00, 0x3e, 0x00, 0x00},  // UDP 49152 -> 4789, length 62
                     {0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00},  // VNI 100
                     kEthIpv4, kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(vxlan), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 17);
  EXPECT_EQ(h.info.key.src_port, 49152);
  EXPECT_EQ(h.info.key.dst_port, 4789);
  // ESP (50): no ports.
  ASSERT_EQ(h.run(cat({ipv4Header(36, 50), Bytes(16, 0x5a)})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 50);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 5}, {"decoded", 5}}));
}

TEST(DecoderIpv4, ZeroTotalLengthTakesTheFrameLength) {
  // Linux TSO / BIG TCP captures on the sender carry total length 0.
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Tcp;
  header[2] = 0;
  header[3] = 0;
  Bytes frame = cat({kEthIpv4, header});
  ASSERT_EQ(h.runPrefix(frame, 54, 80014), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 80000u);
  EXPECT_EQ(h.info.key.src_port, 50000);
  EXPECT_EQ(h.counts(),
            (Counts{{"packets", 1}, {"decoded", 1}, {"ip_length_from_frame", 1}}));
}

TEST(DecoderIpv4, LengthBeyondTheFrameIsCountedButAccounted) {
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Udp;
  header[3] = 0xff;  // total length 255, the frame holds 32
  ASSERT_EQ(h.run(cat({kEthIpv4, header, kUdp1234To53})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 255u);
  EXPECT_EQ(h.counts(),
            (Counts{{"packets", 1}, {"decoded", 1}, {"ip_length_beyond_frame", 1}}));
}

// ---- IPv4 failure paths ----------------------------------------------------------

TEST(DecoderIpv4, HeaderTruncated) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({kEthIpv4, kIpv4Udp, kUdp1234To53});
  for (uint32_t caplen = 15; caplen < 34; ++caplen) {
    EXPECT_EQ(h.runPrefix(frame, caplen), DecodeStatus::kTruncated) << caplen;
  }
  EXPECT_EQ(h.counts(), (Counts{{"packets", 19}, {"truncated_ip", 19}}));
}

TEST(DecoderIpv4, TransportTruncatedBySnapLength) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({kEthIpv4, kIpv4Udp, kUdp1234To53});
  for (uint32_t caplen = 34; caplen < 38; ++caplen) {
    EXPECT_EQ(h.runPrefix(frame, caplen), DecodeStatus::kTruncated) << caplen;
  }
  EXPECT_EQ(h.runPrefix(frame, 38), DecodeStatus::kOk);  // ports are all it needs
  EXPECT_EQ(h.counts(), (Counts{{"packets", 5}, {"decoded", 1}, {"truncated_l4", 4}}));
}

TEST(DecoderIpv4, TransportHeaderAbsentFromTheDatagram) {
  // The datagram itself is too short for the ports: accounted with ports 0.
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(cat({ipv4Header(22, 17), {0x04, 0xd2}})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 17);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.ip_length, 22u);
  // TCP with ports but no flags byte inside the datagram.
  ASSERT_EQ(h.run(cat({ipv4Header(30, 6), Bytes(10, 0x11)})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  // Ethernet padding after a short datagram is not mistaken for its ports.
  Harness e(dlt::kEn10mb);
  ASSERT_EQ(e.run(cat({kEthIpv4, ipv4Header(20, 17), Bytes(26, 0x77)})), DecodeStatus::kOk);
  EXPECT_EQ(e.info.key.src_port, 0);
  EXPECT_EQ(e.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"l4_header_absent", 1}}));
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"decoded", 2}, {"l4_header_absent", 2}}));
}

TEST(DecoderIpv4, IhlBelowFiveIsMalformed) {
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Udp;
  header[0] = 0x44;
  EXPECT_EQ(h.run(cat({kEthIpv4, header, kUdp1234To53})), DecodeStatus::kMalformed);
  header[0] = 0x40;
  EXPECT_EQ(h.run(cat({kEthIpv4, header, kUdp1234To53})), DecodeStatus::kMalformed);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"malformed_ip", 2}}));
}

TEST(DecoderIpv4, TotalLengthBelowHeaderIsMalformed) {
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Udp;
  header[3] = 19;  // total length 19 < 20
  EXPECT_EQ(h.run(cat({kEthIpv4, header, kUdp1234To53})), DecodeStatus::kMalformed);
  Bytes with_options = cat({ipv4Header(22, 17), {0x01, 0x01, 0x01, 0x00}, kUdp1234To53});
  with_options[0] = 0x46;  // IHL 6 = 24 bytes > total length 22
  EXPECT_EQ(h.run(cat({kEthIpv4, with_options})), DecodeStatus::kMalformed);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"malformed_ip", 2}}));
}

TEST(DecoderIpv4, VersionFiveIsUnsupported) {
  Harness h(dlt::kEn10mb);
  Bytes header = kIpv4Udp;
  header[0] = 0x55;
  EXPECT_EQ(h.run(cat({kEthIpv4, header, kUdp1234To53})), DecodeStatus::kUnsupported);
  Harness raw(dlt::kRaw);
  EXPECT_EQ(raw.run(cat({header, kUdp1234To53})), DecodeStatus::kUnsupported);
  header[0] = 0x05;
  EXPECT_EQ(raw.run(cat({header, kUdp1234To53})), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"unsupported_ip_version", 1}}));
  EXPECT_EQ(raw.counts(), (Counts{{"packets", 2}, {"unsupported_ip_version", 2}}));
}

TEST(DecoderIpv4, EtherTypeVersionMismatchIsMalformed) {
  Harness h(dlt::kEn10mb);
  EXPECT_EQ(h.run(cat({kEthIpv4, ipv6Udp()})), DecodeStatus::kMalformed);
  EXPECT_EQ(h.run(cat({kEthIpv6, kIpv4Udp, kUdp1234To53, Bytes(20, 0)})),
            DecodeStatus::kMalformed);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"malformed_ip", 2}}));
}

// ---- IPv6 ----------------------------------------------------------------------

TEST(DecoderIpv6, PlainUdp) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({kEthIpv6, ipv6Udp()})), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.key.ip_version, 6);
  EXPECT_EQ(h.info.key.src_addr, v6("2001:db8::1"));
  EXPECT_EQ(h.info.key.dst_addr, v6("2001:db8::2"));
  EXPECT_EQ(h.info.tos, 0xb8);
  EXPECT_EQ(h.info.ttl, 64);
  EXPECT_EQ(h.info.ip_length, 52u);
}

TEST(DecoderIpv6, Icmpv6TypeAndCode) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(8, 58), {0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01}});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 58);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0x8000);  // echo request: 128 * 256 + 0
  EXPECT_EQ(h.info.ip_length, 48u);
}

TEST(DecoderIpv6, HopByHop) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(20, 0),
                      {17, 0, 0x01, 0x04, 0, 0, 0, 0},  // next UDP, 8 bytes, PadN(4)
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 60u);
}

TEST(DecoderIpv6, Routing) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(36, 43),
                      {17, 2, 0, 1, 0, 0, 0, 0},  // next UDP, 24 bytes, type 0, segments left 1
                      {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99},
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 76u);
  EXPECT_EQ(h.info.key.dst_addr, v6("2001:db8::2"));  // the header's, not the segment's
}

TEST(DecoderIpv6, DestinationOptions) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(28, 60),
                      {17, 1, 0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},  // 16 bytes, PadN(12)
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 68u);
}

TEST(DecoderIpv6, AuthenticationHeaderLengthInFourByteUnits) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(36, 51),
                      {17, 4, 0, 0,                // next UDP, (4 + 2) * 4 = 24 bytes
                       0x00, 0x00, 0x10, 0x01,     // SPI
                       0x00, 0x00, 0x00, 0x07,     // sequence
                       1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},  // 96-bit ICV
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 76u);
}

TEST(DecoderIpv6, AtomicFragmentIsAWholeDatagram) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(20, 44),
                      {17, 0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a},  // offset 0, M 0, id 42
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_FALSE(h.info.is_fragment);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderIpv6, EspAndNoNextHeaderEndTheChain) {
  Harness h(dlt::kRaw);
  // Hop-by-hop then ESP: SPI and sequence look like ports but are not read.
  ASSERT_EQ(h.run(cat({ipv6Header(24, 0), {50, 0, 1, 4, 0, 0, 0, 0}, Bytes(16, 0x42)})),
            DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 50);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0);
  EXPECT_EQ(h.info.ip_length, 64u);
  // No next header, nothing after the fixed header.
  ASSERT_EQ(h.run(ipv6Header(0, 59)), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 59);
  EXPECT_EQ(h.info.ip_length, 40u);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"decoded", 2}}));
}

TEST(DecoderIpv6, ChainOfEveryExtensionHeader) {
  Harness h(dlt::kEn10mb);
  Bytes packet = cat({kEthIpv6, ipv6Header(8 + 8 + 24 + 8 + 16 + 8 + 12, 0),
                      {60, 0, 1, 4, 0, 0, 0, 0},                        // hop-by-hop -> dest opts
                      {43, 0, 1, 4, 0, 0, 0, 0},                        // dest opts -> routing
                      {44, 2, 0, 0, 0, 0, 0, 0},                        // routing (24) -> fragment
                      {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03},
                      {51, 0, 0x00, 0x00, 0, 0, 0, 9},                  // atomic fragment -> AH
                      {60, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0},  // AH (16) -> dest opts
                      {17, 0, 1, 4, 0, 0, 0, 0},                        // dest opts -> UDP
                      kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 40u + 84u);
}

// `count` destination-options headers of 8 bytes each, then UDP.
Bytes destOptsChain(int count) {
  Bytes chain;
  for (int i = 0; i < count; ++i) {
    uint8_t next = i + 1 < count ? 60 : 17;
    chain.insert(chain.end(), {next, 0, 1, 4, 0, 0, 0, 0});
  }
  return cat({ipv6Header(static_cast<uint16_t>(chain.size() + 12), 60), chain, kUdp1234To53});
}

TEST(DecoderIpv6, SixteenExtensionHeadersAreWalked) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(destOptsChain(Decoder::kMaxIpv6ExtHeaders)), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderIpv6, ExtensionHeaderFloodStopsAtTheLimit) {
  // Accounted, not dropped: the flood is traffic an operator wants to see.
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(destOptsChain(Decoder::kMaxIpv6ExtHeaders + 1)), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 60);  // the header the walk stopped at
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0);
  EXPECT_EQ(h.info.ip_length, 40u + 17 * 8 + 12);
  ASSERT_EQ(h.run(destOptsChain(200)), DecodeStatus::kOk);
  EXPECT_EQ(h.counts(),
            (Counts{{"packets", 2}, {"decoded", 2}, {"ipv6_ext_header_limit", 2}}));
}

TEST(DecoderIpv6, JumbogramLengthComesFromTheHopByHopOption) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(0, 0),
                      {17, 0, 0xc2, 0x04, 0x00, 0x01, 0x11, 0x78},  // Jumbo Payload 70008
                      kUdp1234To53});
  ASSERT_EQ(h.runPrefix(packet, static_cast<uint32_t>(packet.size()), 70048), DecodeStatus::kOk);
  expectUdpPorts(h.info);
  EXPECT_EQ(h.info.ip_length, 70048u);  // 40 + 70008
  // The option cut by the snap length: the length is unknowable.
  EXPECT_EQ(h.runPrefix(packet, 47, 70048), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"decoded", 1}, {"truncated_ip", 1}}));
}

TEST(DecoderIpv6, ZeroPayloadLengthWithoutJumboTakesTheFrameLength) {
  // BIG TCP capture on the sender without the hop-by-hop jumbo option.
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(0, 6), Bytes(kIpv4Tcp.begin() + 20, kIpv4Tcp.end())});
  ASSERT_EQ(h.runPrefix(packet, 60, 80040), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 80040u);
  EXPECT_EQ(h.info.key.protocol, 6);
  EXPECT_EQ(h.info.key.src_port, 50000);
  EXPECT_EQ(h.counts(),
            (Counts{{"packets", 1}, {"decoded", 1}, {"ip_length_from_frame", 1}}));
}

TEST(DecoderIpv6, ZeroPayloadLengthInAPaddedFrameIsJustTheHeader) {
  // A field that could have held the length says 0: the rest is padding.
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({kEthIpv6, ipv6Header(0, 6), Bytes(6, 0)})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 40u);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}, {"l4_header_absent", 1}}));
}

// ---- IPv6 failure paths --------------------------------------------------------

TEST(DecoderIpv6, HeaderTruncated) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({kEthIpv6, ipv6Udp()});
  for (uint32_t caplen = 15; caplen < 54; ++caplen) {
    EXPECT_EQ(h.runPrefix(frame, caplen), DecodeStatus::kTruncated) << caplen;
  }
  EXPECT_EQ(h.counts(), (Counts{{"packets", 39}, {"truncated_ip", 39}}));
}

TEST(DecoderIpv6, ExtensionHeaderTruncated) {
  Harness h(dlt::kRaw);
  Bytes packet = cat({ipv6Header(28, 60), {17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
                      kUdp1234To53});
  EXPECT_EQ(h.runPrefix(packet, 41), DecodeStatus::kTruncated);  // next-header/length cut
  EXPECT_EQ(h.runPrefix(packet, 57), DecodeStatus::kTruncated);  // options cut: UDP cut too
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"truncated_ip", 1}, {"truncated_l4", 1}}));
  Bytes fragment = cat({ipv6Header(20, 44), {17, 0, 0, 0, 0, 0, 0, 42}, kUdp1234To53});
  EXPECT_EQ(h.runPrefix(fragment, 47), DecodeStatus::kTruncated);
  EXPECT_EQ(h.decoder.counters().truncated_ip, 2u);
}

TEST(DecoderIpv6, ExtensionHeaderBeyondPayloadIsMalformed) {
  Harness h(dlt::kRaw);
  // Payload length 8 but the hop-by-hop header says 16 bytes.
  EXPECT_EQ(h.run(cat({ipv6Header(8, 0), {17, 1, 1, 12, 0, 0, 0, 0}, Bytes(8, 0)})),
            DecodeStatus::kMalformed);
  // A fragment header that does not fit in a payload of 4.
  EXPECT_EQ(h.run(cat({ipv6Header(4, 44), {17, 0, 0, 0, 0, 0, 0, 1}})), DecodeStatus::kMalformed);
  // AH longer than the payload.
  EXPECT_EQ(h.run(cat({ipv6Header(12, 51), {17, 4, 0, 0}, Bytes(20, 0)})),
            DecodeStatus::kMalformed);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 3}, {"malformed_ip", 3}}));
}

TEST(DecoderIpv6, TransportAbsentAndTruncated) {
  Harness h(dlt::kRaw);
  // Payload length 2: the UDP ports do not fit in the datagram.
  ASSERT_EQ(h.run(cat({ipv6Header(2, 17), {0x04, 0xd2}})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  // Payload length 12 but only 2 bytes captured.
  EXPECT_EQ(h.runPrefix(ipv6Udp(), 42, 52), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2},
                                {"decoded", 1},
                                {"truncated_l4", 1},
                                {"l4_header_absent", 1}}));
}

}  // namespace
}  // namespace flowfold::probe::test
