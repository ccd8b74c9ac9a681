// Real captures (tests/data/pcaps, see its README.md for sources and
// licences) read with libpcap and decoded packet by packet.
//
// The expected numbers were obtained independently with tshark 4.0 (Debian
// 12), with IP reassembly off so that every frame is seen on its own:
//   tshark -o ip.defragment:FALSE -o ipv6.defragment:FALSE -r FILE -T fields
//     -e frame.protocols -e ip.len -e ipv6.plen -e vlan.id -e mpls.label
//     -e tcp.srcport -e tcp.dstport -e tcp.flags -e udp.srcport -e udp.dstport
//     -e icmp.type -e icmpv6.type -e ipv6.fraghdr.offset -e ipv6.fraghdr.more ...
// "ip bytes" is the sum over frames of ip.len (IPv4) or 40 + ipv6.plen (IPv6,
// first header of each frame), restricted to the frames the decoder accounts.
// Where the decoder deliberately differs from tshark the test says why.

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <map>
#include <string>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

// The decoder declares the DLT values itself (it does not link libpcap):
// they must agree with the platform's libpcap.
static_assert(dlt::kNull == DLT_NULL);
static_assert(dlt::kEn10mb == DLT_EN10MB);
static_assert(dlt::kRaw == DLT_RAW);
static_assert(dlt::kLoop == DLT_LOOP);
static_assert(dlt::kLinuxSll == DLT_LINUX_SLL);
static_assert(dlt::kLinuxSll2 == DLT_LINUX_SLL2);
static_assert(dlt::kIpv4 == DLT_IPV4);
static_assert(dlt::kIpv6 == DLT_IPV6);

struct Capture {
  int dlt = -1;
  DecodeCounters counters;
  std::vector<DecodeStatus> statuses;    // one per frame
  std::vector<PacketInfo> infos;         // one per frame (meaningful when kOk)
  uint64_t ip_bytes = 0;                 // sum of ip_length over decoded frames
  std::map<int, uint64_t> by_protocol;   // decoded frames per IP protocol

  const PacketInfo& frame(size_t number) const { return infos.at(number - 1); }  // 1-based, like tshark
};

Capture readCapture(const std::string& name) {
  Capture capture;
  std::string path = std::string(FLOWFOLD_TEST_DATA_DIR) + "/pcaps/" + name;
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline(path.c_str(), errbuf);
  if (pcap == nullptr) {
    ADD_FAILURE() << path << ": " << errbuf;
    return capture;
  }
  capture.dlt = pcap_datalink(pcap);
  Decoder decoder(capture.dlt);
  pcap_pkthdr* header;
  const u_char* data;
  while (pcap_next_ex(pcap, &header, &data) == 1) {
    uint64_t ts_ms = static_cast<uint64_t>(header->ts.tv_sec) * 1000 +
                     static_cast<uint64_t>(header->ts.tv_usec) / 1000;
    PacketInfo info;
    DecodeStatus status = decoder.decode(data, header->caplen, header->len, ts_ms, info);
    capture.statuses.push_back(status);
    capture.infos.push_back(info);
    if (status == DecodeStatus::kOk) {
      capture.ip_bytes += info.ip_length;
      ++capture.by_protocol[info.key.protocol];
    }
    expectInvariant(decoder.counters());
  }
  pcap_close(pcap);
  capture.counters = decoder.counters();
  return capture;
}

using Protocols = std::map<int, uint64_t>;

TEST(DecoderPcap, Ieee8021adQinQCarryingArp) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-802.1ad_QinQ.pcap");
  EXPECT_EQ(c.dlt, DLT_EN10MB);
  // tshark: 2 frames, eth:ieee8021ad(200):vlan(2001):arp.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 2}, {"unsupported_ethertype", 2}}));
}

TEST(DecoderPcap, TripleVlanTagsKeepOuterAndInner) {
  Capture c = readCapture("zeek_zeek-vlan-qinqinq.pcap");
  // tshark: 14 frames, vlan.id 30,20,10, all TCP 141.142.228.5:59856 <-> 192.150.187.43:80.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 14}, {"decoded", 14}}));
  EXPECT_EQ(c.ip_bytes, 5891u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 14}}));
  for (const PacketInfo& info : c.infos) {
    EXPECT_EQ(info.key.vlan_id, 30);
    EXPECT_EQ(info.key.inner_vlan_id, 20);
  }
  EXPECT_EQ(c.frame(1).key.src_addr, v4(141, 142, 228, 5));
  EXPECT_EQ(c.frame(1).key.src_port, 59856);
  EXPECT_EQ(c.frame(1).key.dst_port, 80);
}

TEST(DecoderPcap, QinQIpInIpIsTheOuterFlow) {
  Capture c = readCapture("ntop_nDPI-4in4tunnel.pcap");
  // tshark: 5 frames, vlan.id 1624,505, outer ip.len 148, ip.proto 4, inner UDP.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 5}, {"decoded", 5}}));
  EXPECT_EQ(c.ip_bytes, 740u);
  EXPECT_EQ(c.by_protocol, (Protocols{{4, 5}}));
  EXPECT_EQ(c.frame(1).key.vlan_id, 1624);
  EXPECT_EQ(c.frame(1).key.inner_vlan_id, 505);
  EXPECT_EQ(c.frame(1).key.src_addr, v4(69, 67, 35, 146));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(41, 202, 46, 110));
  EXPECT_EQ(c.frame(1).key.dst_port, 0);
}

TEST(DecoderPcap, MixedVlanAndMpls) {
  Capture c = readCapture("zeek_zeek-mixed-vlan-mpls.pcap");
  // tshark: 47 TCP frames; 11 with mpls.label 29 (frames 1-11), 14 with
  // vlan.id 4093 (frames 34-47), 22 plain; sum of ip.len 15327.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 47}, {"decoded", 47}}));
  EXPECT_EQ(c.ip_bytes, 15327u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 47}}));
  int mpls = 0, vlan = 0;
  for (const PacketInfo& info : c.infos) {
    if (info.has_mpls) {
      ++mpls;
      EXPECT_EQ(info.mpls_top_label, 29u);
    }
    if (info.key.vlan_id == 4093) ++vlan;
  }
  EXPECT_EQ(mpls, 11);
  EXPECT_EQ(vlan, 14);
  EXPECT_EQ(c.frame(1).key.src_addr, v4(10, 1, 2, 1));
  EXPECT_EQ(c.frame(1).key.src_port, 11001);
  EXPECT_EQ(c.frame(1).ip_length, 44u);
}

TEST(DecoderPcap, MplsStackCutBeforeThePayload) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-mpls-label-heapoverflow.pcap");
  // tshark: 1 frame, caplen 22, mpls.label 197379,197387 and nothing after
  // the bottom of stack.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 1}, {"truncated_ip", 1}}));
}

TEST(DecoderPcap, PppoeDiscoveryControlAndIpv6) {
  Capture c = readCapture("zeek_zeek-pppoe.pcap");
  // tshark: 65 frames: 4 pppoed, 36 PPP control (24 lcp, 2 pap, 6 ipcp,
  // 4 ipv6cp), 25 IPv6 (21 icmpv6, 4 udp/dhcpv6); 40 + ipv6.plen sums to 2282.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 65},
                                         {"decoded", 25},
                                         {"unsupported_ethertype", 4},
                                         {"unsupported_ppp_protocol", 36}}));
  EXPECT_EQ(c.ip_bytes, 2282u);
  EXPECT_EQ(c.by_protocol, (Protocols{{58, 21}, {17, 4}}));
}

TEST(DecoderPcap, Ipv6ExtensionHeaderChainOfAHundred) {
  Capture c = readCapture("the-tcpdump-group_libpcap-ipv6_ext_headers.pcap");
  // tshark: 1 frame, plen 818, hop-by-hop then 33 x (routing, fragment,
  // dstopts) then UDP 12345 -> 54321. The decoder stops after 16 headers
  // (hop + 5 triples), at a routing header (43), and accounts it with ports 0.
  EXPECT_EQ(nonZero(c.counters),
            (Counts{{"packets", 1}, {"decoded", 1}, {"ipv6_ext_header_limit", 1}}));
  EXPECT_EQ(c.frame(1).ip_length, 858u);
  EXPECT_EQ(c.frame(1).key.protocol, 43);
  EXPECT_EQ(c.frame(1).key.src_addr, v6("2001:db8::1"));
}

TEST(DecoderPcap, Ipv6HopRoutingDestOptsAndAtomicFragments) {
  Capture c = readCapture("zeek_zeek-ipv6-http-atomic-frag.pcap");
  // tshark: 38 frames: 36 tcp (via dstopts, hopopts, routing or atomic
  // fraghdr offset 0 more 0), 2 icmpv6; 40 + plen sums to 2876.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 38}, {"decoded", 38}}));
  EXPECT_EQ(c.ip_bytes, 2876u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 36}, {58, 2}}));
  EXPECT_EQ(c.frame(13).key.src_port, 59694);  // atomic fragment
  EXPECT_EQ(c.frame(13).key.dst_port, 80);
  EXPECT_FALSE(c.frame(13).is_fragment);
  EXPECT_EQ(c.frame(23).key.src_port, 27393);  // hop-by-hop
  EXPECT_EQ(c.frame(33).key.src_port, 45805);  // routing
  EXPECT_EQ(c.frame(4).key.src_port, 36951);   // destination options
}

TEST(DecoderPcap, Ipv6DestOptsLongerThanThePayload) {
  Capture c = readCapture("zeek_zeek-ipv6-mobility-dst-opts.pcap");
  // tshark: 3 frames, plen 36 each, dstopts.len 2, 4, 2 -> 24, 40, 24 bytes.
  // Frame 2's 40-byte header overruns its 36-byte payload: malformed. Frames
  // 1 and 3 carry UDP 30000 -> 13000 (tshark flags frame 1 for the content
  // of its options, which the decoder does not interpret).
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 3}, {"decoded", 2}, {"malformed_ip", 1}}));
  EXPECT_EQ(c.statuses[1], DecodeStatus::kMalformed);
  EXPECT_EQ(c.ip_bytes, 152u);
  for (size_t n : {1, 3}) {
    EXPECT_EQ(c.frame(n).key.protocol, 17);
    EXPECT_EQ(c.frame(n).key.src_port, 30000);
    EXPECT_EQ(c.frame(n).key.dst_port, 13000);
  }
}

TEST(DecoderPcap, Ipv6FragmentsAreAccountedToTheirDatagramsFlow) {
  Capture c = readCapture("zeek_zeek-ipv6-fragmented-dns.pcap");
  // tshark: 8 frames. Frame 4: fraghdr ident 1, offset 362, more 0, whose
  // first fragment is not in the capture. Frames 6-8: ident 2, frame 6
  // offset 0 more 1 with udp 53 -> 51851, frames 7 and 8 later fragments.
  // 40 + plen sums to 4508.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 8},
                                         {"decoded", 8},
                                         {"fragments_first", 1},
                                         {"fragments_later", 3},
                                         {"fragments_unmatched", 1}}));
  EXPECT_EQ(c.ip_bytes, 4508u);
  EXPECT_EQ(c.by_protocol, (Protocols{{17, 8}}));
  EXPECT_EQ(c.frame(4).key.src_port, 0);
  EXPECT_EQ(c.frame(4).key.dst_port, 0);
  for (size_t n : {6, 7, 8}) {
    EXPECT_EQ(c.frame(n).key.src_port, 53) << n;
    EXPECT_EQ(c.frame(n).key.dst_port, 51851) << n;
    EXPECT_EQ(c.frame(n).key.src_addr, v6("2607:f740:b::f93")) << n;
  }
  EXPECT_EQ(c.frame(7).ip_length, 1480u);  // 40 + plen 1440
}

TEST(DecoderPcap, Ipv4AndIpv6FragmentedDns) {
  Capture c = readCapture("ntop_nDPI-dns_fragmented.pcap");
  // tshark: 66 frames, 20 tcp, 46 udp of which 4 IPv4 datagrams in 2
  // fragments (ip.mf 1 offset 0, then offset 185) and 3 IPv6 datagrams in 2
  // fragments (fraghdr offset 0 more 1, then offset 181/179); every later
  // fragment has its first. Length sum 22246.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 66},
                                         {"decoded", 66},
                                         {"fragments_first", 7},
                                         {"fragments_later", 7}}));
  EXPECT_EQ(c.ip_bytes, 22246u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 20}, {17, 46}}));
  // Frames 2 and 3: id 0xd0fe, udp 53 -> 56680.
  EXPECT_EQ(c.frame(3).key, c.frame(2).key);
  EXPECT_EQ(c.frame(3).key.dst_port, 56680);
  EXPECT_EQ(c.frame(3).ip_length, 250u);
  // Frames 5 and 6: IPv6 ident 0x28403c0b, udp 53 -> 46433.
  EXPECT_EQ(c.frame(6).key, c.frame(5).key);
  EXPECT_EQ(c.frame(6).key.dst_port, 46433);
}

TEST(DecoderPcap, LinuxCookedV1) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-tcp-handshake-nano.pcap");
  EXPECT_EQ(c.dlt, DLT_LINUX_SLL);
  // tshark: 3 frames, 131.155.215.69:46656 <-> 137.116.81.94:80, tcp.flags
  // 0x002, 0x012, 0x010, ip.ttl 64, 117, 64, ip.len 60 + 60 + 52.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 3}, {"decoded", 3}}));
  EXPECT_EQ(c.ip_bytes, 172u);
  EXPECT_EQ(c.frame(1).tcp_flags, 0x02);
  EXPECT_EQ(c.frame(2).tcp_flags, 0x12);
  EXPECT_EQ(c.frame(3).tcp_flags, 0x10);
  EXPECT_EQ(c.frame(2).ttl, 117);
  EXPECT_EQ(c.frame(1).key.src_addr, v4(131, 155, 215, 69));
  EXPECT_EQ(c.frame(1).key.src_port, 46656);
  EXPECT_EQ(c.frame(1).key.dst_port, 80);
}

TEST(DecoderPcap, LinuxCookedV2) {
  Capture c = readCapture("zeek_zeek-linux_dlt_sll2.pcap");
  EXPECT_EQ(c.dlt, DLT_LINUX_SLL2);
  // tshark: 6 frames: icmp echo request/reply (8/0, code 0) 192.0.2.1 ->
  // 192.0.2.1, icmpv6 128/129, 2 arp. Lengths 84 + 84 + 104 + 104.
  EXPECT_EQ(nonZero(c.counters),
            (Counts{{"packets", 6}, {"decoded", 4}, {"unsupported_ethertype", 2}}));
  EXPECT_EQ(c.ip_bytes, 376u);
  EXPECT_EQ(c.frame(1).key.dst_port, 0x0800);
  EXPECT_EQ(c.frame(2).key.dst_port, 0x0000);
  EXPECT_EQ(c.frame(3).key.dst_port, 0x8000);
  EXPECT_EQ(c.frame(4).key.dst_port, 0x8100);
  EXPECT_EQ(c.frame(3).key.src_addr, v6("fe80::8c36:6ff:fe44:acaf"));
}

TEST(DecoderPcap, LinktypeRawIpv4) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-LINKTYPE_RAW_ipv4.pcap");
  EXPECT_EQ(c.dlt, DLT_RAW);  // LINKTYPE_RAW (101) in the file, DLT_RAW from libpcap
  // tshark: 192.168.1.100:12345 -> 9.9.9.9:53, ip.len 57.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 1}, {"decoded", 1}}));
  EXPECT_EQ(c.frame(1).key.src_addr, v4(192, 168, 1, 100));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(9, 9, 9, 9));
  EXPECT_EQ(c.frame(1).key.src_port, 12345);
  EXPECT_EQ(c.frame(1).key.dst_port, 53);
  EXPECT_EQ(c.frame(1).ip_length, 57u);
}

TEST(DecoderPcap, LinktypeIpv6) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-LINKTYPE_IPV6.pcap");
  EXPECT_EQ(c.dlt, DLT_IPV6);
  // tshark: 2001:db8::1:12345 -> :53, plen 37.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 1}, {"decoded", 1}}));
  EXPECT_EQ(c.frame(1).key.src_addr, v6("2001:db8::1"));
  EXPECT_EQ(c.frame(1).key.src_port, 12345);
  EXPECT_EQ(c.frame(1).key.dst_port, 53);
  EXPECT_EQ(c.frame(1).ip_length, 77u);
}

TEST(DecoderPcap, LinktypeIpv4TcpAndPings) {
  Capture c = readCapture("zeek_zeek-timeout-with-pings.pcap");
  EXPECT_EQ(c.dlt, DLT_IPV4);
  // tshark: 15 frames, 3 tcp (12345 <-> 80), 12 icmp echo 8/0; 3 x 40 + 12 x 28.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 15}, {"decoded", 15}}));
  EXPECT_EQ(c.ip_bytes, 456u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 3}, {1, 12}}));
  EXPECT_EQ(c.frame(4).key.dst_port, 0x0800);
  EXPECT_EQ(c.frame(5).key.dst_port, 0x0000);
}

TEST(DecoderPcap, NullLoopbackSnapTruncatedQuic) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-quic_handshake_truncated.pcap");
  EXPECT_EQ(c.dlt, DLT_NULL);
  // tshark: 18 frames, null.family 30 (little-endian), IPv6 UDP 65165 <-> 443,
  // snaplen 256: 4 frames cut (e.g. frame 1: len 1252, caplen 256, plen
  // 1208). 40 + plen sums to 5413: full sizes although the capture is cut.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 18}, {"decoded", 18}}));
  EXPECT_EQ(c.ip_bytes, 5413u);
  EXPECT_EQ(c.by_protocol, (Protocols{{17, 18}}));
  EXPECT_EQ(c.frame(1).ip_length, 1248u);
  EXPECT_EQ(c.frame(1).key.src_port, 65165);
  EXPECT_EQ(c.frame(1).key.dst_port, 443);
}

TEST(DecoderPcap, SnapLength54KeepsPortsAndFlags) {
  Capture c = readCapture("zeek_zeek-truncated-header.pcap");
  // tshark: 24 frames, caplen 54 (68 for frame 1, 58 for frame 2), TCP
  // 60827 <-> 25, frame 1 tcp.flags 0x0c2, ip.len sums to 1589.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 24}, {"decoded", 24}}));
  EXPECT_EQ(c.ip_bytes, 1589u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 24}}));
  EXPECT_EQ(c.frame(1).tcp_flags, 0xc2);
  EXPECT_EQ(c.frame(4).ip_length, 124u);  // frame len 138, caplen 54
  EXPECT_EQ(c.frame(4).key.src_port, 25);
  EXPECT_EQ(c.frame(22).tcp_flags, 0x11);
}

}  // namespace
}  // namespace flowfold::probe::test
