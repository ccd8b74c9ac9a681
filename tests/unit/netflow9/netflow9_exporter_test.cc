// NetFlow v9 exporter and UDP transport against real sockets on loopback.
// Receives wait with a bounded poll(), never a sleep.

#include "flowfold/exporters/netflow9_exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/exporters/netflow9_transport.h"
#include "v9_test_parser.h"

namespace flowfold {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint64_t kBoot = 1700000000000;

// A plain POSIX UDP socket standing in for the collector.
class Receiver {
 public:
  explicit Receiver(int family, uint16_t port = 0) : family_(family) {
    fd_ = ::socket(family, SOCK_DGRAM, 0);
    if (fd_ < 0) return;
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(port);
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(port);
      a->sin6_addr = in6addr_loopback;
      len = sizeof(sockaddr_in6);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      close();
      return;
    }
    int rcvbuf = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                    : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  ~Receiver() { close(); }
  bool ok() const { return fd_ >= 0; }
  uint16_t port() const { return port_; }
  std::string portString() const { return std::to_string(port_); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::optional<Bytes> receive(int timeout_ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    Bytes buf(70000);
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  int family_;
  int fd_ = -1;
  uint16_t port_ = 0;
};

FlowRecord tcpRecord(uint16_t sport) {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.src_addr = {192, 168, 0, 1};
  r.key.dst_addr = {192, 168, 0, 2};
  r.key.src_port = sport;
  r.key.dst_port = 22;
  r.key.protocol = 6;
  r.packets = 10;
  r.octets = 840;
  r.first_ms = kBoot + 100;
  r.last_ms = kBoot + 900;
  return r;
}

TEST(Netflow9Transport, DeliversDatagramsIntact) {
  Receiver rx(AF_INET);
  ASSERT_TRUE(rx.ok());
  netflow9::UdpTransport tx("127.0.0.1", rx.portString());
  EXPECT_EQ(tx.remote(), "127.0.0.1:" + rx.portString());
  std::vector<Bytes> sent;
  for (size_t size : {1u, 1400u, 9000u}) {
    Bytes b(size);
    for (size_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>(i * 7 + size);
    ASSERT_TRUE(tx.send(b)) << tx.lastError();
    sent.push_back(b);
  }
  for (const auto& b : sent) {
    const auto got = rx.receive();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, b);
  }
  EXPECT_EQ(tx.datagramsSent(), 3u);
  EXPECT_EQ(tx.sendErrors(), 0u);
}

TEST(Netflow9Transport, ReachesIPv6Collector) {
  Receiver rx(AF_INET6);
  if (!rx.ok()) GTEST_SKIP() << "no IPv6 loopback here";
  netflow9::UdpTransport tx("[::1]", rx.portString());
  EXPECT_EQ(tx.remote(), "[::1]:" + rx.portString());
  const Bytes b = {0, 9, 1, 2, 3};
  ASSERT_TRUE(tx.send(b)) << tx.lastError();
  const auto got = rx.receive();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, b);
}

TEST(Netflow9Transport, PacedSendsStillDeliverEverything) {
  Receiver rx(AF_INET);
  ASSERT_TRUE(rx.ok());
  // The burst (64) covers these sends, so the test does not wait on the clock.
  netflow9::UdpTransport tx("127.0.0.1", rx.portString(), 1000);
  for (uint8_t i = 0; i < 10; ++i) ASSERT_TRUE(tx.send(Bytes{i}));
  for (uint8_t i = 0; i < 10; ++i) {
    const auto got = rx.receive();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, Bytes{i});
  }
}

TEST(Netflow9Transport, RejectsUnresolvableCollector) {
  EXPECT_THROW(netflow9::UdpTransport("127.0.0.1", "no-such-service-flowfold"), std::runtime_error);
}

TEST(Netflow9Exporter, RejectsTooSmallMaxDatagram) {
  NetflowV9Options o;
  o.host = "127.0.0.1";
  o.port = "2055";
  o.max_datagram = 200;
  EXPECT_THROW(makeNetflowV9Exporter(o), std::invalid_argument);
}

TEST(Netflow9Exporter, SendsDecodableDatagramsToCollector) {
  Receiver rx(AF_INET);
  ASSERT_TRUE(rx.ok());
  NetflowV9Options o;
  o.host = "127.0.0.1";
  o.port = rx.portString();
  o.source_id = 99;
  o.max_datagram = 400;
  o.boot_ms = kBoot;
  auto exporter = makeNetflowV9Exporter(o);
  std::vector<FlowRecord> recs;
  for (uint16_t i = 0; i < 20; ++i) recs.push_back(tcpRecord(30000 + i));
  exporter->exportBatch(recs, kBoot + 2500);

  const auto& c = exporter->counters();
  EXPECT_EQ(c.records.load(), 20u);
  EXPECT_EQ(c.errors.load(), 0u);
  ASSERT_GT(c.messages.load(), 1u);  // 400 bytes hold at most 5 records

  v9test::Parser parser;
  std::vector<uint16_t> ports;
  uint64_t bytes = 0;
  for (uint32_t seq = 0; seq < c.messages.load(); ++seq) {
    const auto got = rx.receive();
    ASSERT_TRUE(got.has_value()) << "datagram " << seq << " missing";
    EXPECT_LE(got->size(), 400u);
    bytes += got->size();
    const auto d = parser.parse(*got);
    EXPECT_EQ(d.sequence, seq);
    EXPECT_EQ(d.source_id, 99u);
    EXPECT_EQ(d.sys_uptime, 2000u);
    for (const auto& r : d.records) {
      ports.push_back(static_cast<uint16_t>(r.num(7)));  // L4_SRC_PORT
      EXPECT_EQ(r.num(22), 100u);                         // FIRST_SWITCHED
      EXPECT_EQ(r.num(21), 900u);                         // LAST_SWITCHED
    }
  }
  EXPECT_EQ(bytes, c.bytes.load());
  ASSERT_EQ(ports.size(), 20u);
  for (uint16_t i = 0; i < 20; ++i) EXPECT_EQ(ports[i], 30000 + i);
}

TEST(Netflow9Exporter, UnsetBootStartsOneDayBeforeFirstExport) {
  Receiver rx(AF_INET);
  ASSERT_TRUE(rx.ok());
  NetflowV9Options o;
  o.host = "127.0.0.1";
  o.port = rx.portString();
  o.boot_ms = 0;
  NetflowV9Exporter exporter(o);
  FlowRecord r = tcpRecord(1);
  r.first_ms = kBoot - 3600 * 1000;  // began an hour before the first export
  r.last_ms = kBoot;
  exporter.exportBatch(std::vector<FlowRecord>{r}, kBoot + 500);
  EXPECT_EQ(exporter.bootMs(), kBoot + 500 - 86400000);
  const auto got = rx.receive();
  ASSERT_TRUE(got.has_value());
  v9test::Parser parser;
  const auto d = parser.parse(*got);
  ASSERT_EQ(d.records.size(), 1u);
  // boot floors to kBoot - 1 day; uptime is taken at unix_secs = kBoot / 1000
  EXPECT_EQ(d.sys_uptime, 86400000u);
  EXPECT_EQ(d.records[0].num(22), 86400000u - 3600000u);  // FIRST_SWITCHED
  EXPECT_EQ(d.records[0].num(21), 86400000u);             // LAST_SWITCHED
}

// A loopback port nothing listens on (it answers with ICMP port unreachable).
uint16_t closedPort() {
  Receiver probe(AF_INET);
  EXPECT_TRUE(probe.ok());
  return probe.port();
}

std::unique_ptr<Exporter> exporterTo(uint16_t port) {
  NetflowV9Options o;
  o.host = "127.0.0.1";
  o.port = std::to_string(port);
  o.boot_ms = kBoot;
  return makeNetflowV9Exporter(o);
}

// A collector that stays down fails every send: the warning is rate-limited
// (LogRateLimiter: 5 a minute), while every failure is still counted.
TEST(Netflow9Exporter, SendFailuresToACollectorThatStaysDownLogAtMostFiveWarnings) {
  auto exporter = exporterTo(closedPort());
  const auto& c = exporter->counters();
  testing::internal::CaptureStderr();
  for (int i = 0; i < 3000 && c.errors.load() < 1000; ++i)
    exporter->exportBatch(std::vector<FlowRecord>{tcpRecord(static_cast<uint16_t>(i))}, kBoot + 1000);
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_GE(c.errors.load(), 1000u);  // a hand-rolled "first 5, then every 1000th" logged a 6th
  size_t warnings = 0;
  for (size_t at = log.find("failed datagrams so far"); at != std::string::npos;
       at = log.find("failed datagrams so far", at + 1))
    ++warnings;
  EXPECT_GE(warnings, 1u) << log;
  EXPECT_LE(warnings, 5u) << log;
}

TEST(Netflow9Exporter, KeepsSendingAfterCollectorPortWasClosed) {
  const uint16_t port = closedPort();
  auto exporter = exporterTo(port);
  const auto& c = exporter->counters();

  // Linux reports the ICMP error on the next send of the connected socket.
  // Loopback answers at once; the bound only guards against a hung test.
  int batches = 0;
  while (c.errors.load() == 0 && batches < 100) {
    exporter->exportBatch(std::vector<FlowRecord>{tcpRecord(static_cast<uint16_t>(batches))},
                          kBoot + 1000);
    ++batches;
  }
  ASSERT_GE(c.errors.load(), 1u) << "no send error after " << batches << " datagrams";
  EXPECT_EQ(c.dropped.load(), c.errors.load());
  EXPECT_EQ(c.messages.load() + c.errors.load(), static_cast<uint64_t>(batches));

  // The collector comes back on the same port: later sends reach it.
  Receiver rx(AF_INET, port);
  ASSERT_TRUE(rx.ok()) << "port " << port << " was taken meanwhile";
  const uint64_t sent_before = c.messages.load();
  std::optional<Bytes> got;
  for (int i = 0; i < 5 && !got; ++i) {
    exporter->exportBatch(std::vector<FlowRecord>{tcpRecord(5000)}, kBoot + 2000);
    got = rx.receive(c.messages.load() > sent_before ? 2000 : 0);
  }
  ASSERT_TRUE(got.has_value());
  v9test::Parser parser;
  const auto d = parser.parse(*got);
  // A failed send may have lost the templates or the collector restarted:
  // the first datagram after an error carries them again.
  EXPECT_EQ(d.template_records, 2);
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.records[0].num(7), 5000u);
  // Lost datagrams kept their sequence numbers: the collector sees the gap.
  EXPECT_GE(d.sequence, static_cast<uint32_t>(batches));
}

}  // namespace
}  // namespace flowfold
