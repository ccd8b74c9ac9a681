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

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>
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
  std::vector<DecodedPacket> infos;         // one per frame (meaningful when kOk)
  uint64_t ip_bytes = 0;                 // sum of ip_length over decoded frames
  std::map<int, uint64_t> by_protocol;   // decoded frames per IP protocol
  // Tunnel mode both: the frames' second (inner) packets.
  uint64_t inner_packets = 0;
  uint64_t inner_ip_bytes = 0;

  const DecodedPacket& frame(size_t number) const { return infos.at(number - 1); }  // 1-based, like tshark
};

Capture readCapture(const std::string& name, TunnelMode tunnels = TunnelMode::kOuter) {
  Capture capture;
  std::string path = std::string(FLOWFOLD_TEST_DATA_DIR) + "/pcaps/" + name;
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline(path.c_str(), errbuf);
  if (pcap == nullptr) {
    ADD_FAILURE() << path << ": " << errbuf;
    return capture;
  }
  capture.dlt = pcap_datalink(pcap);
  Decoder decoder(capture.dlt, {}, tunnels);
  pcap_pkthdr* header;
  const u_char* data;
  while (pcap_next_ex(pcap, &header, &data) == 1) {
    uint64_t ts_ms = static_cast<uint64_t>(header->ts.tv_sec) * 1000 +
                     static_cast<uint64_t>(header->ts.tv_usec) / 1000;
    DecodedPacket info;
    DecodedPacket inner;
    DecodeStatus status = decoder.decode(data, header->caplen, header->len, ts_ms, info, &inner);
    capture.statuses.push_back(status);
    capture.infos.push_back(info);
    if (status == DecodeStatus::kOk) {
      capture.ip_bytes += info.ip_length;
      ++capture.by_protocol[info.key.protocol];
      if (tunnels == TunnelMode::kBoth && inner.tunnel_depth != 0) {
        ++capture.inner_packets;
        capture.inner_ip_bytes += inner.ip_length;
      }
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
  for (const DecodedPacket& info : c.infos) {
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
  for (const DecodedPacket& info : c.infos) {
    if (info.has_mpls) {
      ++mpls;
      EXPECT_EQ(info.mpls_stack, (MplsStack{0x10001dd, 0, 0}));  // tshark: mpls.label 29, mpls.exp 6, mpls.bottom 1
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

namespace flowfold::probe::test {
namespace {

// ---- tunnels ---------------------------------------------------------------
// Expected inner values from tshark (reassembly off), taking in each frame
// the innermost IPv4/IPv6 layer that is not inside an ICMP error, its
// addresses, ip.len (or 40 + ipv6.plen), ip.proto/ipv6.nxt and the ports of
// the transport layer after it; frames whose outer IPv4 header is a fragment
// (ip.flags.mf or ip.frag_offset) are left out, as flowfold does not open them.

TEST(DecoderPcapTunnel, VxlanInnerFlows) {
  const std::string file = "OISF_suricata-verify-vxlan.pcap";
  Capture outer = readCapture(file);
  EXPECT_EQ(nonZero(outer.counters), (Counts{{"packets", 100}, {"decoded", 100}}));
  EXPECT_EQ(outer.by_protocol, (Protocols{{17, 100}}));
  Capture c = readCapture(file, TunnelMode::kInner);
  // tshark: 100 frames udp:vxlan:eth:ip, inner 82 TCP + 18 UDP, sum of inner ip.len 19648.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 100}, {"decoded", 100}, {"tunnel_vxlan", 100},
                                         {"tunnel_decapsulated", 100}}));
  EXPECT_EQ(c.ip_bytes, 19648u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 82}, {17, 18}}));
  // Frame 1: inner 172.31.0.238:60631 -> 78.46.93.39:123 UDP, ip.len 76
  // (outer 172.31.0.238 -> 172.31.17.188, ip.len 126).
  EXPECT_EQ(c.frame(1).key.src_addr, v4(172, 31, 0, 238));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(78, 46, 93, 39));
  EXPECT_EQ(c.frame(1).key.src_port, 60631);
  EXPECT_EQ(c.frame(1).key.dst_port, 123);
  EXPECT_EQ(c.frame(1).ip_length, 76u);
  EXPECT_EQ(outer.frame(1).ip_length, 126u);
  // Both: the outer accounting is untouched, the inner packets come on top.
  Capture both = readCapture(file, TunnelMode::kBoth);
  EXPECT_EQ(both.ip_bytes, outer.ip_bytes);
  EXPECT_EQ(both.by_protocol, outer.by_protocol);
  EXPECT_EQ(both.inner_packets, 100u);
  EXPECT_EQ(both.inner_ip_bytes, 19648u);
}

TEST(DecoderPcapTunnel, GreInnerFlows) {
  Capture c = readCapture("OISF_suricata-verify-gre-sample.pcap", TunnelMode::kInner);
  // tshark: 40 frames ip:gre:ip; inner 10 ICMP, 22 TCP, 8 UDP; sum of inner ip.len 5211.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 40}, {"decoded", 40}, {"tunnel_gre", 40},
                                         {"tunnel_decapsulated", 40}}));
  EXPECT_EQ(c.ip_bytes, 5211u);
  EXPECT_EQ(c.by_protocol, (Protocols{{1, 10}, {6, 22}, {17, 8}}));
  // Frame 1: ICMP echo request 66.59.111.190 -> 172.28.2.3, ip.len 84.
  EXPECT_EQ(c.frame(1).key.src_addr, v4(66, 59, 111, 190));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(172, 28, 2, 3));
  EXPECT_EQ(c.frame(1).key.dst_port, 8 << 8);
  EXPECT_EQ(c.frame(1).ip_length, 84u);
}

TEST(DecoderPcapTunnel, GeneveInnerFlows) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-geneve.pcap", TunnelMode::kInner);
  // tshark: 39 frames udp:geneve:eth:ip; 6 ICMP + 33 TCP, sum of inner ip.len 6632.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 39}, {"decoded", 39}, {"tunnel_geneve", 39},
                                         {"tunnel_decapsulated", 39}}));
  EXPECT_EQ(c.ip_bytes, 6632u);
  EXPECT_EQ(c.by_protocol, (Protocols{{1, 6}, {6, 33}}));
  EXPECT_EQ(c.frame(1).key.src_addr, v4(30, 0, 0, 1));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(30, 0, 0, 2));
  EXPECT_TRUE(c.frame(1).has_mac);

  Capture o = readCapture("zeek_zeek-geneve-many-options.pcap", TunnelMode::kInner);
  // tshark: 10 frames, Geneve with options, inner TCP, sum of inner ip.len 1194;
  // frame 1 10.0.0.226:39088 -> 95.217.228.176:80, ip.len 60.
  EXPECT_EQ(nonZero(o.counters), (Counts{{"packets", 10}, {"decoded", 10}, {"tunnel_geneve", 10},
                                         {"tunnel_decapsulated", 10}}));
  EXPECT_EQ(o.ip_bytes, 1194u);
  EXPECT_EQ(o.frame(1).key.src_addr, v4(10, 0, 0, 226));
  EXPECT_EQ(o.frame(1).key.dst_addr, v4(95, 217, 228, 176));
  EXPECT_EQ(o.frame(1).key.src_port, 39088);
  EXPECT_EQ(o.frame(1).key.dst_port, 80);
  EXPECT_EQ(o.frame(1).ip_length, 60u);
}

TEST(DecoderPcapTunnel, IpInIpInnerFlows) {
  Capture c6in4 = readCapture("ntop_nDPI-6in4tunnel.pcap", TunnelMode::kInner);
  // tshark: 127 frames ip:ipv6; inner 48 ICMPv6, 75 TCP, 4 UDP; sum of 40 + ipv6.plen 35975.
  EXPECT_EQ(nonZero(c6in4.counters), (Counts{{"packets", 127}, {"decoded", 127}, {"tunnel_6in4", 127},
                                             {"tunnel_decapsulated", 127}}));
  EXPECT_EQ(c6in4.ip_bytes, 35975u);
  EXPECT_EQ(c6in4.by_protocol, (Protocols{{6, 75}, {17, 4}, {58, 48}}));
  EXPECT_EQ(c6in4.frame(1).key.ip_version, 6);
  EXPECT_EQ(c6in4.frame(1).key.src_addr, v6("2001:470:1f17:13f:3e97:eff:fe73:4dec"));
  EXPECT_EQ(c6in4.frame(1).key.dst_addr, v6("2604:a880:1:20::224:b001"));
  EXPECT_EQ(c6in4.frame(1).key.dst_port, 128 << 8);  // echo request
  EXPECT_EQ(c6in4.frame(1).ip_length, 104u);

  Capture c4in6 = readCapture("ntop_nDPI-4in6tunnel.pcap", TunnelMode::kInner);
  // tshark: 4 frames ipv6:ip:tcp, sum of inner ip.len 1780; frame 1 192.168.0.1:64455 -> 10.10.10.1:443.
  EXPECT_EQ(nonZero(c4in6.counters), (Counts{{"packets", 4}, {"decoded", 4}, {"tunnel_ipip", 4},
                                             {"tunnel_decapsulated", 4}}));
  EXPECT_EQ(c4in6.ip_bytes, 1780u);
  EXPECT_EQ(c4in6.frame(1).key.src_addr, v4(192, 168, 0, 1));
  EXPECT_EQ(c4in6.frame(1).key.dst_addr, v4(10, 10, 10, 1));
  EXPECT_EQ(c4in6.frame(1).key.src_port, 64455);
  EXPECT_EQ(c4in6.frame(1).key.dst_port, 443);

  Capture c6in6 = readCapture("ntop_nDPI-6in6tunnel.pcap", TunnelMode::kInner);
  // tshark: 2 frames ipv6:ipv6:udp, dead::beef:30000 -> cafe::babe:13000, 40 + ipv6.plen 52 each.
  EXPECT_EQ(nonZero(c6in6.counters), (Counts{{"packets", 2}, {"decoded", 2}, {"tunnel_6in4", 2},
                                             {"tunnel_decapsulated", 2}}));
  EXPECT_EQ(c6in6.ip_bytes, 104u);
  EXPECT_EQ(c6in6.frame(1).key.src_addr, v6("dead::beef"));
  EXPECT_EQ(c6in6.frame(1).key.dst_addr, v6("cafe::babe"));
  EXPECT_EQ(c6in6.frame(1).key.src_port, 30000);
  EXPECT_EQ(c6in6.frame(1).key.dst_port, 13000);

  // The QinQ IP-in-IP capture: inner UDP, the frame's VLANs kept.
  Capture c4in4 = readCapture("ntop_nDPI-4in4tunnel.pcap", TunnelMode::kInner);
  EXPECT_EQ(c4in4.counters.tunnel_ipip, 5u);
  EXPECT_EQ(c4in4.by_protocol, (Protocols{{17, 5}}));
  EXPECT_EQ(c4in4.frame(1).key.vlan_id, 1624);
  EXPECT_EQ(c4in4.frame(1).key.inner_vlan_id, 505);
}

TEST(DecoderPcapTunnel, ErspanInnerFlows) {
  Capture c = readCapture("the-tcpdump-group_tcpdump-erspan-type-i-4.pcap", TunnelMode::kInner);
  // tshark: 119 frames; 80 gre:erspan:eth:ip:icmp, 8 gre:erspan:eth:vlan:ip:ospf,
  // 8 gre:ip:ospf, 16 plain ip:ospf, 5 LLDP and 2 other non-IP frames (skipped
  // as before); inner ip.len of the 96 tunnelled frames 5856.
  EXPECT_EQ(c.counters.packets, 119u);
  EXPECT_EQ(c.counters.decoded, 112u);
  EXPECT_EQ(c.counters.tunnel_erspan, 88u);
  EXPECT_EQ(c.counters.tunnel_gre, 8u);
  EXPECT_EQ(c.counters.tunnel_decapsulated, 96u);
  EXPECT_EQ(c.counters.tunnel_inner_undecodable, 0u);
  EXPECT_EQ(c.by_protocol, (Protocols{{1, 80}, {89, 32}}));

  Capture ft7 = readCapture("the-tcpdump-group_tcpdump-erspan-type-iii-ft-7.pcap", TunnelMode::kInner);
  // tshark: 58 frames gre:erspan (type III), frame type 7: not Ethernet, not IP.
  EXPECT_EQ(nonZero(ft7.counters), (Counts{{"packets", 58}, {"decoded", 58}, {"tunnel_inner_undecodable", 58}}));
  EXPECT_EQ(ft7.by_protocol, (Protocols{{47, 58}}));
}

TEST(DecoderPcapTunnel, GtpuInnerFlowsAndFragmentedOuterPackets) {
  Capture c = readCapture("zeek_zeek-gtp1_gn_normal_incl_fragmentation.pcap", TunnelMode::kInner);
  // tshark (reassembly off; -e ip.flags.mf -e ip.frag_offset -e gtp.flags):
  // 108 frames: 32 whole datagrams carrying a G-PDU (flags 0x30), 40 first
  // fragments carrying the GTP header, 36 later fragments (offset 185).
  // Opened: the 32 whole G-PDUs, inner TCP, sum of inner ip.len 2518.
  EXPECT_EQ(nonZero(c.counters), (Counts{{"packets", 108}, {"decoded", 108}, {"fragments_first", 40},
                                         {"fragments_later", 36}, {"tunnel_gtpu", 32},
                                         {"tunnel_decapsulated", 32}, {"tunnel_outer_fragment", 76}}));
  uint64_t inner_bytes = 0;
  for (const DecodedPacket& info : c.infos) {
    if (info.tunnel_depth == 1) inner_bytes += info.ip_length;
  }
  EXPECT_EQ(inner_bytes, 2518u);
  EXPECT_EQ(c.by_protocol, (Protocols{{6, 32}, {17, 76}}));
  EXPECT_EQ(c.frame(1).key.src_addr, v4(10, 131, 47, 185));
  EXPECT_EQ(c.frame(1).key.dst_addr, v4(79, 101, 110, 141));
  EXPECT_EQ(c.frame(1).key.src_port, 1923);
  EXPECT_EQ(c.frame(1).key.dst_port, 80);
}

}  // namespace
}  // namespace flowfold::probe::test

namespace flowfold::probe::test {
namespace {

// The common Ethernet path (one straight pass for Ethernet / IPv4 or IPv6 /
// TCP or UDP) must give exactly what the layer-by-layer walk gives: the same
// status, packet and counters. Every frame of every test capture is decoded
// by both, whole and cut at every length up to 80 bytes, with the wire length
// equal, larger and smaller, and with single bytes of its headers changed.
TEST(DecoderCommonPath, GivesWhatTheWalkGivesForEveryTestFrameCutAndMutated) {
  uint64_t compared = 0, decoded_tcp_udp_over_ethernet = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(FLOWFOLD_TEST_DATA_DIR) + "/pcaps")) {
    if (entry.path().extension() != ".pcap") continue;
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t* pcap = pcap_open_offline(entry.path().c_str(), errbuf);
    ASSERT_NE(pcap, nullptr) << errbuf;
    const int link = pcap_datalink(pcap);
    Decoder common(link);
    Decoder walk(link);
    walk.setCommonPath(false);
    const auto compare = [&](const std::vector<uint8_t>& frame, uint32_t caplen, uint32_t wirelen) {
      // Exactly caplen bytes, so a sanitizer build reports any read past them.
      std::vector<uint8_t> copy(frame.begin(), frame.begin() + caplen);
      DecodedPacket a, b;
      // The common path writes every field itself: garbage left in one would show.
      std::memset(static_cast<void*>(&a), 0xA5, sizeof a);
      const DecodeStatus sa = common.decode(copy.data(), caplen, wirelen, 1000, a);
      const DecodeStatus sb = walk.decode(copy.data(), caplen, wirelen, 1000, b);
      ASSERT_EQ(sa, sb) << entry.path() << " caplen " << caplen << " wirelen " << wirelen;
      if (sa == DecodeStatus::kOk) {
        ASSERT_TRUE(a == b) << entry.path() << " caplen " << caplen << " wirelen " << wirelen;
        if (link == dlt::kEn10mb && (a.key.protocol == 6 || a.key.protocol == 17)) ++decoded_tcp_udp_over_ethernet;
      }
      ASSERT_TRUE(common.counters() == walk.counters()) << entry.path();
      ++compared;
    };
    pcap_pkthdr* header;
    const u_char* data;
    while (pcap_next_ex(pcap, &header, &data) == 1) {
      std::vector<uint8_t> frame(data, data + header->caplen);
      const uint32_t len = header->caplen;
      for (uint32_t wire : {len, header->len, len + 100, len / 2}) compare(frame, len, wire);
      for (uint32_t cut = 0; cut < std::min<uint32_t>(len, 80); ++cut) compare(frame, cut, header->len);
      for (uint32_t pos = 12; pos < std::min<uint32_t>(len, 72); ++pos) {
        for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x0f}, uint8_t{0x40}, uint8_t{0xff}}) {
          std::vector<uint8_t> mutated = frame;
          mutated[pos] ^= flip;
          compare(mutated, len, header->len);
        }
      }
      if (HasFatalFailure()) break;
    }
    pcap_close(pcap);
  }
  EXPECT_GT(compared, 10000u);
  // The comparison covered the frames the common path takes.
  EXPECT_GT(decoded_tcp_udp_over_ethernet, 1000u);
}

}  // namespace
}  // namespace flowfold::probe::test
