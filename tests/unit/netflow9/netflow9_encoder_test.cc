// NetFlow v9 encoder: golden bytes written out by hand from RFC 3954, and
// behaviour checked through the independent decoder in v9_test_parser.h.

#include "flowfold/exporters/netflow9_encoder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "v9_test_parser.h"

namespace flowfold::netflow9 {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kBoot = 1700000000000;  // 2023-11-14T22:13:20Z, a whole second

FlowRecord v4Record(const char* src, const char* dst, uint16_t sport, uint16_t dport,
                    uint8_t proto) {
  FlowRecord r;
  r.key.ip_version = 4;
  EXPECT_EQ(inet_pton(AF_INET, src, r.key.src_addr.data()), 1);
  EXPECT_EQ(inet_pton(AF_INET, dst, r.key.dst_addr.data()), 1);
  r.key.src_port = sport;
  r.key.dst_port = dport;
  r.key.protocol = proto;
  r.packets = 1;
  r.octets = 100;
  r.first_ms = kBoot + 1000;
  r.last_ms = kBoot + 2000;
  return r;
}

FlowRecord v6Record(const char* src, const char* dst, uint16_t sport, uint16_t dport,
                    uint8_t proto) {
  FlowRecord r;
  r.key.ip_version = 6;
  EXPECT_EQ(inet_pton(AF_INET6, src, r.key.src_addr.data()), 1);
  EXPECT_EQ(inet_pton(AF_INET6, dst, r.key.dst_addr.data()), 1);
  r.key.src_port = sport;
  r.key.dst_port = dport;
  r.key.protocol = proto;
  r.packets = 1;
  r.octets = 100;
  r.first_ms = kBoot + 1000;
  r.last_ms = kBoot + 2000;
  return r;
}

Bytes toBytes(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

std::vector<Bytes> encodeAll(const EncoderConfig& cfg, EncoderState& st,
                             const std::vector<FlowRecord>& recs, uint64_t now_ms) {
  EncodedDatagrams out;
  EXPECT_EQ(encode(cfg, st, recs, now_ms, out), recs.size());
  std::vector<Bytes> v;
  for (size_t i = 0; i < out.size(); ++i) v.push_back(toBytes(out.datagram(i)));
  return v;
}

// Field type numbers as RFC 3954 section 8 (and the Cisco v9 list for 52, 53,
// 80) gives them, written out again here rather than taken from the encoder.
constexpr uint16_t F_IN_BYTES = 1, F_IN_PKTS = 2, F_PROTOCOL = 4, F_SRC_TOS = 5, F_TCP_FLAGS = 6,
                   F_L4_SRC_PORT = 7, F_IPV4_SRC_ADDR = 8, F_INPUT_SNMP = 10, F_L4_DST_PORT = 11,
                   F_IPV4_DST_ADDR = 12, F_LAST_SWITCHED = 21, F_FIRST_SWITCHED = 22,
                   F_IPV6_SRC_ADDR = 27, F_ICMP_TYPE = 32, F_SRC_VLAN = 58, F_DST_VLAN = 59,
                   F_IP_PROTOCOL_VERSION = 60;

// ---------------------------------------------------------------------------
// Golden bytes

TEST(Netflow9Encoder, ExportsTemplateInFirstDatagram) {
  EncoderConfig cfg;
  cfg.source_id = 0x01020304;
  cfg.boot_ms = kBoot;
  EncoderState st;

  FlowRecord r;
  r.key.ip_version = 4;
  r.key.src_addr = {10, 1, 2, 3};
  r.key.dst_addr = {192, 0, 2, 80};
  r.key.src_port = 40000;
  r.key.dst_port = 443;
  r.key.protocol = 6;
  r.key.vlan_id = 100;
  r.key.ingress_if = 2;
  r.packets = 5;
  r.octets = 1500;
  r.first_ms = kBoot + 1250;
  r.last_ms = kBoot + 11750;
  r.tcp_flags = 0x1b;  // FIN SYN PSH ACK
  r.tos = 0x28;
  r.min_ttl = 57;
  r.max_ttl = 64;
  r.src_mac = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
  r.dst_mac = {0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb};
  r.flow_id = 0x0102030405060708;

  const uint64_t now = kBoot + 12345;  // unix_secs 1700000012, uptime 12000
  const Bytes expected = {
      // header
      0x00, 0x09,              // version 9
      0x00, 0x03,              // count: 2 template records + 1 data record
      0x00, 0x00, 0x2E, 0xE0,  // sysUptime 12000 ms
      0x65, 0x53, 0xF1, 0x0C,  // unix_secs 1700000012
      0x00, 0x00, 0x00, 0x00,  // package sequence 0
      0x01, 0x02, 0x03, 0x04,  // source id
      // template FlowSet
      0x00, 0x00, 0x00, 0xCC,  // FlowSet id 0, length 204 = 4 + 2 x (4 + 4 x 24)
      0x01, 0x00, 0x00, 0x18,  // template 256, 24 fields
      0x00, 0x08, 0x00, 0x04,  // IPV4_SRC_ADDR
      0x00, 0x0C, 0x00, 0x04,  // IPV4_DST_ADDR
      0x00, 0x07, 0x00, 0x02,  // L4_SRC_PORT
      0x00, 0x0B, 0x00, 0x02,  // L4_DST_PORT
      0x00, 0x04, 0x00, 0x01,  // PROTOCOL
      0x00, 0x3C, 0x00, 0x01,  // IP_PROTOCOL_VERSION
      0x00, 0x05, 0x00, 0x01,  // SRC_TOS
      0x00, 0x06, 0x00, 0x01,  // TCP_FLAGS
      0x00, 0x20, 0x00, 0x02,  // ICMP_TYPE
      0x00, 0x02, 0x00, 0x08,  // IN_PKTS
      0x00, 0x01, 0x00, 0x08,  // IN_BYTES
      0x00, 0x16, 0x00, 0x04,  // FIRST_SWITCHED
      0x00, 0x15, 0x00, 0x04,  // LAST_SWITCHED
      0x00, 0x3A, 0x00, 0x02,  // SRC_VLAN
      0x00, 0x3B, 0x00, 0x02,  // DST_VLAN
      0x00, 0x0A, 0x00, 0x02,  // INPUT_SNMP
      0x00, 0x34, 0x00, 0x01,  // MIN_TTL
      0x00, 0x35, 0x00, 0x01,  // MAX_TTL
      0x00, 0x38, 0x00, 0x06,  // IN_SRC_MAC
      0x00, 0x50, 0x00, 0x06,  // IN_DST_MAC
      0x00, 0x46, 0x00, 0x03,  // MPLS_LABEL_1
      0x00, 0x47, 0x00, 0x03,  // MPLS_LABEL_2
      0x00, 0x48, 0x00, 0x03,  // MPLS_LABEL_3
      0x00, 0x94, 0x00, 0x08,  // 148 flowId
      0x01, 0x01, 0x00, 0x18,  // template 257, 24 fields
      0x00, 0x1B, 0x00, 0x10,  // IPV6_SRC_ADDR
      0x00, 0x1C, 0x00, 0x10,  // IPV6_DST_ADDR
      0x00, 0x07, 0x00, 0x02,  // L4_SRC_PORT
      0x00, 0x0B, 0x00, 0x02,  // L4_DST_PORT
      0x00, 0x04, 0x00, 0x01,  // PROTOCOL
      0x00, 0x3C, 0x00, 0x01,  // IP_PROTOCOL_VERSION
      0x00, 0x05, 0x00, 0x01,  // SRC_TOS
      0x00, 0x06, 0x00, 0x01,  // TCP_FLAGS
      0x00, 0x20, 0x00, 0x02,  // ICMP_TYPE
      0x00, 0x02, 0x00, 0x08,  // IN_PKTS
      0x00, 0x01, 0x00, 0x08,  // IN_BYTES
      0x00, 0x16, 0x00, 0x04,  // FIRST_SWITCHED
      0x00, 0x15, 0x00, 0x04,  // LAST_SWITCHED
      0x00, 0x3A, 0x00, 0x02,  // SRC_VLAN
      0x00, 0x3B, 0x00, 0x02,  // DST_VLAN
      0x00, 0x0A, 0x00, 0x02,  // INPUT_SNMP
      0x00, 0x34, 0x00, 0x01,  // MIN_TTL
      0x00, 0x35, 0x00, 0x01,  // MAX_TTL
      0x00, 0x38, 0x00, 0x06,  // IN_SRC_MAC
      0x00, 0x50, 0x00, 0x06,  // IN_DST_MAC
      0x00, 0x46, 0x00, 0x03,  // MPLS_LABEL_1
      0x00, 0x47, 0x00, 0x03,  // MPLS_LABEL_2
      0x00, 0x48, 0x00, 0x03,  // MPLS_LABEL_3
      0x00, 0x94, 0x00, 0x08,  // 148 flowId
      // data FlowSet
      0x01, 0x00, 0x00, 0x54,  // FlowSet 256, length 84 = 4 + 79 + 1 padding
      0x0A, 0x01, 0x02, 0x03,  // 10.1.2.3
      0xC0, 0x00, 0x02, 0x50,  // 192.0.2.80
      0x9C, 0x40,              // 40000
      0x01, 0xBB,              // 443
      0x06,                    // TCP
      0x04,                    // IPv4
      0x28,                    // tos
      0x1B,                    // tcp flags
      0x00, 0x00,              // ICMP_TYPE: not ICMP
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,  // 5 packets
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xDC,  // 1500 bytes
      0x00, 0x00, 0x04, 0xE2,  // first switched 1250
      0x00, 0x00, 0x2D, 0xE6,  // last switched 11750
      0x00, 0x64,              // vlan 100
      0x00, 0x00,              // no inner vlan
      0x00, 0x02,              // input if 2
      0x39,                    // min ttl 57
      0x40,                    // max ttl 64
      0x00, 0x11, 0x22, 0x33, 0x44, 0x55,  // src mac
      0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB,  // dst mac
      0x00, 0x00, 0x00,        // no MPLS: MPLS_LABEL_1..3 all zero
      0x00, 0x00, 0x00,
      0x00, 0x00, 0x00,
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // flowId
      0x00,                    // padding
  };
  const auto got = encodeAll(cfg, st, {r}, now);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], expected);
  EXPECT_EQ(st.sequence, 1u);
  EXPECT_TRUE(st.templates_sent);
}

TEST(Netflow9Encoder, EncodesIPv6RecordGoldenBytes) {
  EncoderConfig cfg;
  cfg.source_id = 42;
  cfg.boot_ms = kBoot;
  const uint64_t now = kBoot + 100999;  // unix_secs 1700000100, uptime 100000
  // Templates went out two datagrams ago, 10 s ago: none due now.
  EncoderState st{7, true, now - 10000, 5};

  FlowRecord r;
  r.key.ip_version = 6;
  r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  r.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  r.key.src_port = 0;
  r.key.dst_port = 128 * 256 + 0;  // ICMPv6 echo request
  r.key.protocol = 58;
  r.packets = 3;
  r.octets = 312;
  r.first_ms = kBoot + 90000;
  r.last_ms = kBoot + 92000;
  r.min_ttl = 64;
  r.max_ttl = 64;
  r.src_mac = {0x02, 0, 0, 0, 0, 0x01};
  r.dst_mac = {0x02, 0, 0, 0, 0, 0x02};
  r.mpls_stack = {0x1ABCDE0, 0x1000107, 0};  // label 0xABCDE TC 0 S 0, label 16 TC 3 S 1
  r.flow_id = 0x18C5A1B2C3D40009;           // a live id: (start ms << 16) + 9

  const Bytes expected = {
      0x00, 0x09,              // version 9
      0x00, 0x01,              // count: 1 data record
      0x00, 0x01, 0x86, 0xA0,  // sysUptime 100000
      0x65, 0x53, 0xF1, 0x64,  // unix_secs 1700000100
      0x00, 0x00, 0x00, 0x07,  // sequence 7
      0x00, 0x00, 0x00, 0x2A,  // source id 42
      0x01, 0x01, 0x00, 0x6C,  // FlowSet 257, length 108 = 4 + 103 + 1 padding
      0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  // 2001:db8::1
      0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,  // 2001:db8::2
      0x00, 0x00,              // src port 0
      0x80, 0x00,              // dst port = type 128, code 0
      0x3A,                    // ICMPv6
      0x06,                    // IPv6
      0x00,                    // traffic class
      0x00,                    // tcp flags
      0x80, 0x00,              // ICMP_TYPE 128/0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,  // 3 packets
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x38,  // 312 bytes
      0x00, 0x01, 0x5F, 0x90,  // first switched 90000
      0x00, 0x01, 0x67, 0x60,  // last switched 92000
      0x00, 0x00,              // untagged
      0x00, 0x00,              // no inner tag
      0x00, 0x00,              // input if 0
      0x40, 0x40,              // hop limit min, max
      0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // src mac
      0x02, 0x00, 0x00, 0x00, 0x00, 0x02,  // dst mac
      0xAB, 0xCD, 0xE0,        // MPLS_LABEL_1: label 0xABCDE, exp 0, S 0
      0x00, 0x01, 0x07,        // MPLS_LABEL_2: label 16, exp 3, S 1
      0x00, 0x00, 0x00,        // MPLS_LABEL_3: beyond the stack
      0x18, 0xC5, 0xA1, 0xB2, 0xC3, 0xD4, 0x00, 0x09,  // flowId
      0x00,                    // padding
  };
  const auto got = encodeAll(cfg, st, {r}, now);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], expected);
  EXPECT_EQ(st.sequence, 8u);
}

// ---------------------------------------------------------------------------
// Header

TEST(Netflow9Encoder, HeaderCarriesUptimeUnixSecondsAndSourceId) {
  EncoderConfig cfg;
  cfg.source_id = 0xDEADBEEF;
  cfg.boot_ms = kBoot;
  EncoderState st;
  const uint64_t now = kBoot + 3723999;  // 1h 2m 3.999s after boot
  const auto got = encodeAll(cfg, st, {v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17)}, now);
  ASSERT_EQ(got.size(), 1u);
  v9test::Parser parser;
  const auto d = parser.parse(got[0]);
  EXPECT_EQ(d.version, 9);
  EXPECT_EQ(d.unix_secs, 1700003723u);
  EXPECT_EQ(d.sys_uptime, 3723000u);  // at the second unix_secs names
  EXPECT_EQ(d.source_id, 0xDEADBEEFu);
  EXPECT_EQ(d.sequence, 0u);
  EXPECT_EQ(d.count, 3);  // two templates and one record
}

TEST(Netflow9Encoder, HeaderCountsTemplateAndDataRecords) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 5; ++i) recs.push_back(v4Record("10.0.0.1", "10.0.0.2", i, 80, 6));
  for (uint16_t i = 0; i < 3; ++i) recs.push_back(v6Record("fe80::1", "fe80::2", i, 80, 6));
  auto got = encodeAll(cfg, st, recs, kBoot + 5000);
  ASSERT_EQ(got.size(), 1u);
  v9test::Parser parser;
  EXPECT_EQ(parser.parse(got[0]).count, 2 + 5 + 3);

  got = encodeAll(cfg, st, recs, kBoot + 6000);  // templates not due now
  ASSERT_EQ(got.size(), 1u);
  const auto d = parser.parse(got[0]);
  EXPECT_EQ(d.count, 8);
  EXPECT_EQ(d.template_records, 0);
}

TEST(Netflow9Encoder, SequenceCountsDatagramsAcrossBatches) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.max_datagram = 400;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 30; ++i) recs.push_back(v4Record("10.0.0.1", "10.0.0.2", i, 80, 6));
  v9test::Parser parser;
  uint32_t expected_seq = 0;
  for (int batch = 0; batch < 3; ++batch) {
    const auto got = encodeAll(cfg, st, recs, kBoot + 1000 * batch);
    ASSERT_GT(got.size(), 1u);
    for (const auto& g : got) EXPECT_EQ(parser.parse(g).sequence, expected_seq++);
  }
  EXPECT_EQ(st.sequence, expected_seq);
}

// ---------------------------------------------------------------------------
// Template refresh

TEST(Netflow9Encoder, RefreshesTemplatesEveryNDatagrams) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.template_refresh_packets = 3;
  cfg.template_refresh_ms = 0;  // count only
  EncoderState st;
  v9test::Parser parser;
  std::vector<bool> with_templates;
  for (int i = 0; i < 8; ++i) {
    const auto got = encodeAll(cfg, st, {v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17)}, kBoot + i);
    ASSERT_EQ(got.size(), 1u);
    with_templates.push_back(parser.parse(got[0]).template_records == 2);
  }
  EXPECT_EQ(with_templates, (std::vector<bool>{true, false, false, true, false, false, true, false}));
}

TEST(Netflow9Encoder, RefreshesTemplatesAfterTimeInterval) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.template_refresh_packets = 0;  // time only
  cfg.template_refresh_ms = 1000;
  EncoderState st;
  v9test::Parser parser;
  const uint64_t t0 = kBoot + 50000;
  const std::vector<uint64_t> times = {t0, t0 + 500, t0 + 999, t0 + 1000, t0 + 1500, t0 + 2100};
  std::vector<bool> with_templates;
  for (uint64_t t : times) {
    const auto got = encodeAll(cfg, st, {v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17)}, t);
    ASSERT_EQ(got.size(), 1u);
    with_templates.push_back(parser.parse(got[0]).template_records == 2);
  }
  EXPECT_EQ(with_templates, (std::vector<bool>{true, false, false, true, false, true}));
}

TEST(Netflow9Encoder, RefreshesTemplatesByCountWithinOneLargeBatch) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.max_datagram = 340;  // one IPv4 record per datagram with templates (308 bytes), more without
  cfg.template_refresh_packets = 4;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 60; ++i) recs.push_back(v4Record("10.0.0.1", "10.0.0.2", i, 80, 6));
  const auto got = encodeAll(cfg, st, recs, kBoot);
  v9test::Parser parser;
  size_t records = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const auto d = parser.parse(got[i]);
    EXPECT_EQ(d.template_records == 2, i % 4 == 0) << "datagram " << i;
    records += d.records.size();
  }
  EXPECT_EQ(records, recs.size());
}

// ---------------------------------------------------------------------------
// Splitting

TEST(Netflow9Encoder, SplitsLargeBatchUnderSizeLimitWithoutLoss) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.max_datagram = 600;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 200; ++i) {
    FlowRecord r = (i % 3 == 2) ? v6Record("2001:db8::1", "2001:db8::2", i, 443, 6)
                                : v4Record("10.0.0.1", "10.0.0.2", i, 443, 6);
    r.packets = 1000 + i;
    r.octets = 100000ull * i;
    recs.push_back(r);
  }
  const auto got = encodeAll(cfg, st, recs, kBoot + 7000);
  ASSERT_GT(got.size(), 10u);
  v9test::Parser parser;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LE(got[i].size(), 600u);
    // A datagram is closed only when the next record no longer fits: the
    // largest record (95 bytes) needs at most 95 + a 4-byte set header + 3 padding.
    if (i + 1 < got.size()) {
      EXPECT_GT(got[i].size(), 600u - 102u) << "datagram " << i;
    }
    const auto d = parser.parse(got[i]);
    EXPECT_EQ(d.sequence, i);
    for (const auto& r : d.records) {
      const uint16_t port = static_cast<uint16_t>(r.num(F_L4_SRC_PORT));
      ports.push_back(port);
      EXPECT_EQ(r.template_id, port % 3 == 2 ? 257 : 256);
      EXPECT_EQ(r.num(F_IN_PKTS), 1000u + port);
      EXPECT_EQ(r.num(F_IN_BYTES), 100000ull * port);
    }
  }
  ASSERT_EQ(ports.size(), recs.size());
  for (uint16_t i = 0; i < ports.size(); ++i) EXPECT_EQ(ports[i], i);
}

TEST(Netflow9Encoder, MixesIPv4AndIPv6FlowSetsInOneDatagram) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  EncoderState st;
  const std::vector<FlowRecord> recs = {
      v4Record("10.0.0.1", "10.0.0.2", 1, 80, 6), v4Record("10.0.0.1", "10.0.0.2", 2, 80, 6),
      v6Record("::1", "::2", 3, 80, 6), v4Record("10.0.0.1", "10.0.0.2", 4, 80, 6)};
  const auto got = encodeAll(cfg, st, recs, kBoot);
  ASSERT_EQ(got.size(), 1u);
  // header 20 + templates 204 + set(2 x v4: 4+158 -> 164) + set(v6: 4+103 -> 108) + set(v4: 4+79 -> 84)
  EXPECT_EQ(got[0].size(), 20u + 204 + 164 + 108 + 84);
  v9test::Parser parser;
  const auto d = parser.parse(got[0]);
  ASSERT_EQ(d.records.size(), 4u);
  EXPECT_EQ(d.records[0].template_id, 256);
  EXPECT_EQ(d.records[1].template_id, 256);
  EXPECT_EQ(d.records[2].template_id, 257);
  EXPECT_EQ(d.records[3].template_id, 256);
  EXPECT_EQ(d.records[2].bytes(F_IPV6_SRC_ADDR),
            (Bytes{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(d.records[3].num(F_IPV4_SRC_ADDR), 0x0A000001u);
  EXPECT_EQ(d.records[3].num(F_IPV4_DST_ADDR), 0x0A000002u);
  EXPECT_EQ(d.records[2].num(F_IP_PROTOCOL_VERSION), 6u);
  EXPECT_EQ(d.records[3].num(F_IP_PROTOCOL_VERSION), 4u);
}

TEST(Netflow9Encoder, StopsAfterDatagramLimitAndResumes) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.max_datagram = 500;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 50; ++i) recs.push_back(v4Record("10.0.0.1", "10.0.0.2", i, 80, 6));
  EncodedDatagrams out;
  v9test::Parser parser;
  std::span<const FlowRecord> rest(recs);
  std::vector<uint16_t> ports;
  uint32_t seq = 0;
  while (!rest.empty()) {
    const size_t used = encode(cfg, st, rest, kBoot, out, 2);
    ASSERT_GT(used, 0u);
    ASSERT_LE(out.size(), 2u);
    size_t in_out = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const auto d = parser.parse(out.datagram(i));
      EXPECT_EQ(d.sequence, seq++);
      EXPECT_EQ(d.records.size(), out.entries[i].records);
      in_out += d.records.size();
      for (const auto& r : d.records) ports.push_back(static_cast<uint16_t>(r.num(F_L4_SRC_PORT)));
    }
    EXPECT_EQ(in_out, used);
    rest = rest.subspan(used);
  }
  ASSERT_EQ(ports.size(), 50u);
  for (uint16_t i = 0; i < 50; ++i) EXPECT_EQ(ports[i], i);
}

TEST(Netflow9Encoder, RejectsMaxDatagramTooSmallForOneRecord) {
  EncoderConfig cfg;
  // header 20 + template set 204 + one padded IPv6 set 108 (4 + 103 + 1) = 332
  cfg.max_datagram = 331;
  EXPECT_THROW(validateConfig(cfg), std::invalid_argument);
  cfg.max_datagram = 332;
  EXPECT_NO_THROW(validateConfig(cfg));
  cfg.max_datagram = 65508;
  EXPECT_THROW(validateConfig(cfg), std::invalid_argument);

  // At the minimum size every datagram still carries at least one record.
  cfg.max_datagram = 332;
  cfg.boot_ms = kBoot;
  EncoderState st;
  std::vector<FlowRecord> recs(5, v6Record("::1", "::2", 1, 2, 17));
  const auto got = encodeAll(cfg, st, recs, kBoot);
  v9test::Parser parser;
  size_t n = 0;
  for (const auto& g : got) {
    EXPECT_LE(g.size(), 332u);
    n += parser.parse(g).records.size();
  }
  EXPECT_EQ(n, 5u);
}

// ---------------------------------------------------------------------------
// Field placement

TEST(Netflow9Encoder, PlacesIcmpTypeAndCodeInIcmpTypeField) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  EncoderState st;
  const std::vector<FlowRecord> recs = {
      v4Record("10.0.0.1", "10.0.0.2", 0, 3 * 256 + 1, 1),   // ICMP dest unreachable/host
      v6Record("fe80::1", "fe80::2", 0, 135 * 256 + 0, 58),  // neighbour solicitation
      v4Record("10.0.0.1", "10.0.0.2", 5000, 0x0800, 17),   // UDP port 2048: not ICMP
      v6Record("fe80::1", "fe80::2", 0, 0x0800, 1),          // protocol 1 inside IPv6: not ICMPv6
  };
  const auto got = encodeAll(cfg, st, recs, kBoot);
  ASSERT_EQ(got.size(), 1u);
  v9test::Parser parser;
  const auto d = parser.parse(got[0]);
  ASSERT_EQ(d.records.size(), 4u);
  EXPECT_EQ(d.records[0].num(F_ICMP_TYPE), 0x0301u);
  EXPECT_EQ(d.records[0].num(F_L4_SRC_PORT), 0u);
  EXPECT_EQ(d.records[0].num(F_L4_DST_PORT), 0x0301u);
  EXPECT_EQ(d.records[1].num(F_ICMP_TYPE), 0x8700u);
  EXPECT_EQ(d.records[1].num(F_PROTOCOL), 58u);
  EXPECT_EQ(d.records[2].num(F_ICMP_TYPE), 0u);
  EXPECT_EQ(d.records[2].num(F_L4_DST_PORT), 0x0800u);
  EXPECT_EQ(d.records[3].num(F_ICMP_TYPE), 0u);
}

TEST(Netflow9Encoder, SwitchedTimesAreRelativeToBoot) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  EncoderState st;
  FlowRecord r = v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17);
  r.first_ms = kBoot + 61234;
  r.last_ms = kBoot + 125678;
  const auto got = encodeAll(cfg, st, {r}, kBoot + 130000);
  v9test::Parser parser;
  const auto d = parser.parse(got.at(0));
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.sys_uptime, 130000u);
  EXPECT_EQ(d.records[0].num(F_FIRST_SWITCHED), 61234u);
  EXPECT_EQ(d.records[0].num(F_LAST_SWITCHED), 125678u);
}

TEST(Netflow9Encoder, CollectorRebuildsExactFlowTimesFromHeader) {
  // A boot that is not on a whole second and a "now" with milliseconds: a
  // collector computing unix_secs*1000 - sysUptime + FIRST_SWITCHED must get
  // the flow's epoch milliseconds back exactly.
  EncoderConfig cfg;
  cfg.boot_ms = kBoot + 700;
  EncoderState st;
  FlowRecord r = v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17);
  r.first_ms = kBoot + 1234;
  r.last_ms = kBoot + 4321;
  const auto got = encodeAll(cfg, st, {r}, kBoot + 5432);
  v9test::Parser parser;
  const auto d = parser.parse(got.at(0));
  ASSERT_EQ(d.records.size(), 1u);
  const uint64_t boot = uint64_t{d.unix_secs} * 1000 - d.sys_uptime;
  EXPECT_EQ(boot + d.records[0].num(F_FIRST_SWITCHED), r.first_ms);
  EXPECT_EQ(boot + d.records[0].num(F_LAST_SWITCHED), r.last_ms);
  EXPECT_EQ(d.sys_uptime, 5000u);
  EXPECT_EQ(d.records[0].num(F_FIRST_SWITCHED), 1234u);
}

TEST(Netflow9Encoder, ClampsTimesBeforeBootToZero) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot + 10000;
  EncoderState st;
  FlowRecord r = v4Record("10.0.0.1", "10.0.0.2", 1, 2, 17);
  r.first_ms = kBoot + 2000;  // before boot
  r.last_ms = kBoot + 12000;
  const auto got = encodeAll(cfg, st, {r}, kBoot + 5000);  // now before boot too
  v9test::Parser parser;
  const auto d = parser.parse(got.at(0));
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.sys_uptime, 0u);
  EXPECT_EQ(d.records[0].num(F_FIRST_SWITCHED), 0u);
  EXPECT_EQ(d.records[0].num(F_LAST_SWITCHED), 2000u);
}

TEST(Netflow9Encoder, WritesVlanInterfaceTosAndFlags) {
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  EncoderState st;
  FlowRecord r = v6Record("2001:db8::1", "2001:db8::2", 1234, 80, 6);
  r.key.vlan_id = 4094;
  r.key.inner_vlan_id = 7;  // DST_VLAN
  r.key.ingress_if = 65535;
  r.tos = 0xB8;
  r.tcp_flags = 0x12;
  const auto got = encodeAll(cfg, st, {r}, kBoot);
  v9test::Parser parser;
  const auto d = parser.parse(got.at(0));
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.records[0].num(F_SRC_VLAN), 4094u);
  EXPECT_EQ(d.records[0].num(F_DST_VLAN), 7u);
  EXPECT_EQ(d.records[0].num(F_INPUT_SNMP), 65535u);
  EXPECT_EQ(d.records[0].num(F_SRC_TOS), 0xB8u);
  EXPECT_EQ(d.records[0].num(F_TCP_FLAGS), 0x12u);
  EXPECT_EQ(d.records[0].num(F_L4_DST_PORT), 80u);
  EXPECT_EQ(d.records[0].fields.size(), 24u);
}

// ---------------------------------------------------------------------------
// Wireshark's decoder as a second opinion

void put16le(std::ofstream& f, uint16_t v) {
  const uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
  f.write(reinterpret_cast<const char*>(b), 2);
}
void put32le(std::ofstream& f, uint32_t v) {
  const uint8_t b[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                        static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

// Classic pcap, Ethernet / IPv4 127.0.0.1 -> 127.0.0.1 / UDP 40000 -> 2055.
void writePcap(const std::string& path, const std::vector<Bytes>& payloads, uint32_t ts) {
  std::ofstream f(path, std::ios::binary);
  put32le(f, 0xa1b2c3d4);
  put16le(f, 2);
  put16le(f, 4);
  put32le(f, 0);
  put32le(f, 0);
  put32le(f, 65535);
  put32le(f, 1);  // LINKTYPE_ETHERNET
  for (size_t i = 0; i < payloads.size(); ++i) {
    const Bytes& p = payloads[i];
    const uint16_t udp_len = static_cast<uint16_t>(8 + p.size());
    const uint16_t ip_len = static_cast<uint16_t>(20 + udp_len);
    Bytes frame = {0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00};
    Bytes ip = {0x45, 0, static_cast<uint8_t>(ip_len >> 8), static_cast<uint8_t>(ip_len),
                static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 0x40, 0, 64, 17, 0, 0,
                127, 0, 0, 1, 127, 0, 0, 1};
    uint32_t sum = 0;
    for (size_t k = 0; k < ip.size(); k += 2) sum += (ip[k] << 8) | ip[k + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const uint16_t csum = static_cast<uint16_t>(~sum);
    ip[10] = static_cast<uint8_t>(csum >> 8);
    ip[11] = static_cast<uint8_t>(csum);
    frame.insert(frame.end(), ip.begin(), ip.end());
    const Bytes udp = {0x9c, 0x40, 0x08, 0x07, static_cast<uint8_t>(udp_len >> 8),
                       static_cast<uint8_t>(udp_len), 0, 0};
    frame.insert(frame.end(), udp.begin(), udp.end());
    frame.insert(frame.end(), p.begin(), p.end());
    put32le(f, ts);
    put32le(f, static_cast<uint32_t>(i));
    put32le(f, static_cast<uint32_t>(frame.size()));
    put32le(f, static_cast<uint32_t>(frame.size()));
    f.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
  }
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

size_t countOccurrences(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

TEST(Netflow9Encoder, TsharkDecodesDatagramsWithoutErrors) {
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark not installed";
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.max_datagram = 700;
  EncoderState st;
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 24; ++i) {
    FlowRecord r = (i % 4 == 3) ? v6Record("2001:db8::1", "2001:db8::2", 10000 + i, 53, 17)
                                : v4Record("10.0.0.1", "10.0.0.2", 10000 + i, 443, 6);
    r.packets = 777001;  // distinctive values to find in the dissection
    r.octets = 987654321;
    recs.push_back(r);
  }
  recs.push_back(v4Record("10.0.0.1", "10.0.0.9", 0, 8 * 256, 1));  // ICMP echo
  const auto got = encodeAll(cfg, st, recs, kBoot + 30000);
  ASSERT_GT(got.size(), 2u);

  const std::string path =
      ::testing::TempDir() + "netflow9_tshark_test_" + std::to_string(getpid()) + ".pcap";
  writePcap(path, got, 1700000030);
  const std::string verbose = run("tshark -r " + path + " -d udp.port==2055,cflow -V 2>&1");
  ASSERT_FALSE(verbose.empty());
  EXPECT_EQ(verbose.find("Malformed"), std::string::npos) << verbose;
  EXPECT_EQ(countOccurrences(verbose, "Version: 9"), got.size());
  EXPECT_EQ(countOccurrences(verbose, "Packets: 777001"), 24u);
  EXPECT_EQ(countOccurrences(verbose, "Octets: 987654321"), 24u);
  EXPECT_EQ(countOccurrences(verbose, "SrcAddr: 2001:db8::1\n"), 6u);
  EXPECT_EQ(countOccurrences(verbose, "ICMP Type: 0x0800"), 1u);
  // FIRST/LAST_SWITCHED decoded against the header's sysUptime.
  EXPECT_EQ(countOccurrences(verbose, "StartTime: 1.000000000 seconds"), recs.size());
  EXPECT_EQ(countOccurrences(verbose, "EndTime: 2.000000000 seconds"), recs.size());

  const std::string expert =
      run("tshark -r " + path + " -d udp.port==2055,cflow -z expert -q 2>&1");
  EXPECT_EQ(expert.find("Errors ("), std::string::npos) << expert;
  EXPECT_EQ(expert.find("Warnings ("), std::string::npos) << expert;
  if (!HasFailure()) std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// local_networks: DIRECTION (61) in templates 258 and 259

LocalNetworks directionNetworks() {
  LocalNetworks n;
  EXPECT_EQ(n.add("10.0.0.0/8"), "");
  EXPECT_EQ(n.add("2001:db8::/32"), "");
  return n;
}

TEST(Netflow9Encoder, LocalNetworksAddTemplates258And259WithDirectionLast) {
  const LocalNetworks nets = directionNetworks();
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.local_networks = &nets;
  EncoderState st;
  const std::vector<FlowRecord> recs = {
      v4Record("10.0.0.1", "192.0.2.1", 1, 80, 6),     // egress
      v4Record("192.0.2.1", "10.0.0.1", 80, 1, 6),     // ingress
      v4Record("10.0.0.1", "10.0.0.2", 2, 80, 6),      // local to local: none
      v6Record("2a00::1", "2001:db8::1", 3, 80, 6),    // ingress
      v6Record("2001:db8::1", "2a00::1", 80, 3, 6),    // egress
      v6Record("2a00::1", "2a00::2", 4, 80, 6)};       // remote to remote: none
  const auto got = encodeAll(cfg, st, recs, kBoot);
  ASSERT_EQ(got.size(), 1u);
  // The template FlowSet: 256 and 257 as without the option (204 bytes),
  // then 258 = 256 + (61, 1) and 259 = 257 + (61, 1): 4 + 4 * 25 each.
  const Bytes& d0 = got[0];
  EXPECT_EQ(d0[3], 4 + 6) << "count: 4 templates, 6 data records";
  const size_t tset = 20;
  EXPECT_EQ((d0[tset + 2] << 8) | d0[tset + 3], 204 + 2 * (4 + 4 * 25));
  const size_t t258 = tset + 204;
  EXPECT_EQ(Bytes(d0.begin() + t258, d0.begin() + t258 + 4), (Bytes{0x01, 0x02, 0x00, 25}));
  EXPECT_EQ(Bytes(d0.begin() + t258 + 4, d0.begin() + t258 + 4 + 96),
            Bytes(d0.begin() + tset + 8, d0.begin() + tset + 8 + 96))
      << "258 starts with 256's fields";
  EXPECT_EQ(Bytes(d0.begin() + t258 + 100, d0.begin() + t258 + 104), (Bytes{0x00, 61, 0x00, 0x01}));
  const size_t t259 = t258 + 4 + 4 * 25;
  EXPECT_EQ(Bytes(d0.begin() + t259, d0.begin() + t259 + 4), (Bytes{0x01, 0x03, 0x00, 25}));
  EXPECT_EQ(Bytes(d0.begin() + t259 + 100, d0.begin() + t259 + 104), (Bytes{0x00, 61, 0x00, 0x01}));
  // The first data FlowSet: 258, two records of 79 + 1 bytes: 4 + 160.
  const size_t set = tset + 204 + 2 * 104;
  EXPECT_EQ(Bytes(d0.begin() + set, d0.begin() + set + 4), (Bytes{0x01, 0x02, 0x00, 164}));
  EXPECT_EQ(d0[set + 4 + 79], 1) << "egress";
  EXPECT_EQ(d0[set + 4 + 80 + 79], 0) << "ingress";

  v9test::Parser parser;
  const auto d = parser.parse(got[0]);
  ASSERT_EQ(d.records.size(), 6u);
  const uint16_t ids[] = {258, 258, 256, 259, 259, 257};
  const uint64_t dirs[] = {1, 0, ~uint64_t{0}, 0, 1, ~uint64_t{0}};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(d.records[i].template_id, ids[i]) << i;
    if (dirs[i] != ~uint64_t{0}) EXPECT_EQ(d.records[i].num(61), dirs[i]) << i;
    EXPECT_EQ(d.records[i].num(F_L4_SRC_PORT), recs[i].key.src_port) << i;
  }

  // Without local_networks (or with an empty list): the same records as
  // before, byte for byte.
  const LocalNetworks none;
  EncoderConfig plain;
  plain.boot_ms = kBoot;
  EncoderConfig empty = plain;
  empty.local_networks = &none;
  EncoderState a, b;
  EXPECT_EQ(encodeAll(plain, a, recs, kBoot), encodeAll(empty, b, recs, kBoot));
}

TEST(Netflow9Encoder, LocalNetworksNeedRoomForFourTemplates) {
  const LocalNetworks nets = directionNetworks();
  EncoderConfig cfg;
  cfg.local_networks = &nets;
  cfg.max_datagram = kMinDatagramWithDirection - 1;
  EXPECT_THROW(validateConfig(cfg), std::invalid_argument);
  cfg.max_datagram = kMinDatagramWithDirection;
  EXPECT_NO_THROW(validateConfig(cfg));
  EncoderState st;
  const auto got = encodeAll(cfg, st, {v6Record("2a00::1", "2001:db8::1", 3, 80, 6)}, kBoot);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].size(), kMinDatagramWithDirection);
}

TEST(Netflow9Encoder, TsharkDecodesDirection) {
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark not installed";
  const LocalNetworks nets = directionNetworks();
  EncoderConfig cfg;
  cfg.boot_ms = kBoot;
  cfg.local_networks = &nets;
  EncoderState st;
  const auto got = encodeAll(cfg, st,
                             {v4Record("10.0.0.1", "192.0.2.1", 1, 80, 6), v4Record("192.0.2.1", "10.0.0.1", 80, 1, 6),
                              v6Record("2a00::1", "2001:db8::1", 3, 80, 6)},
                             kBoot + 30000);
  const std::string path =
      ::testing::TempDir() + "netflow9_tshark_dir_" + std::to_string(getpid()) + ".pcap";
  writePcap(path, got, 1700000030);
  const std::string fields = run("tshark -r " + path + " -d udp.port==2055,cflow -T fields -e cflow.direction 2>/dev/null");
  EXPECT_EQ(fields, "1,0,0\n");
  const std::string expert = run("tshark -r " + path + " -d udp.port==2055,cflow -z expert -q 2>&1");
  EXPECT_EQ(expert.find("Errors ("), std::string::npos) << expert;
  EXPECT_EQ(expert.find("Warnings ("), std::string::npos) << expert;
  if (!HasFailure()) std::remove(path.c_str());
}

TEST(Netflow9Encoder, OptionsDatagramCarriesItsTemplatesThenTheCountsAndTheRate) {
  EncoderConfig cfg;
  cfg.source_id = 77;
  cfg.boot_ms = kBoot;
  EncoderState st;
  st.sequence = 5;
  OptionsValues v;
  v.bytes = 123456;
  v.datagrams = 42;
  v.flows = 900;
  v.sampling = true;
  v.random = true;
  v.interval = 100;
  EncodedDatagrams out;
  encodeOptions(cfg, st, v, kBoot + 10'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(st.sequence, 6u);  // one export packet more
  v9test::Parser parser;
  const auto d = parser.parse(out.datagram(0));
  EXPECT_EQ(d.sequence, 5u);
  EXPECT_EQ(d.source_id, 77u);
  EXPECT_EQ(d.template_records, 2);
  ASSERT_EQ(d.records.size(), 2u);
  const auto& stats = d.records[0];
  EXPECT_EQ(stats.template_id, kStatisticsOptionsTemplateId);
  EXPECT_EQ(stats.num(v9test::Parser::kScope | 1), 77u);  // scope System: the source id
  EXPECT_EQ(stats.num(40), 123456u);
  EXPECT_EQ(stats.num(41), 42u);
  EXPECT_EQ(stats.num(42), 900u);
  EXPECT_EQ(stats.num(34), 100u);
  const auto& rate = d.records[1];
  EXPECT_EQ(rate.template_id, kSamplingOptionsTemplateId);
  EXPECT_EQ(rate.num(34), 100u);
  EXPECT_EQ(rate.num(35), 2u);  // random
  // Without sampling: the statistics alone.
  v.sampling = false;
  encodeOptions(cfg, st, v, kBoot + 11'000, out);
  const auto plain = parser.parse(out.datagram(0));
  ASSERT_EQ(plain.records.size(), 1u);
  EXPECT_EQ(plain.records[0].fields.count(34), 0u);
}

}  // namespace
}  // namespace flowfold::netflow9
