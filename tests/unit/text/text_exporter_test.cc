#include "flowfold/exporters/text_exporter.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <csignal>
#include <ctime>
#include <random>
#include <string>
#include <future>
#include <thread>
#include <vector>
#include <algorithm>

namespace flowfold {
namespace {

FlowRecord sample() {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = 6;
  r.key.src_addr = {192, 0, 2, 10};
  r.key.dst_addr = {198, 51, 100, 7};
  r.key.src_port = 40000;
  r.key.dst_port = 443;
  r.key.vlan_id = 12;
  r.packets = 10;
  r.octets = 5000;
  r.first_ms = 1'700'000'000'123;
  r.last_ms = 1'700'000'001'456;
  r.tcp_flags = 0x1b;  // ACK PSH SYN FIN
  r.min_ttl = 60;
  r.max_ttl = 64;
  r.end_reason = FlowEndReason::kEndOfFlow;
  r.flow_id = 42;
  return r;
}

TEST(TextExporter, FormatsOneReadableLine) {
  EXPECT_EQ(formatFlowText(sample()),
            "2023-11-14T22:13:20.123Z 2023-11-14T22:13:21.456Z proto 6 192.0.2.10:40000 -> 198.51.100.7:443 "
            "vlan 12 pkts 10 bytes 5000 flags ...AP.SF tos 0 ttl 60-64 end end flow_id 42");
}

TEST(TextExporter, FormatsIcmpTypeAndCodeAndIPv6) {
  FlowRecord r = sample();
  r.key.ip_version = 6;
  r.key.protocol = 58;
  r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8};
  r.key.src_addr[15] = 1;
  r.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8};
  r.key.dst_addr[15] = 2;
  r.key.src_port = 0;
  r.key.dst_port = 128 * 256;  // echo request
  const std::string line = formatFlowText(r);
  EXPECT_NE(line.find("2001:db8::1 -> 2001:db8::2 icmp 128.0"), std::string::npos) << line;
}

TEST(TextExporter, FormatsTheMplsStackAsLabelTcS) {
  FlowRecord r = sample();
  // label 16 TC 5 S 0, label 17 TC 3 S 0, label 0 TC 0 S 1
  r.mpls_stack = {0x100010a, 0x1000116, 0x1000001};
  EXPECT_EQ(formatFlowText(r),
            "2023-11-14T22:13:20.123Z 2023-11-14T22:13:21.456Z proto 6 192.0.2.10:40000 -> 198.51.100.7:443 "
            "vlan 12 pkts 10 bytes 5000 flags ...AP.SF tos 0 ttl 60-64 mpls 16-5-0,17-3-0,0-0-1 end end flow_id 42");
  const std::string j = formatFlowJson(r);
  EXPECT_NE(j.find("\"mpls_label\":16,\"mpls_labels\":[{\"label\":16,\"tc\":5,\"s\":0},"
                   "{\"label\":17,\"tc\":3,\"s\":0},{\"label\":0,\"tc\":0,\"s\":1}],"),
            std::string::npos)
      << j;
  r.mpls_stack = {0x1000000, 0, 0};  // one entry, all zero: present all the same
  EXPECT_NE(formatFlowText(r).find(" mpls 0-0-0 end "), std::string::npos) << formatFlowText(r);
  EXPECT_NE(formatFlowJson(r).find("\"mpls_label\":0,\"mpls_labels\":[{\"label\":0,\"tc\":0,\"s\":0}],"),
            std::string::npos);
}

TEST(TextExporter, FormatsJson) {
  const std::string j = formatFlowJson(sample());
  EXPECT_NE(j.find("\"src\":\"192.0.2.10\",\"src_port\":40000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"packets\":10,\"bytes\":5000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"end_reason\":\"end\""), std::string::npos) << j;
  EXPECT_NE(j.find("],\"flow_id\":42,\"end_reason\""), std::string::npos) << j;
  // The largest id a live probe can give (a base of ms << 16) is exact in the text.
  FlowRecord big = sample();
  big.flow_id = UINT64_MAX;
  EXPECT_NE(formatFlowJson(big).find("\"flow_id\":18446744073709551615,"), std::string::npos);
  EXPECT_TRUE(formatFlowText(big).ends_with(" end end flow_id 18446744073709551615"));
  EXPECT_NE(j.find("\"mpls_label\":0,\"mpls_labels\":[],"), std::string::npos) << j;
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
}

// ---- reference formatters: the first implementation, built on snprintf(),
// gmtime_r() and inet_ntop(), kept here to hold the fast one to the same bytes.

std::string refIsoTime(uint64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm_utc.tm_year + 1900, tm_utc.tm_mon + 1,
                tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec, static_cast<unsigned>(ms % 1000));
  return buf;
}
std::string refAddress(const std::array<uint8_t, 16>& addr, uint8_t version) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(version == 6 ? AF_INET6 : AF_INET, addr.data(), buf, sizeof buf);
  return buf;
}
std::string refFlags(uint8_t f) {
  std::string s = "........";
  const char* letters = "CEUAPRSF";
  for (int bit = 7; bit >= 0; --bit)
    if (f & (1u << bit)) s[7 - bit] = letters[7 - bit];
  return s;
}
std::string refMac(const std::array<uint8_t, 6>& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}
std::string refEndpoint(const std::array<uint8_t, 16>& addr, uint8_t version, uint16_t port) {
  const std::string a = refAddress(addr, version);
  return version == 6 ? "[" + a + "]:" + std::to_string(port) : a + ":" + std::to_string(port);
}
// The present entries (bit 24), top first: label-TC-S, or their JSON objects.
std::string refMplsText(const FlowRecord& r) {
  std::string s;
  char buf[64];
  for (int i = 0; i < 3 && (r.mpls_stack[i] >> 24) == 1; ++i) {
    const uint32_t e = r.mpls_stack[i];
    std::snprintf(buf, sizeof buf, "%s%u-%u-%u", i ? "," : " mpls ", (e >> 4) & 0xFFFFF, (e >> 1) & 7, e & 1);
    s += buf;
  }
  return s;
}
std::string refMplsJson(const FlowRecord& r) {
  std::string s;
  char buf[64];
  for (int i = 0; i < 3 && (r.mpls_stack[i] >> 24) == 1; ++i) {
    const uint32_t e = r.mpls_stack[i];
    std::snprintf(buf, sizeof buf, "%s{\"label\":%u,\"tc\":%u,\"s\":%u}", i ? "," : "", (e >> 4) & 0xFFFFF,
                  (e >> 1) & 7, e & 1);
    s += buf;
  }
  return s;
}

std::string refText(const FlowRecord& r) {
  const auto& k = r.key;
  char buf[512];
  std::string ports;
  if (k.protocol == 1 || k.protocol == 58) {
    std::snprintf(buf, sizeof buf, "%s -> %s icmp %u.%u", refAddress(k.src_addr, k.ip_version).c_str(),
                  refAddress(k.dst_addr, k.ip_version).c_str(), k.dst_port >> 8, k.dst_port & 0xFF);
    ports = buf;
  } else {
    ports = refEndpoint(k.src_addr, k.ip_version, k.src_port) + " -> " + refEndpoint(k.dst_addr, k.ip_version, k.dst_port);
  }
  std::snprintf(buf, sizeof buf, "%s %s proto %u %s vlan %u pkts %" PRIu64 " bytes %" PRIu64 " flags %s tos %u ttl %u-%u%s end %s flow_id %" PRIu64,
                refIsoTime(r.first_ms).c_str(), refIsoTime(r.last_ms).c_str(), k.protocol, ports.c_str(), k.vlan_id,
                r.packets, r.octets, refFlags(r.tcp_flags).c_str(), r.tos, r.min_ttl, r.max_ttl,
                refMplsText(r).c_str(), toString(r.end_reason), r.flow_id);
  return buf;
}
std::string refJson(const FlowRecord& r) {
  const auto& k = r.key;
  char buf[768];
  std::snprintf(buf, sizeof buf,
                "{\"first\":\"%s\",\"last\":\"%s\",\"first_ms\":%" PRIu64 ",\"last_ms\":%" PRIu64
                ",\"ip_version\":%u,\"proto\":%u,\"src\":\"%s\",\"src_port\":%u,\"dst\":\"%s\",\"dst_port\":%u,"
                "\"vlan\":%u,\"inner_vlan\":%u,\"ingress_if\":%u,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"tcp_flags\":%u,\"tos\":%u,\"min_ttl\":%u,\"max_ttl\":%u,\"src_mac\":\"%s\",\"dst_mac\":\"%s\","
                "\"mpls_label\":%u,\"mpls_labels\":[%s],\"flow_id\":%" PRIu64 ",\"end_reason\":\"%s\"}",
                refIsoTime(r.first_ms).c_str(), refIsoTime(r.last_ms).c_str(), r.first_ms, r.last_ms, k.ip_version,
                k.protocol, refAddress(k.src_addr, k.ip_version).c_str(), k.src_port,
                refAddress(k.dst_addr, k.ip_version).c_str(), k.dst_port, k.vlan_id, k.inner_vlan_id, k.ingress_if,
                r.packets, r.octets, r.tcp_flags, r.tos, r.min_ttl, r.max_ttl, refMac(r.src_mac).c_str(),
                refMac(r.dst_mac).c_str(), (r.mpls_stack[0] & 0xFFFFFF) >> 4, refMplsJson(r).c_str(), r.flow_id,
                toString(r.end_reason));
  return buf;
}

// Random records over every field's range (times from 1970 to the end of
// 9999, IPv6 addresses with and without runs of zeros, counters up to 2^64-1)
// come out byte for byte as the reference formats them, and a reused buffer
// holds one record after another.
// A FIFO whose reader goes away in the middle of a batch: the write puts out
// part of it and fails (EPIPE), and a FIFO cannot be cut back, so the torn
// line stays. The next batch, to the next reader, starts by ending that line;
// the batches after it must not start with a newline of their own.
TEST(TextExporter, ALineTornOnAPipeIsEndedOnceAndLaterBatchesStayWhole) {
  signal(SIGPIPE, SIG_IGN);  // as flowfold does: a closed reader is an error to count
  char dir[] = "/tmp/flowfold-text-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string fifo = std::string(dir) + "/out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening for writing waits for a reader: the first one reads a little, then leaves.
  std::thread first_reader([&] {
    const int fd = ::open(fifo.c_str(), O_RDONLY);
    char buf[1000];
    size_t got = 0;
    while (got < sizeof buf) {
      const ssize_t n = ::read(fd, buf + got, sizeof buf - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  TextOptions options;
  options.format = TextOptions::Format::kJson;
  options.path = fifo;
  auto exporter = makeTextExporter(options);
  const std::vector<FlowRecord> big(5000, sample());  // far more than a pipe holds
  exporter->exportBatch(big, 0);
  first_reader.join();
  const uint64_t dropped_first = exporter->counters().dropped.load();
  EXPECT_GT(dropped_first, 0u);

  std::string second;
  std::promise<void> opened;
  std::thread second_reader([&] {
    const int fd = ::open(fifo.c_str(), O_RDONLY);  // a writer is there: no wait
    opened.set_value();
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) second.append(buf, static_cast<size_t>(n));
    ::close(fd);
  });
  opened.get_future().wait();  // with no reader, the write would fail (EPIPE)
  const std::vector<FlowRecord> three(3, sample());
  exporter->exportBatch(three, 0);
  exporter->exportBatch(three, 0);
  exporter->exportBatch(three, 0);
  const uint64_t exporter_dropped_after_first = exporter->counters().dropped.load() - dropped_first;
  exporter.reset();  // closes the FIFO: the reader sees its end
  second_reader.join();
  // What the second reader got: what the pipe still held of the first batch
  // (ending in the torn line), the newline that ends it, then the three
  // batches: 9 whole lines. No blank line anywhere.
  EXPECT_EQ(exporter_dropped_after_first, 0u) << "every later batch reached the second reader";
  EXPECT_EQ(second.find("\n\n"), std::string::npos) << "a blank line: the torn line was ended more than once";
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second.back(), '\n');
  std::vector<std::string> last;
  for (size_t end = second.size() - 1; last.size() < 9;) {
    const size_t start = second.rfind('\n', end - 1);
    ASSERT_NE(start, std::string::npos);
    last.push_back(second.substr(start + 1, end - start - 1));
    end = start;
  }
  for (const std::string& line : last) EXPECT_EQ(line, formatFlowJson(sample()));
  ::unlink(fifo.c_str());
  ::rmdir(dir);
}

TEST(TextExporter, FastFormattersMatchTheSnprintfReference) {
  std::mt19937_64 rng(20261127);
  auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  std::string appended_text, appended_json, expected_text, expected_json;
  for (int i = 0; i < 20'000; ++i) {
    FlowRecord r;
    r.key.ip_version = pick(0, 1) ? 6 : 4;
    const uint8_t protocols[] = {1, 6, 17, 58, 132, 0, 255};
    r.key.protocol = protocols[pick(0, std::size(protocols) - 1)];
    for (auto* addr : {&r.key.src_addr, &r.key.dst_addr}) {
      *addr = {};
      const size_t n = r.key.ip_version == 6 ? 16 : 4;
      for (size_t b = 0; b < n; ++b) (*addr)[b] = pick(0, 3) == 0 ? 0 : static_cast<uint8_t>(pick(0, 255));
    }
    r.key.src_port = static_cast<uint16_t>(pick(0, 65535));
    r.key.dst_port = static_cast<uint16_t>(pick(0, 65535));
    r.key.vlan_id = static_cast<uint16_t>(pick(0, 4095));
    r.key.inner_vlan_id = static_cast<uint16_t>(pick(0, 4095));
    r.key.ingress_if = static_cast<uint16_t>(pick(0, 65535));
    const uint64_t kEndOf9999 = 253'402'300'799'999;
    r.first_ms = pick(0, 3) == 0 ? pick(0, kEndOf9999) : pick(1'600'000'000'000, 1'900'000'000'000);
    r.last_ms = r.first_ms + pick(0, 100'000);
    r.packets = pick(0, 1) ? pick(1, 1000) : pick(0, UINT64_MAX);
    r.octets = pick(0, 1) ? pick(1, 1'000'000) : pick(0, UINT64_MAX);
    r.tcp_flags = static_cast<uint8_t>(pick(0, 255));
    r.tos = static_cast<uint8_t>(pick(0, 255));
    r.min_ttl = static_cast<uint8_t>(pick(0, 255));
    r.max_ttl = static_cast<uint8_t>(pick(0, 255));
    for (auto* m : {&r.src_mac, &r.dst_mac})
      for (auto& b : *m) b = static_cast<uint8_t>(pick(0, 255));
    // A stack of 0 to 3 entries (to the first absent one).
    const int depth = static_cast<int>(pick(0, 3));
    for (int d = 0; d < 3; ++d)
      r.mpls_stack[d] = d < depth ? 0x1000000 | static_cast<uint32_t>(pick(0, 0xFFFFFF)) : 0;
    r.end_reason = static_cast<FlowEndReason>(pick(1, 5));
    r.flow_id = pick(0, 1) ? pick(1, 1000) : pick(0, UINT64_MAX);
    const std::string want_text = refText(r);
    const std::string want_json = refJson(r);
    ASSERT_EQ(formatFlowText(r), want_text);
    ASSERT_EQ(formatFlowJson(r), want_json);
    appendFlowText(appended_text, r);
    appendFlowJson(appended_json, r);
    expected_text += want_text;
    expected_json += want_json;
  }
  EXPECT_EQ(appended_text, expected_text);
  EXPECT_EQ(appended_json, expected_json);
}

TEST(TextExporter, DirectionOnlyWithLocalNetworks) {
  LocalNetworks nets;
  ASSERT_EQ(nets.add("192.0.2.0/24"), "");
  const FlowRecord out = sample();  // 192.0.2.10 -> 198.51.100.7: egress
  FlowRecord in = out;
  std::swap(in.key.src_addr, in.key.dst_addr);
  FlowRecord both = out;
  both.key.dst_addr = {192, 0, 2, 99};
  const std::string plain = formatFlowText(out);
  EXPECT_EQ(formatFlowText(out, &nets), plain + " direction egress");
  EXPECT_EQ(formatFlowText(in, &nets).substr(formatFlowText(in).size()), " direction ingress");
  EXPECT_EQ(formatFlowText(both, &nets).substr(formatFlowText(both).size()), " direction -");
  const LocalNetworks empty;
  EXPECT_EQ(formatFlowText(out, &empty), plain);
  EXPECT_EQ(plain.find("direction"), std::string::npos);

  const std::string json = formatFlowJson(out);
  EXPECT_EQ(json.find("direction"), std::string::npos);
  EXPECT_EQ(formatFlowJson(out, &nets), json.substr(0, json.size() - 1) + ",\"direction\":\"egress\"}");
  EXPECT_EQ(formatFlowJson(in, &nets).substr(formatFlowJson(in).size() - 1), ",\"direction\":\"ingress\"}");
  EXPECT_EQ(formatFlowJson(both, &nets).substr(formatFlowJson(both).size() - 1), ",\"direction\":null}");
  EXPECT_EQ(formatFlowJson(out, &empty), json);
}
}  // namespace
}  // namespace flowfold
