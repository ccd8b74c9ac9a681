// nDPI through flowfold's Engine on hand-built packets: what each packet
// carries (a DNS question, an HTTP Host) is written here, and the protocol
// numbers expected are nDPI's published ids (ndpi_protocol_ids.h: DNS 5,
// HTTP 7; categories: Network 14, Web 5).

#include "flowfold/dpi/dpi.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace flowfold::dpi {
namespace {

constexpr uint16_t kNdpiDns = 5, kNdpiHttp = 7;
constexpr uint16_t kCategoryWeb = 5, kCategoryNetwork = 14;

void put16(std::vector<uint8_t>& p, size_t at, uint16_t v) {
  p[at] = static_cast<uint8_t>(v >> 8);
  p[at + 1] = static_cast<uint8_t>(v);
}

uint16_t ipChecksum(const uint8_t* h) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += (h[i] << 8) | h[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// IPv4 with a UDP or TCP header (TCP: 20 bytes, `flags`, `seq`, `ack`) and payload.
std::vector<uint8_t> packet(uint8_t protocol, const uint8_t src[4], const uint8_t dst[4], uint16_t sport,
                            uint16_t dport, const std::string& payload, uint8_t flags = 0x18, uint32_t seq = 1,
                            uint32_t ack = 1) {
  const size_t l4 = protocol == 6 ? 20 : 8;
  std::vector<uint8_t> p(20 + l4 + payload.size());
  p[0] = 0x45;
  put16(p, 2, static_cast<uint16_t>(p.size()));
  p[8] = 64;
  p[9] = protocol;
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  put16(p, 10, ipChecksum(p.data()));
  put16(p, 20, sport);
  put16(p, 22, dport);
  if (protocol == 17) {
    put16(p, 24, static_cast<uint16_t>(8 + payload.size()));
  } else {
    for (int i = 0; i < 4; ++i) {
      p[24 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
      p[28 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
    }
    p[32] = 0x50;
    p[33] = flags;
    put16(p, 34, 65535);
  }
  std::memcpy(&p[20 + l4], payload.data(), payload.size());
  return p;
}

// A DNS message with one question for `name` (type A); `answer`: a response
// with one A record.
std::string dns(const std::string& name, bool answer) {
  std::string m = {'\x12', '\x34', static_cast<char>(answer ? 0x81 : 0x01), static_cast<char>(answer ? 0x80 : 0x00),
                   0, 1, 0, static_cast<char>(answer ? 1 : 0), 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(static_cast<char>(dot - start));
    m += name.substr(start, dot - start);
    start = dot + 1;
  }
  m += std::string("\0\0\x01\0\x01", 5);
  if (answer) m += std::string("\xc0\x0c\0\x01\0\x01\0\0\x0e\x10\0\x04\xc0\x00\x02\x07", 16);
  return m;
}

const uint8_t kClient[4] = {10, 0, 0, 1}, kServer[4] = {192, 0, 2, 7};

TEST(Dpi, NamesADnsQuestionAndItsServerName) {
  Engine engine;
  DpiFlow flow;
  const auto q = packet(17, kClient, kServer, 40000, 53, dns("www.example.org", false));
  const auto r = packet(17, kServer, kClient, 53, 40000, dns("www.example.org", true));
  bool settled = engine.feed(flow, 17, q.data(), q.size(), 1000);
  if (!settled) settled = engine.feed(flow, 17, r.data(), r.size(), 1001);
  EXPECT_TRUE(settled);
  const Label l = engine.label(flow);
  EXPECT_EQ(l.app, kNdpiDns);
  EXPECT_EQ(l.category, kCategoryNetwork);
  EXPECT_FALSE(l.guessed());
  EXPECT_EQ(l.serverName(), "www.example.org");
  EXPECT_EQ(engine.name(l), "DNS");
  EXPECT_EQ(engine.categoryName(l), "Network");
}

TEST(Dpi, NamesHttpAndItsHostAfterTheHandshake) {
  Engine engine;
  DpiFlow flow;
  std::vector<std::vector<uint8_t>> packets = {
      packet(6, kClient, kServer, 50000, 80, "", 0x02, 100, 0),
      packet(6, kServer, kClient, 80, 50000, "", 0x12, 500, 101),
      packet(6, kClient, kServer, 50000, 80, "", 0x10, 101, 501),
      packet(6, kClient, kServer, 50000, 80,
             "GET /index.html HTTP/1.1\r\nHost: intranet.example.net\r\nUser-Agent: test\r\n\r\n", 0x18, 101, 501),
      packet(6, kServer, kClient, 80, 50000, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0x18, 501, 180),
  };
  uint64_t t = 2000;
  for (const auto& p : packets)
    if (engine.feed(flow, 6, p.data(), p.size(), t++)) break;
  const Label l = engine.label(flow);
  EXPECT_TRUE(l.app == kNdpiHttp || l.master == kNdpiHttp) << engine.name(l);
  EXPECT_EQ(l.category, kCategoryWeb);
  EXPECT_EQ(l.serverName(), "intranet.example.net");
}

TEST(Dpi, UnknownUdpSettlesAfterNdpiReadersPacketLimitWithAGuess) {
  Engine engine;
  DpiFlow flow;
  const auto p = packet(17, kClient, kServer, 40001, 40002, std::string(60, '\x5a'));
  uint32_t fed = 0;
  while (!engine.feed(flow, 17, p.data(), p.size(), 3000 + fed)) {
    ++fed;
    ASSERT_LE(fed, kMaxUdpPackets + 1) << "did not settle at the limit";
  }
  EXPECT_EQ(flow.packets(), kMaxUdpPackets + 1);  // ndpiReader: more than 24
  EXPECT_TRUE(flow.settled());
  EXPECT_EQ(engine.label(flow).app, 0);
}

TEST(Dpi, AFlowEndingEarlyIsLabelledWithAGuess) {
  Engine engine;
  DpiFlow flow;
  // A SYN to port 443 alone: nothing to inspect; nDPI guesses from the port.
  const auto syn = packet(6, kClient, kServer, 50001, 443, "", 0x02, 1, 0);
  EXPECT_FALSE(engine.feed(flow, 6, syn.data(), syn.size(), 4000));
  const Label l = engine.label(flow);
  EXPECT_TRUE(l.guessed());
  EXPECT_EQ(engine.name(l), "TLS");
}

TEST(Dpi, ReportsTheLibraryVersion) { EXPECT_EQ(Engine::version().rfind("4.", 0), 0u) << Engine::version(); }

}  // namespace
}  // namespace flowfold::dpi
