// Link layers and the EtherType dispatcher: Ethernet, Linux cooked v1/v2,
// raw IP, BSD loopback, VLAN / QinQ, MPLS, PPPoE, and their failure paths.

#include <gtest/gtest.h>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

const Bytes kEthIpv4 = ethernet(0x08, 0x00);
const Bytes kEthIpv6 = ethernet(0x86, 0xdd);

// The UDP datagram of kIpv4Udp + kUdp1234To53, as decoded.
void expectIpv4Udp(const DecodedPacket& info) {
  EXPECT_EQ(info.key.ip_version, 4);
  EXPECT_EQ(info.key.src_addr, v4(192, 0, 2, 1));
  EXPECT_EQ(info.key.dst_addr, v4(198, 51, 100, 2));
  EXPECT_EQ(info.key.protocol, 17);
  EXPECT_EQ(info.key.src_port, 1234);
  EXPECT_EQ(info.key.dst_port, 53);
  EXPECT_EQ(info.key.ingress_if, 0);
  EXPECT_EQ(info.ip_length, 32u);
  EXPECT_EQ(info.tos, 0x28);
  EXPECT_EQ(info.ttl, 64);
  EXPECT_EQ(info.tcp_flags, 0);
}

void expectIpv6Udp(const DecodedPacket& info) {
  EXPECT_EQ(info.key.ip_version, 6);
  EXPECT_EQ(info.key.src_addr, v6("2001:db8::1"));
  EXPECT_EQ(info.key.dst_addr, v6("2001:db8::2"));
  EXPECT_EQ(info.key.protocol, 17);
  EXPECT_EQ(info.key.src_port, 1234);
  EXPECT_EQ(info.key.dst_port, 53);
  EXPECT_EQ(info.ip_length, 52u);  // 40 + payload length 12
  EXPECT_EQ(info.tos, 0xb8);
  EXPECT_EQ(info.ttl, 64);
}

// ---- Ethernet ---------------------------------------------------------------

TEST(DecoderLink, EthernetIpv4UdpFillsKeyAndMacs) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({kEthIpv4, kIpv4Udp, kUdp1234To53})), DecodeStatus::kOk);
  expectIpv4Udp(h.info);
  EXPECT_TRUE(h.info.has_mac);
  EXPECT_EQ(h.info.dst_mac, (std::array<uint8_t, 6>{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}));
  EXPECT_EQ(h.info.src_mac, (std::array<uint8_t, 6>{0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}));
  EXPECT_EQ(h.info.key.vlan_id, 0);
  EXPECT_FALSE(h.info.has_mpls);
  EXPECT_FALSE(h.info.is_fragment);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderLink, EthernetIpv6Udp) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({kEthIpv6, ipv6Udp()})), DecodeStatus::kOk);
  expectIpv6Udp(h.info);
}

TEST(DecoderLink, EthernetPaddingDoesNotChangeIpLength) {
  // A 60-byte minimum frame: the IP total length (32) is what counts.
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({kEthIpv4, kIpv4Udp, kUdp1234To53, Bytes(14, 0)});
  ASSERT_EQ(frame.size(), 60u);
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.ip_length, 32u);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderLink, ArpIsUnsupportedEthertype) {
  Harness h(dlt::kEn10mb);
  Bytes arp = cat({ethernet(0x08, 0x06), Bytes(28, 0)});
  EXPECT_EQ(h.run(arp), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"unsupported_ethertype", 1}}));
}

TEST(DecoderLink, Ieee8023LengthFieldIsUnsupportedEthertype) {
  Harness h(dlt::kEn10mb);
  // 802.3 length 0x0026 followed by LLC (STP): DSAP 0x42, SSAP 0x42, control 3.
  Bytes stp = cat({ethernet(0x00, 0x26), {0x42, 0x42, 0x03}, Bytes(35, 0)});
  EXPECT_EQ(h.run(stp), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.decoder.counters().unsupported_ethertype, 1u);
}

TEST(DecoderLink, EthernetTruncated) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({kEthIpv4, kIpv4Udp, kUdp1234To53});
  EXPECT_EQ(h.runPrefix(frame, 13), DecodeStatus::kTruncated);
  EXPECT_EQ(h.runPrefix(frame, 0), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"truncated_link", 2}}));
  // EtherType present but no IP byte at all: the IP layer is what is cut.
  EXPECT_EQ(h.runPrefix(frame, 14), DecodeStatus::kTruncated);
  EXPECT_EQ(h.decoder.counters().truncated_ip, 1u);
}

// ---- VLAN / QinQ -------------------------------------------------------------

TEST(DecoderLink, Vlan8021qRecordsVlanIdWithoutPriorityBits) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x81, 0x00),
                     {0xa0, 0x0a, 0x08, 0x00},  // PCP 5, DEI 0, VID 10; inner type IPv4
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 10);
  EXPECT_EQ(h.info.key.inner_vlan_id, 0);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, QinQ88a8RecordsOuterAndInnerVlan) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0xa8),
                     {0x00, 0xc8, 0x81, 0x00},  // S-tag VID 200, next 802.1Q
                     {0x17, 0xd1, 0x86, 0xdd},  // C-tag VID 0x7d1 = 2001 (PCP 0, DEI 1), IPv6
                     ipv6Udp()});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 200);
  EXPECT_EQ(h.info.key.inner_vlan_id, 2001);
  expectIpv6Udp(h.info);
}

TEST(DecoderLink, QinQ9100) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x91, 0x00),
                     {0x0f, 0xff, 0x81, 0x00},  // VID 4095
                     {0x00, 0x01, 0x08, 0x00},  // VID 1, IPv4
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 4095);
  EXPECT_EQ(h.info.key.inner_vlan_id, 1);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, TripleTagKeepsTheOuterTwo) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x81, 0x00),
                     {0x00, 0x1e, 0x81, 0x00},  // VID 30
                     {0x00, 0x14, 0x81, 0x00},  // VID 20
                     {0x00, 0x0a, 0x08, 0x00},  // VID 10 (skipped)
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 30);
  EXPECT_EQ(h.info.key.inner_vlan_id, 20);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, VlanTagTruncated) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x81, 0x00), {0x00, 0x0a, 0x08, 0x00}, kIpv4Udp, kUdp1234To53});
  for (uint32_t caplen = 14; caplen < 18; ++caplen) {
    EXPECT_EQ(h.runPrefix(frame, caplen), DecodeStatus::kTruncated) << caplen;
  }
  EXPECT_EQ(h.counts(), (Counts{{"packets", 4}, {"truncated_link", 4}}));
}

TEST(DecoderLink, VlanCarryingArpIsUnsupported) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x81, 0x00), {0x00, 0x0a, 0x08, 0x06}, Bytes(28, 0)});
  EXPECT_EQ(h.run(frame), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.decoder.counters().unsupported_ethertype, 1u);
}

// ---- MPLS ----------------------------------------------------------------------

TEST(DecoderLink, MplsTwoLabelStackRecordsTopLabel) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x47),
                     {0x00, 0x06, 0x40, 0x40},  // label 100 (0x00064), TC 0, S 0, TTL 64
                     {0x00, 0x0c, 0x81, 0x3f},  // label 200 (0x000c8), TC 0, S 1, TTL 63
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_TRUE(h.info.has_mpls);
  // The entries' first 3 octets, plus the presence bit 24.
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x1000640, 0x1000c81, 0}));
  EXPECT_EQ(mplsLabel(h.info.mpls_stack[0]), 100u);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, MplsMulticastWithIpv6PayloadAndMaxLabel) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x48),
                     {0xff, 0xff, 0xf1, 0x01},  // label 0xfffff, S 1
                     ipv6Udp()});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x1fffff1, 0, 0}));
  expectIpv6Udp(h.info);
}

TEST(DecoderLink, MplsInsideVlan) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x81, 0x00), {0x00, 0x64, 0x88, 0x47},  // VID 100, MPLS
                     {0x00, 0x40, 0x01, 0x40},                          // label 1024, S 1
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 100);
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x1004001, 0, 0}));  // label 1024, TC 0, S 1
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, MplsThreeLabelsKeepTrafficClassAndBottomBits) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x47),
                     {0x00, 0x01, 0x0a, 0xff},  // label 16, TC 5, S 0 -> 0x00010a
                     {0x00, 0x01, 0x16, 0x40},  // label 17, TC 3, S 0 -> 0x000116
                     {0x00, 0x00, 0x01, 0x40},  // label 0 (explicit null), TC 0, S 1 -> 0x000001
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x100010a, 0x1000116, 0x1000001}));
  EXPECT_EQ(mplsTrafficClass(h.info.mpls_stack[0]), 5u);
  EXPECT_EQ(mplsBottom(h.info.mpls_stack[2]), 1u);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, MplsFourthLabelIsWalkedButNotKept) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x47),
                     {0x12, 0x34, 0x5e, 0x40},  // label 0x12345, TC 7, S 0 -> 0x12345e
                     {0x00, 0x00, 0x00, 0x40},  // label 0, TC 0, S 0: present, all zero
                     {0xff, 0xff, 0xf2, 0x40},  // label 0xfffff, TC 1, S 0 -> 0xfffff2
                     {0x00, 0x3e, 0x75, 0x40},  // label 999, TC 2, S 1: beyond the third
                     kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x112345e, 0x1000000, 0x1fffff2}));
  expectIpv4Udp(h.info);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"decoded", 1}}));
}

TEST(DecoderLink, MplsStackOfAnEarlierPacketDoesNotLinger) {
  for (bool common : {true, false}) {
    Harness h(dlt::kEn10mb);
    h.decoder.setCommonPath(common);
    Bytes three = cat({ethernet(0x88, 0x47), {0x00, 0x01, 0x0a, 0xff}, {0x00, 0x01, 0x16, 0x40},
                       {0x00, 0x00, 0x01, 0x40}, kIpv4Udp, kUdp1234To53});
    Bytes one = cat({ethernet(0x88, 0x47), {0x00, 0x40, 0x01, 0x40}, kIpv4Udp, kUdp1234To53});
    ASSERT_EQ(h.run(three), DecodeStatus::kOk);
    ASSERT_EQ(h.run(one), DecodeStatus::kOk);
    EXPECT_EQ(h.info.mpls_stack, (MplsStack{0x1004001, 0, 0}));
    ASSERT_EQ(h.run(three), DecodeStatus::kOk);
    ASSERT_EQ(h.run(cat({kEthIpv4, kIpv4Udp, kUdp1234To53})), DecodeStatus::kOk);
    EXPECT_EQ(h.info.mpls_stack, (MplsStack{0, 0, 0})) << "common path " << common;
    EXPECT_FALSE(h.info.has_mpls);
  }
}

TEST(DecoderLink, MplsStackCutBelowTheThirdLabelIsTruncatedLink) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x47), {0x00, 0x01, 0x0a, 0xfe}, {0x00, 0x01, 0x16, 0x40},
                     {0x00, 0x00, 0x00, 0x40}, {0x00, 0x3e, 0x75, 0x40}, kIpv4Udp, kUdp1234To53});
  EXPECT_EQ(h.runPrefix(frame, 14 + 12 + 2), DecodeStatus::kTruncated);  // in the fourth label
  EXPECT_EQ(h.runPrefix(frame, 14 + 8 + 3), DecodeStatus::kTruncated);   // in the third
  EXPECT_EQ(h.runPrefix(frame, 14 + 16), DecodeStatus::kTruncated);      // no payload byte
  EXPECT_EQ(h.counts(), (Counts{{"packets", 3}, {"truncated_link", 2}, {"truncated_ip", 1}}));
}

TEST(DecoderLink, MplsNonIpPayloadIsUnsupported) {
  Harness h(dlt::kEn10mb);
  // Ethernet pseudowire with a control word (first nibble 0).
  Bytes frame = cat({ethernet(0x88, 0x47), {0x00, 0x06, 0x41, 0x40}, {0x00, 0x00, 0x00, 0x00},
                     Bytes(20, 0x11)});
  EXPECT_EQ(h.run(frame), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"unsupported_mpls_payload", 1}}));
}

TEST(DecoderLink, MplsTruncatedInStackAndAfterBottom) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x47), {0x00, 0x06, 0x40, 0x40}, {0x00, 0x0c, 0x81, 0x3f},
                     kIpv4Udp, kUdp1234To53});
  EXPECT_EQ(h.runPrefix(frame, 17), DecodeStatus::kTruncated);  // in the first label
  EXPECT_EQ(h.runPrefix(frame, 21), DecodeStatus::kTruncated);  // in the second label
  EXPECT_EQ(h.runPrefix(frame, 22), DecodeStatus::kTruncated);  // no payload byte
  EXPECT_EQ(h.counts(), (Counts{{"packets", 3}, {"truncated_link", 2}, {"truncated_ip", 1}}));
}

// ---- PPPoE -------------------------------------------------------------------

const Bytes kPppoeSessionHeader = {0x11, 0x00, 0x12, 0x34, 0x00, 0x22};  // v1 t1, code 0, session 0x1234, length 34

TEST(DecoderLink, PppoeSessionIpv4) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x64), kPppoeSessionHeader, {0x00, 0x21}, kIpv4Udp,
                     kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, PppoeSessionIpv6) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x64), kPppoeSessionHeader, {0x00, 0x57}, ipv6Udp()});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  expectIpv6Udp(h.info);
}

TEST(DecoderLink, PppoeCompressedProtocolField) {
  Harness h(dlt::kEn10mb);
  Bytes frame =
      cat({ethernet(0x88, 0x64), kPppoeSessionHeader, {0x21}, kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, PppoeInsideQinQ) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0xa8), {0x00, 0x07, 0x81, 0x00}, {0x00, 0x08, 0x88, 0x64},
                     kPppoeSessionHeader, {0x00, 0x21}, kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(frame), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 7);
  EXPECT_EQ(h.info.key.inner_vlan_id, 8);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, PppoeLcpIsUnsupportedPppProtocol) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x64), kPppoeSessionHeader, {0xc0, 0x21}, Bytes(10, 1)});
  EXPECT_EQ(h.run(frame), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"unsupported_ppp_protocol", 1}}));
}

TEST(DecoderLink, PppoeDiscoveryIsUnsupportedEthertype) {
  Harness h(dlt::kEn10mb);
  // PADI: code 0x09, session 0, length 4, tag Service-Name (empty).
  Bytes frame = cat({ethernet(0x88, 0x63), {0x11, 0x09, 0x00, 0x00, 0x00, 0x04},
                     {0x01, 0x01, 0x00, 0x00}});
  EXPECT_EQ(h.run(frame), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"unsupported_ethertype", 1}}));
}

TEST(DecoderLink, PppoeTruncated) {
  Harness h(dlt::kEn10mb);
  Bytes frame = cat({ethernet(0x88, 0x64), kPppoeSessionHeader, {0x00, 0x21}, kIpv4Udp,
                     kUdp1234To53});
  EXPECT_EQ(h.runPrefix(frame, 20), DecodeStatus::kTruncated);  // PPPoE header cut
  EXPECT_EQ(h.runPrefix(frame, 21), DecodeStatus::kTruncated);  // PPP protocol cut
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"truncated_link", 2}}));
}

// ---- Linux cooked capture ----------------------------------------------------

TEST(DecoderLink, LinuxSllV1Ipv4Tcp) {
  Harness h(dlt::kLinuxSll);
  Bytes packet = cat({{0x00, 0x04,                                      // outgoing
                       0x00, 0x01,                                      // ARPHRD_ETHER
                       0x00, 0x06,                                      // address length 6
                       0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x00, 0x00,  // address + pad
                       0x08, 0x00},                                     // protocol IPv4
                      kIpv4Tcp});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_addr, v4(10, 0, 0, 1));
  EXPECT_EQ(h.info.key.dst_addr, v4(10, 0, 0, 2));
  EXPECT_EQ(h.info.key.protocol, 6);
  EXPECT_EQ(h.info.key.src_port, 50000);
  EXPECT_EQ(h.info.key.dst_port, 443);
  EXPECT_EQ(h.info.tcp_flags, 0x12);
  EXPECT_EQ(h.info.ttl, 128);
  EXPECT_EQ(h.info.ip_length, 40u);
  EXPECT_FALSE(h.info.has_mac);
}

TEST(DecoderLink, LinuxSllV1VlanTag) {
  // libpcap re-inserts the VLAN tag after the cooked header.
  Harness h(dlt::kLinuxSll);
  Bytes packet = cat({{0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 1, 2, 3, 4, 5, 6, 0, 0, 0x81, 0x00},
                      {0x00, 0x2a, 0x08, 0x00},  // VID 42, IPv4
                      kIpv4Udp, kUdp1234To53});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.vlan_id, 42);
  expectIpv4Udp(h.info);
}

TEST(DecoderLink, LinuxSll2Ipv6Udp) {
  Harness h(dlt::kLinuxSll2);
  Bytes packet = cat({{0x86, 0xdd,                                      // protocol IPv6
                       0x00, 0x00,                                      // reserved
                       0x00, 0x00, 0x00, 0x03,                          // ifindex 3
                       0x00, 0x01,                                      // ARPHRD_ETHER
                       0x00,                                            // to us
                       0x06,                                            // address length
                       0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x00, 0x00}, // address + pad
                      ipv6Udp()});
  ASSERT_EQ(h.run(packet), DecodeStatus::kOk);
  expectIpv6Udp(h.info);
  EXPECT_EQ(h.info.key.ingress_if, 0);  // the caller's business
}

TEST(DecoderLink, LinuxSllTruncatedAndNonIp) {
  Harness v1(dlt::kLinuxSll);
  EXPECT_EQ(v1.run(Bytes(15, 0)), DecodeStatus::kTruncated);
  Bytes arp = cat({{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x06}, Bytes(28, 0)});
  EXPECT_EQ(v1.run(arp), DecodeStatus::kUnsupported);
  EXPECT_EQ(v1.counts(), (Counts{{"packets", 2}, {"truncated_link", 1}, {"unsupported_ethertype", 1}}));

  Harness v2(dlt::kLinuxSll2);
  EXPECT_EQ(v2.run(Bytes(19, 0)), DecodeStatus::kTruncated);
  EXPECT_EQ(v2.counts(), (Counts{{"packets", 1}, {"truncated_link", 1}}));
}

// ---- raw IP ----------------------------------------------------------------------

TEST(DecoderLink, RawIpTakesEitherVersion) {
  for (int dlt : {dlt::kRaw, dlt::kLinktypeRaw, 14}) {
    Harness h(dlt);
    ASSERT_EQ(h.run(cat({kIpv4Udp, kUdp1234To53})), DecodeStatus::kOk) << dlt;
    expectIpv4Udp(h.info);
    ASSERT_EQ(h.run(ipv6Udp()), DecodeStatus::kOk) << dlt;
    expectIpv6Udp(h.info);
    EXPECT_FALSE(h.info.has_mac);
  }
}

TEST(DecoderLink, RawIpv4AndIpv6LinkTypes) {
  Harness h4(dlt::kIpv4);
  ASSERT_EQ(h4.run(cat({kIpv4Udp, kUdp1234To53})), DecodeStatus::kOk);
  expectIpv4Udp(h4.info);
  // An IPv6 packet on a link announced as IPv4 contradicts the link type.
  EXPECT_EQ(h4.run(ipv6Udp()), DecodeStatus::kMalformed);
  EXPECT_EQ(h4.decoder.counters().malformed_ip, 1u);

  Harness h6(dlt::kIpv6);
  ASSERT_EQ(h6.run(ipv6Udp()), DecodeStatus::kOk);
  expectIpv6Udp(h6.info);
  EXPECT_EQ(h6.run(cat({kIpv4Udp, kUdp1234To53})), DecodeStatus::kMalformed);
}

TEST(DecoderLink, RawIpEmptyPacketIsTruncated) {
  Harness h(dlt::kRaw);
  EXPECT_EQ(h.run({}), DecodeStatus::kTruncated);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1}, {"truncated_ip", 1}}));
}

// ---- BSD loopback ----------------------------------------------------------------

TEST(DecoderLink, NullLoopbackFamilyInEitherByteOrder) {
  struct Case {
    Bytes family;
    bool ipv6;
  };
  const Case cases[] = {
      {{0x02, 0x00, 0x00, 0x00}, false},  // AF_INET, little-endian host
      {{0x00, 0x00, 0x00, 0x02}, false},  // AF_INET, big-endian host
      {{0x18, 0x00, 0x00, 0x00}, true},   // AF_INET6 = 24 (NetBSD/OpenBSD)
      {{0x1c, 0x00, 0x00, 0x00}, true},   // AF_INET6 = 28 (FreeBSD)
      {{0x1e, 0x00, 0x00, 0x00}, true},   // AF_INET6 = 30 (macOS)
      {{0x00, 0x00, 0x00, 0x1e}, true},   // AF_INET6 = 30, big-endian
  };
  for (int dlt : {dlt::kNull, dlt::kLoop}) {
    Harness h(dlt);
    for (const Case& c : cases) {
      Bytes packet = c.ipv6 ? cat({c.family, ipv6Udp()}) : cat({c.family, kIpv4Udp, kUdp1234To53});
      ASSERT_EQ(h.run(packet), DecodeStatus::kOk) << dlt;
      if (c.ipv6) {
        expectIpv6Udp(h.info);
      } else {
        expectIpv4Udp(h.info);
      }
    }
    EXPECT_EQ(h.counts(), (Counts{{"packets", 6}, {"decoded", 6}}));
  }
}

TEST(DecoderLink, NullLoopbackOtherFamilyOrTruncated) {
  Harness h(dlt::kNull);
  EXPECT_EQ(h.run(cat({{0x07, 0x00, 0x00, 0x00}, kIpv4Udp})), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.run({0x02, 0x00, 0x00}), DecodeStatus::kTruncated);
  // AF_INET announced, IPv6 inside.
  EXPECT_EQ(h.run(cat({{0x02, 0x00, 0x00, 0x00}, ipv6Udp()})), DecodeStatus::kMalformed);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 3},
                                {"unsupported_loopback_family", 1},
                                {"truncated_link", 1},
                                {"malformed_ip", 1}}));
}

// ---- link types ------------------------------------------------------------------

TEST(DecoderLink, UnsupportedLinkTypeCountsEveryPacket) {
  constexpr int kDltPpp = 9;
  EXPECT_FALSE(Decoder::supportsLinkType(kDltPpp));
  Harness h(kDltPpp);
  EXPECT_EQ(h.decoder.linkType(), kDltPpp);
  EXPECT_EQ(h.run(cat({kIpv4Udp, kUdp1234To53})), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.run({}), DecodeStatus::kUnsupported);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2}, {"unsupported_link", 2}}));
}

TEST(DecoderLink, SupportedLinkTypes) {
  for (int dlt : {dlt::kNull, dlt::kEn10mb, dlt::kRaw, dlt::kLinktypeRaw, dlt::kLoop,
                  dlt::kLinuxSll, dlt::kIpv4, dlt::kIpv6, dlt::kLinuxSll2}) {
    EXPECT_TRUE(Decoder::supportsLinkType(dlt)) << dlt;
  }
  for (int dlt : {-1, 9, 105, 127, 192, 239, 100000}) {
    EXPECT_FALSE(Decoder::supportsLinkType(dlt)) << dlt;
  }
}

TEST(DecoderLink, CountersVisitEveryFieldByName) {
  DecodeCounters c;
  size_t n = 0;
  c.forEach([&](std::string_view name, uint64_t value) {
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(value, 0u);
    ++n;
  });
  // Every field is a uint64_t counter and every one is visited.
  EXPECT_EQ(n * sizeof(uint64_t), sizeof(DecodeCounters));
}

}  // namespace
}  // namespace flowfold::probe::test
