// addressTests() (filter_anchors.h) on filters compiled by libpcap, checked
// against libpcap running the same filter: a packet the filter accepts
// always passes one of the tests found.
#include "flowfold/probe/filter_anchors.h"

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace flowfold::probe {
namespace {

// A compiled filter for Ethernet captures.
struct Filter {
  explicit Filter(const std::string& text) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    ok = pcap_compile(dead, &program, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0;
    pcap_close(dead);
  }
  ~Filter() {
    if (ok) pcap_freecode(&program);
  }
  bool accepts(const std::vector<uint8_t>& p) const {
    pcap_pkthdr h{};
    h.caplen = h.len = static_cast<uint32_t>(p.size());
    return pcap_offline_filter(&program, &h, p.data()) != 0;
  }
  bpf_program program{};
  bool ok = false;
};

// An Ethernet frame (one 802.1Q tag or none) with an IPv4 or IPv6 header and
// a UDP or TCP header (ports), no payload; the template marks its addresses,
// ports and VLAN id unknown.
struct Frame {
  bool v6 = false, vlan = false;
  uint8_t protocol = 17;
  uint8_t src[16] = {}, dst[16] = {};
  uint16_t sport = 0, dport = 0, vlan_id = 0;

  std::vector<uint8_t> bytes(PacketTemplate* t = nullptr) const {
    std::vector<uint8_t> p(12, 0);
    std::vector<size_t> unknown;
    const auto put16 = [&](uint16_t v) {
      p.push_back(static_cast<uint8_t>(v >> 8));
      p.push_back(static_cast<uint8_t>(v));
    };
    if (vlan) {
      put16(0x8100);
      unknown.insert(unknown.end(), {p.size(), p.size() + 1});
      put16(vlan_id);
    }
    put16(v6 ? 0x86dd : 0x0800);
    const size_t ip = p.size(), l4_len = protocol == 6 ? 20 : 8;
    size_t address = 0, length = v6 ? 16 : 4;
    if (!v6) {
      const uint8_t h[12] = {0x45, 0, 0, static_cast<uint8_t>(20 + l4_len), 0, 0, 0, 0, 64, protocol, 0, 0};
      p.insert(p.end(), h, h + 12);
      address = ip + 12;
    } else {
      const uint8_t h[8] = {0x60, 0, 0, 0, 0, static_cast<uint8_t>(l4_len), protocol, 64};
      p.insert(p.end(), h, h + 8);
      address = ip + 8;
    }
    p.insert(p.end(), src, src + length);
    p.insert(p.end(), dst, dst + length);
    const size_t l4 = p.size();
    put16(sport);
    put16(dport);
    p.resize(l4 + l4_len, 0);
    if (protocol == 6) p[l4 + 12] = 0x50;
    else p[l4 + 5] = static_cast<uint8_t>(l4_len);
    if (t != nullptr) {
      t->bytes = p;
      t->unknown.assign(p.size(), false);
      for (size_t u : unknown) t->unknown[u] = true;
      for (size_t i = 0; i < 2 * length; ++i) t->unknown[address + i] = true;
      for (size_t i = 0; i < 4; ++i) t->unknown[l4 + i] = true;
      for (size_t w = 0; w < length / 4; ++w) {
        t->word_offset[w] = address + 4 * w;
        t->word_offset[4 + w] = address + length + 4 * w;
      }
    }
    return p;
  }
};

void setV4(uint8_t* a, uint32_t v) {
  a[0] = static_cast<uint8_t>(v >> 24), a[1] = static_cast<uint8_t>(v >> 16), a[2] = static_cast<uint8_t>(v >> 8),
  a[3] = static_cast<uint8_t>(v);
}

std::optional<std::vector<AddressTest>> testsOf(const std::string& filter, const Frame& shape) {
  Filter f(filter);
  EXPECT_TRUE(f.ok) << filter;
  PacketTemplate t;
  shape.bytes(&t);
  return addressTests(f.program, t);
}

TEST(FilterAnchors, AHostFilterTestsBothAddressesOfIPv4) {
  const auto tests = testsOf("host 10.1.2.3", Frame{});
  ASSERT_TRUE(tests.has_value());
  ASSERT_EQ(tests->size(), 2u);
  EXPECT_EQ((*tests)[0].mask, 0xffffffffu);
  EXPECT_EQ((*tests)[0].value, 0x0a010203u);
  EXPECT_EQ((*tests)[1].value, 0x0a010203u);
  EXPECT_NE((*tests)[0].word, (*tests)[1].word);  // source (0) and destination (4)
  EXPECT_EQ((*tests)[0].word % 4, 0);
  EXPECT_EQ((*tests)[1].word % 4, 0);
}

TEST(FilterAnchors, ANetTestsAMaskedWord) {
  const auto tests = testsOf("src net 192.168.0.0/16 and udp", Frame{});
  ASSERT_TRUE(tests.has_value());
  ASSERT_EQ(tests->size(), 1u);
  EXPECT_EQ((*tests)[0].word, 0);
  EXPECT_EQ((*tests)[0].mask, 0xffff0000u);
  EXPECT_EQ((*tests)[0].value, 0xc0a80000u);
}

TEST(FilterAnchors, APathThatAcceptsWithoutAnAddressGivesNone) {
  for (const char* f : {"port 53", "not host 10.1.2.3", "host 10.1.2.3 or udp", "udp", "ip[8] = 64", "len > 10"})
    EXPECT_FALSE(testsOf(f, Frame{}).has_value()) << f;
}

TEST(FilterAnchors, AFilterOfTheOtherFamilyAcceptsNothing) {
  Frame v6;
  v6.v6 = true;
  const auto tests = testsOf("host 10.1.2.3 and port 53", v6);
  ASSERT_TRUE(tests.has_value());
  EXPECT_TRUE(tests->empty());
}

TEST(FilterAnchors, AnIPv6HostIsTestedByItsLastWord) {
  Frame v6;
  v6.v6 = true;
  const auto tests = testsOf("host 2001:db8::1:2", v6);
  ASSERT_TRUE(tests.has_value());
  ASSERT_EQ(tests->size(), 2u);
  for (const AddressTest& t : *tests) {
    EXPECT_EQ(t.word % 4, 3);
    EXPECT_EQ(t.value, 0x00010002u);
  }
}

// The property the extraction relies on, against libpcap itself: over
// frames of every shape with addresses drawn from the filters' own constants
// and from elsewhere, a frame the filter accepts passes one of the tests
// (and these filters, which test an address on every path, give tests).
TEST(FilterAnchors, EveryFrameAFilterAcceptsPassesATest) {
  const char* filters[] = {
      "host 10.1.2.3",
      "src host 10.1.2.3 and dst host 10.9.9.9",
      "host 10.1.2.3 and host 10.9.9.9 and port 53 and port 1000",
      "net 10.1.0.0/16",
      "dst net 10.1.2.0/23 and tcp",
      "vlan and host 10.1.2.3",
      "vlan 7 and net 10.0.0.0/8",
      "host 10.1.2.3 or host 10.9.9.9",
      "(host 10.1.2.3 and udp) or (net 10.9.0.0/16 and tcp)",
      "ip host 10.1.2.3 and not port 53",
      "host 2001:db8::1:2",
      "ip6 and net 2001:db8::/32 and udp port 53",
      "host 10.1.2.3 or host 2001:db8::1:2",
      "dst host 2001:db8::9 or src host 10.9.9.9",
      "ip src 10.1.2.3 and ip[8] = 64",
      "host 10.1.2.3 and len > 40",
  };
  const uint32_t v4_pool[] = {0x0a010203, 0x0a090909, 0x0a010303, 0x0a090001, 0x0b000001, 0xc0a80001};
  std::mt19937 rng(7);
  for (const char* text : filters) {
    Filter f(text);
    ASSERT_TRUE(f.ok) << text;
    int accepted = 0;
    for (const bool v6 : {false, true})
      for (const bool vlan : {false, true})
        for (const uint8_t protocol : {uint8_t{6}, uint8_t{17}}) {
          Frame shape;
          shape.v6 = v6, shape.vlan = vlan, shape.protocol = protocol;
          PacketTemplate t;
          shape.bytes(&t);
          const auto tests = addressTests(f.program, t);
          // Each of these filters tests an address on every path that accepts.
          EXPECT_TRUE(tests.has_value()) << text << " v6 " << v6 << " vlan " << vlan;
          for (int i = 0; i < 400; ++i) {
            Frame fr = shape;
            fr.vlan_id = static_cast<uint16_t>(rng() % 2 ? 7 : rng() % 4096);
            fr.sport = static_cast<uint16_t>(rng() % 2 ? 53 : 1000 + rng() % 3);
            fr.dport = static_cast<uint16_t>(rng() % 2 ? 1000 : 53);
            for (uint8_t* a : {fr.src, fr.dst}) {
              if (!v6) {
                setV4(a, v4_pool[rng() % std::size(v4_pool)]);
              } else {
                const uint8_t base[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2};
                std::memcpy(a, base, 16);
                if (rng() % 2) a[15] = static_cast<uint8_t>(rng() % 16);
                if (rng() % 3 == 0) a[2] = 0x0e;
              }
            }
            if (!f.accepts(fr.bytes())) continue;
            ++accepted;
            if (tests) {
              EXPECT_TRUE(passesOne(*tests, fr.src, fr.dst, v6)) << text << " v6 " << v6 << " vlan " << vlan;
            }
          }
        }
    EXPECT_GT(accepted, 0) << text << ": the frames drawn never match it, so nothing was checked";
  }
}

}  // namespace
}  // namespace flowfold::probe
