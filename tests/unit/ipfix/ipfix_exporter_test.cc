// IPFIX exporter: what reaches a file, a UDP collector and a TCP collector,
// read back with the independent decoder in ipfix_test_decoder.h and with
// the real tools (ipfixDump, tshark) where they are installed.

#include "flowfold/exporters/ipfix_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipfix_test_decoder.h"

namespace flowfold {

// Readable test parameters (gtest finds this by argument-dependent lookup).
void PrintTo(IpfixOptions::Encoder encoder, std::ostream* os) {
  *os << (encoder == IpfixOptions::Encoder::kDirect ? "direct" : "libfixbuf");
}

namespace {

using ipfix_test::DataRecord;
using ipfix_test::Decoder;
using ipfix_test::Message;
using Bytes = std::vector<uint8_t>;
using Encoder = IpfixOptions::Encoder;

constexpr uint64_t kNowMs = 1'700'000'005'250;  // pipeline time of the tests' batches

// ---------------------------------------------------------------- records

FlowRecord tcp4() {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = 6;
  r.key.src_addr = {10, 1, 2, 3};
  r.key.dst_addr = {192, 0, 2, 9};
  r.key.src_port = 40000;
  r.key.dst_port = 443;
  r.key.vlan_id = 100;
  r.key.inner_vlan_id = 200;
  r.key.ingress_if = 3;
  r.packets = 12;
  r.octets = 3456;
  r.first_ms = 1'700'000'000'123;
  r.last_ms = 1'700'000'004'567;
  // Label 0xABCDE TC 5 S 0 | label 100 TC 0 S 0 | label 0 TC 7 S 1.
  r.mpls_stack = {0x1ABCDEA, 0x1000640, 0x100000F};
  r.src_mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  r.dst_mac = {0x02, 0x66, 0x77, 0x88, 0x99, 0xAA};
  r.tcp_flags = 0x1B;
  r.tos = 0xB8;
  r.min_ttl = 60;
  r.max_ttl = 64;
  r.end_reason = FlowEndReason::kActiveTimeout;
  r.flow_id = 0x0123456789ABCDEF;  // every byte different: catches a swap or a short copy
  return r;
}

FlowRecord udp6() {
  FlowRecord r;
  r.key.ip_version = 6;
  r.key.protocol = 17;
  r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  r.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xef};
  r.key.src_port = 5353;
  r.key.dst_port = 53;
  r.key.vlan_id = 4094;
  r.key.ingress_if = 65535;
  r.packets = 1;
  r.octets = 0x1'0000'0001;  // needs all 8 bytes of octetDeltaCount
  r.first_ms = 1'700'000'001'000;
  r.last_ms = 1'700'000'001'000;
  r.src_mac = {0x00, 0x1b, 0x21, 0x01, 0x02, 0x03};
  r.dst_mac = {0x33, 0x33, 0x00, 0x00, 0x00, 0xfb};
  r.tos = 0x28;
  r.min_ttl = 255;
  r.max_ttl = 255;
  r.end_reason = FlowEndReason::kIdleTimeout;
  r.flow_id = 0x18C0000000000002;  // a live-capture id: (start ms << 16) + n
  return r;
}

FlowRecord icmp4() {  // echo request: type 8, code 0
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = 1;
  r.key.src_addr = {172, 16, 0, 1};
  r.key.dst_addr = {8, 8, 8, 8};
  r.key.dst_port = 8 * 256 + 0;
  r.packets = 4;
  r.octets = 336;
  r.first_ms = 1'700'000'002'000;
  r.last_ms = 1'700'000'005'000;
  r.min_ttl = 63;
  r.max_ttl = 63;
  r.end_reason = FlowEndReason::kForcedEnd;
  r.flow_id = 3;
  return r;
}

FlowRecord icmp6() {  // destination unreachable, port unreachable: type 1, code 4
  FlowRecord r;
  r.key.ip_version = 6;
  r.key.protocol = 58;
  r.key.src_addr = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55};
  r.key.dst_addr = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
  r.key.dst_port = 1 * 256 + 4;
  r.key.inner_vlan_id = 7;
  r.packets = 2;
  r.octets = 208;
  r.first_ms = 1'700'000'003'000;
  r.last_ms = 1'700'000'003'500;
  r.mpls_stack = {0x1000101, 0, 0};  // label 16, TC 0, S 1: a stack of one
  r.min_ttl = 255;
  r.max_ttl = 255;
  r.end_reason = FlowEndReason::kEndOfFlow;
  r.flow_id = UINT64_MAX;
  return r;
}

// n records cycling through the four shapes; octets is unique (the match key).
std::vector<FlowRecord> manyRecords(size_t n, uint64_t first_octets = 1'000'000) {
  const FlowRecord shapes[] = {tcp4(), udp6(), icmp4(), icmp6(), tcp4()};
  std::vector<FlowRecord> out;
  for (size_t i = 0; i < n; ++i) {
    FlowRecord r = shapes[i % std::size(shapes)];
    r.octets = first_octets + i;
    r.packets = i % 1000 + 1;
    r.flow_id = 0xF100000000000000 + i * 0x10001;
    r.key.src_port = static_cast<uint16_t>(r.key.protocol == 1 || r.key.protocol == 58 ? 0 : i);
    out.push_back(r);
  }
  return out;
}

// ------------------------------------------------ expected wire values

Bytes big(uint64_t v, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
  return b;
}

// Every element of a record as RFC 7011/7012 encode it, computed here from
// the FlowRecord without the exporter's tables.
std::map<uint16_t, Bytes> expectedFields(const FlowRecord& r) {
  std::map<uint16_t, Bytes> f;
  const bool v6 = r.key.ip_version == 6;
  const bool icmp = (!v6 && r.key.protocol == 1) || (v6 && r.key.protocol == 58);
  if (v6) {
    f[27] = Bytes(r.key.src_addr.begin(), r.key.src_addr.end());  // sourceIPv6Address
    f[28] = Bytes(r.key.dst_addr.begin(), r.key.dst_addr.end());  // destinationIPv6Address
    f[139] = big(icmp ? r.key.dst_port : 0, 2);                    // icmpTypeCodeIPv6
  } else {
    f[8] = Bytes(r.key.src_addr.begin(), r.key.src_addr.begin() + 4);   // sourceIPv4Address
    f[12] = Bytes(r.key.dst_addr.begin(), r.key.dst_addr.begin() + 4);  // destinationIPv4Address
    f[32] = big(icmp ? r.key.dst_port : 0, 2);                          // icmpTypeCodeIPv4
  }
  f[1] = big(r.octets, 8);                // octetDeltaCount
  f[2] = big(r.packets, 8);               // packetDeltaCount
  f[152] = big(r.first_ms, 8);            // flowStartMilliseconds
  f[153] = big(r.last_ms, 8);             // flowEndMilliseconds
  f[148] = big(r.flow_id, 8);             // flowId
  f[10] = big(r.key.ingress_if, 4);       // ingressInterface
  f[7] = big(r.key.src_port, 2);          // sourceTransportPort
  f[11] = big(r.key.dst_port, 2);         // destinationTransportPort
  f[58] = big(r.key.vlan_id, 2);          // vlanId
  f[59] = big(r.key.inner_vlan_id, 2);    // postVlanId: the inner tag, for nfdump 1.7
  f[245] = big(r.key.inner_vlan_id, 2);   // dot1qCustomerVlanId
  f[6] = big(r.tcp_flags, 2);             // tcpControlBits
  f[56] = Bytes(r.src_mac.begin(), r.src_mac.end());  // sourceMacAddress
  f[80] = Bytes(r.dst_mac.begin(), r.dst_mac.end());  // destinationMacAddress
  // mplsTopLabelStackSection, mplsLabelStackSection2/3: the entry's 3 octets
  // (label | TC | S), all zero when the stack does not reach it.
  for (int i = 0; i < 3; ++i) {
    const uint32_t e = r.mpls_stack[i];
    f[static_cast<uint16_t>(70 + i)] = big((e >> 24) == 1 ? e & 0xFFFFFF : 0, 3);
  }
  f[4] = {r.key.protocol};                             // protocolIdentifier
  f[5] = {r.tos};                                      // ipClassOfService
  f[52] = {r.min_ttl};                                 // minimumTTL
  f[53] = {r.max_ttl};                                 // maximumTTL
  f[136] = {static_cast<uint8_t>(r.end_reason)};       // flowEndReason
  f[60] = {r.key.ip_version};                          // ipVersion
  return f;
}

// Matches every decoded record to the input by octetDeltaCount and compares all fields.
void expectRecordsMatch(const std::vector<FlowRecord>& sent, const std::vector<Message>& messages) {
  std::map<uint64_t, const DataRecord*> received;
  size_t count = 0;
  for (const Message& m : messages) {
    for (const DataRecord& d : m.records) {
      received[d.number(1)] = &d;
      ++count;
    }
  }
  ASSERT_EQ(count, sent.size());
  ASSERT_EQ(received.size(), sent.size()) << "octetDeltaCount values repeat";
  for (const FlowRecord& r : sent) {
    auto it = received.find(r.octets);
    ASSERT_NE(it, received.end()) << "record with octets " << r.octets << " missing";
    EXPECT_EQ(it->second->template_id, r.key.ip_version == 6 ? 257 : 256);
    EXPECT_EQ(it->second->fields, expectedFields(r)) << "record with octets " << r.octets;
  }
}

// Templates only: the data templates (set 2), then the options templates
// (set 3, one set each).
bool isTemplateMessage(const Message& m) {
  return !m.set_ids.empty() && m.set_ids.front() == 2 &&
         std::all_of(m.set_ids.begin(), m.set_ids.end(), [](uint16_t id) { return id == 2 || id == 3; });
}

// Sequence number = data records in all earlier messages of the session.
void expectSequenceNumbers(const std::vector<Message>& messages) {
  uint32_t before = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(messages[i].sequence, before) << "message " << i;
    before += static_cast<uint32_t>(messages[i].records.size());
  }
}

// ------------------------------------------------------------- plumbing

std::string tempPath(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = std::string(info->test_suite_name()) + "_" + info->name();
  std::replace(test.begin(), test.end(), '/', '_');
  return (std::filesystem::temp_directory_path() /
          ("flowfold_ipfix_" + std::to_string(::getpid()) + "_" + test + "_" + name))
      .string();
}

Bytes readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

std::vector<Message> decodeStream(const Bytes& bytes) {
  Decoder decoder;
  std::vector<Message> messages;
  EXPECT_TRUE(decoder.decodeStream(bytes, messages)) << decoder.error();
  return messages;
}

std::vector<Message> decodeDatagrams(const std::vector<Bytes>& datagrams) {
  Decoder decoder;  // one UDP session
  std::vector<Message> messages;
  for (const Bytes& d : datagrams) {
    Message m;
    EXPECT_TRUE(decoder.decode(d, m)) << decoder.error();
    messages.push_back(std::move(m));
  }
  return messages;
}

struct CommandResult {
  int status = -1;
  std::string output;
};

CommandResult run(const std::string& command) {
  CommandResult result;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  result.status = ::pclose(pipe);
  return result;
}

bool haveProgram(const std::string& name) {
  return run("command -v " + name + " >/dev/null").status == 0;
}

uint16_t boundPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

int bindLoopback(int type) {
  const int fd = ::socket(AF_INET, type, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot bind a loopback socket");
  }
  return fd;
}

// A UDP collector on 127.0.0.1: a thread drains the socket so a burst of
// datagrams cannot overflow its buffer.
class UdpCollector {
 public:
  UdpCollector() : fd_(bindLoopback(SOCK_DGRAM)), thread_([this] { receive(); }) {}
  ~UdpCollector() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string port() const { return std::to_string(boundPort(fd_)); }

  /// The first `count` datagrams (fewer if they do not come within 10 s).
  std::vector<Bytes> waitFor(size_t count) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return datagrams_.size() >= count; });
    return datagrams_;
  }

 private:
  void receive() {
    Bytes buf(65536);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) continue;
      std::lock_guard lock(mutex_);
      datagrams_.emplace_back(buf.begin(), buf.begin() + n);
      cv_.notify_all();
    }
  }

  int fd_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Bytes> datagrams_;
  std::thread thread_;
};

// A TCP collector on 127.0.0.1. It accepts connections one after another;
// the first `hang_ups` it closes at once (a collector going away), the next
// one it reads until the exporter closes it.
class TcpCollector {
 public:
  explicit TcpCollector(int hang_ups = 0) : fd_(bindLoopback(SOCK_STREAM)), hang_ups_(hang_ups) {
    ::listen(fd_, 4);
    thread_ = std::thread([this] { receive(); });
  }
  ~TcpCollector() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string port() const { return std::to_string(boundPort(fd_)); }

  /// Waits (up to 10 s) until the collector has hung up on every connection it should.
  bool hungUp() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return hung_up_ == hang_ups_; });
  }

  /// Everything the exporter sent on the connection that was read, once it closed.
  Bytes streamAfterClose() {
    thread_.join();
    return stream_;
  }

 private:
  void receive() {
    for (int i = 0; i <= hang_ups_; ++i) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return;
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      if (i < hang_ups_) {
        ::close(conn);
        std::lock_guard lock(mutex_);
        ++hung_up_;
        cv_.notify_all();
        continue;
      }
      uint8_t buf[65536];
      for (;;) {
        pollfd c{conn, POLLIN, 0};
        if (::poll(&c, 1, 10000) <= 0) break;
        const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) break;
        stream_.insert(stream_.end(), buf, buf + n);
      }
      ::close(conn);
    }
  }

  int fd_;
  const int hang_ups_;
  int hung_up_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
  Bytes stream_;
  std::thread thread_;
};

// A TCP collector that is not there yet: the port is bound (so connecting is
// refused) until listen(); with stall, the connection is accepted but not
// read until release().
class LateTcpCollector {
 public:
  explicit LateTcpCollector(bool stall = false) : fd_(bindLoopback(SOCK_STREAM)), stall_(stall) {
    if (stall_) {  // small kernel buffers: the stall reaches the exporter sooner
      const int small = 64 << 10;
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
  }
  ~LateTcpCollector() {
    release();
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string port() const { return std::to_string(boundPort(fd_)); }

  void listen() {
    ::listen(fd_, 4);
    thread_ = std::thread([this] { receive(); });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }
  Bytes streamAfterClose() {
    thread_.join();
    return stream_;
  }

 private:
  void receive() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 30000) <= 0) return;
    const int conn = ::accept(fd_, nullptr, nullptr);
    if (conn < 0) return;
    if (stall_) {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return released_; });
    }
    uint8_t buf[65536];
    for (;;) {
      pollfd c{conn, POLLIN, 0};
      if (::poll(&c, 1, 20000) <= 0) break;
      const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      stream_.insert(stream_.end(), buf, buf + n);
    }
    ::close(conn);
  }

  int fd_;
  const bool stall_;
  bool released_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  Bytes stream_;
  std::thread thread_;
};

IpfixOptions tcpOptions(const std::string& port) {
  IpfixOptions options;
  options.transport = IpfixOptions::Transport::kTcp;
  options.host = "127.0.0.1";
  options.port = port;
  options.encoder = IpfixOptions::Encoder::kDirect;
  return options;
}

void exportInBatches(Exporter& exporter, const std::vector<FlowRecord>& records, size_t batch,
                     UdpCollector* collector = nullptr) {
  for (size_t i = 0; i < records.size(); i += batch) {
    const size_t n = std::min(batch, records.size() - i);
    exporter.exportBatch(std::span<const FlowRecord>(records.data() + i, n), kNowMs);
    // Let the collector catch up after each batch: a whole burst could
    // overflow the default socket buffer on loopback.
    if (collector) collector->waitFor(exporter.counters().messages.load());
  }
}

IpfixOptions fileOptions(const std::string& path, Encoder encoder) {
  IpfixOptions o;
  o.transport = IpfixOptions::Transport::kFile;
  o.path = path;
  o.encoder = encoder;
  return o;
}

IpfixOptions udpOptions(const std::string& port, Encoder encoder) {
  IpfixOptions o;
  o.transport = IpfixOptions::Transport::kUdp;
  o.host = "127.0.0.1";
  o.port = port;
  o.encoder = encoder;
  return o;
}

// ------------------------------------------------------------------ tests

class IpfixEncoderTest : public ::testing::TestWithParam<Encoder> {};

INSTANTIATE_TEST_SUITE_P(Encoders, IpfixEncoderTest,
                         ::testing::Values(Encoder::kLibfixbuf, Encoder::kDirect),
                         [](const ::testing::TestParamInfo<Encoder>& info) {
                           return info.param == Encoder::kDirect ? "Direct" : "Libfixbuf";
                         });

TEST_P(IpfixEncoderTest, FileRoundTripsEveryFieldOfIpv4Ipv6AndIcmpRecords) {
  const std::string path = tempPath("flows.ipfix");
  const std::vector<FlowRecord> records = {tcp4(), udp6(), icmp4(), icmp6()};
  {
    auto exporter = makeIpfixExporter(fileOptions(path, GetParam()));
    exporter->exportBatch(records, kNowMs);
    exporter->flush(kNowMs);
    EXPECT_EQ(exporter->counters().records.load(), 4u);
    EXPECT_EQ(exporter->counters().messages.load(), 2u);  // templates, then the data
    EXPECT_EQ(exporter->counters().errors.load(), 0u);
  }
  const Bytes bytes = readFile(path);
  const std::vector<Message> messages = decodeStream(bytes);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  EXPECT_EQ(messages[1].set_ids, (std::vector<uint16_t>{256, 257}));  // one set per IP version
  expectRecordsMatch(records, messages);
  std::filesystem::remove(path);
}

TEST_P(IpfixEncoderTest, FileStartsWithTemplatesDeclaringTheIanaElements) {
  const std::string path = tempPath("templates.ipfix");
  {
    auto exporter = makeIpfixExporter(fileOptions(path, GetParam()));
    exporter->exportBatch(std::vector<FlowRecord>{tcp4()}, kNowMs);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_FALSE(messages.empty());
  ASSERT_EQ(messages[0].templates.size(), 2u);

  using Fields = std::vector<std::pair<uint16_t, uint16_t>>;  // (element id, length)
  const Fields common = {{1, 8},   {2, 8},  {152, 8}, {153, 8}, {148, 8}, {10, 4}, {7, 2},
                         {11, 2},  {58, 2}, {59, 2},  {245, 2}, {6, 2},   {56, 6}, {80, 6},
                         {70, 3},  {71, 3}, {72, 3}, {4, 1},  {5, 1},   {52, 1},  {53, 1}, {136, 1},
                         {60, 1}};
  Fields v4 = {{8, 4}, {12, 4}, {32, 2}};
  Fields v6 = {{27, 16}, {28, 16}, {139, 2}};
  v4.insert(v4.end(), common.begin(), common.end());
  v6.insert(v6.end(), common.begin(), common.end());
  std::sort(v4.begin(), v4.end());
  std::sort(v6.begin(), v6.end());

  std::map<uint16_t, Fields> declared;
  for (const auto& t : messages[0].templates) {
    Fields f = t.fields;
    std::sort(f.begin(), f.end());
    declared[t.id] = f;
  }
  EXPECT_EQ(declared[256], v4);
  EXPECT_EQ(declared[257], v6);
  std::filesystem::remove(path);
}

TEST_P(IpfixEncoderTest, FileHeadersCarryPipelineTimeDomainAndSequence) {
  const std::string path = tempPath("headers.ipfix");
  IpfixOptions options = fileOptions(path, GetParam());
  options.observation_domain = 0xDEC0DE;
  const std::vector<FlowRecord> first = manyRecords(3, 100);
  const std::vector<FlowRecord> second = manyRecords(5, 200);
  {
    auto exporter = makeIpfixExporter(options);
    exporter->exportBatch(first, 1'700'000'000'999);
    exporter->exportBatch(second, 1'700'000'007'000);
    exporter->flush(1'700'000'008'000);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].export_time, 1'700'000'000u);  // templates, before the first batch
  EXPECT_EQ(messages[1].export_time, 1'700'000'000u);
  EXPECT_EQ(messages[2].export_time, 1'700'000'007u);
  for (const Message& m : messages) EXPECT_EQ(m.domain, 0xDEC0DEu);
  EXPECT_EQ(messages[0].sequence, 0u);
  EXPECT_EQ(messages[1].sequence, 0u);
  EXPECT_EQ(messages[2].sequence, 3u);
  std::filesystem::remove(path);
}

TEST_P(IpfixEncoderTest, UdpMessagesStayWithinMtuWithSequenceNumbersAndTemplateRefresh) {
  UdpCollector collector;
  IpfixOptions options = udpOptions(collector.port(), GetParam());
  options.mtu = 512;
  options.observation_domain = 42;
  options.template_refresh_packets = 5;
  options.template_refresh_ms = 0;
  const std::vector<FlowRecord> records = manyRecords(1000);

  auto exporter = makeIpfixExporter(options);
  exportInBatches(*exporter, records, 100, &collector);
  exporter->flush(kNowMs);
  const uint64_t sent = exporter->counters().messages.load();
  const std::vector<Bytes> datagrams = collector.waitFor(sent);
  ASSERT_EQ(datagrams.size(), sent);

  uint64_t bytes = 0;
  for (const Bytes& d : datagrams) {
    EXPECT_LE(d.size(), 512u);
    bytes += d.size();
  }
  EXPECT_EQ(exporter->counters().bytes.load(), bytes);
  EXPECT_EQ(exporter->counters().records.load(), records.size());

  const std::vector<Message> messages = decodeDatagrams(datagrams);
  for (const Message& m : messages) EXPECT_EQ(m.domain, 42u);
  expectSequenceNumbers(messages);
  expectRecordsMatch(records, messages);

  // Templates first, then again after every 5 data messages.
  ASSERT_TRUE(isTemplateMessage(messages.front()));
  size_t data_run = 0, template_messages = 1;
  for (size_t i = 1; i < messages.size(); ++i) {
    if (isTemplateMessage(messages[i])) {
      EXPECT_EQ(data_run, 5u) << "template message " << i;
      data_run = 0;
      ++template_messages;
    } else {
      ++data_run;
    }
  }
  EXPECT_LE(data_run, 5u);
  const size_t data_messages = messages.size() - template_messages;
  EXPECT_GT(data_messages, 100u);  // 1000 records of 79 to 103 bytes in 512-byte messages
  EXPECT_EQ(template_messages, 1 + (data_messages - 1) / 5);
}

TEST_P(IpfixEncoderTest, UdpResendsTemplatesWhenTheRefreshTimeHasPassed) {
  UdpCollector collector;
  IpfixOptions options = udpOptions(collector.port(), GetParam());
  options.template_refresh_ms = 1000;
  options.template_refresh_packets = 0;
  auto exporter = makeIpfixExporter(options);
  const std::vector<FlowRecord> batch = {tcp4()};
  for (const uint64_t offset : {0, 400, 999, 1000, 1500, 2000}) {
    exporter->exportBatch(batch, kNowMs + offset);
  }
  const uint64_t sent = exporter->counters().messages.load();
  const std::vector<Message> messages = decodeDatagrams(collector.waitFor(sent));
  ASSERT_EQ(messages.size(), sent);
  std::string kinds;
  for (const Message& m : messages) kinds += isTemplateMessage(m) ? 'T' : 'D';
  EXPECT_EQ(kinds, "TDDDTDDTD");
}

TEST_P(IpfixEncoderTest, TcpSendsTemplatesOnceThenEveryRecord) {
  TcpCollector collector;
  IpfixOptions options;
  options.transport = IpfixOptions::Transport::kTcp;
  options.host = "127.0.0.1";
  options.port = collector.port();
  options.observation_domain = 7;
  options.encoder = GetParam();
  const std::vector<FlowRecord> records = manyRecords(150);
  {
    auto exporter = makeIpfixExporter(options);
    exportInBatches(*exporter, records, 50);
    exporter->flush(kNowMs);
    EXPECT_EQ(exporter->counters().errors.load(), 0u);
  }  // closes the connection
  const std::vector<Message> messages = decodeStream(collector.streamAfterClose());
  ASSERT_EQ(messages.size(), 4u);  // templates + one message per batch
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  for (size_t i = 1; i < messages.size(); ++i) EXPECT_FALSE(isTemplateMessage(messages[i]));
  for (const Message& m : messages) EXPECT_EQ(m.domain, 7u);
  expectSequenceNumbers(messages);
  expectRecordsMatch(records, messages);
}

TEST(IpfixExporter, TcpReconnectsAfterTheCollectorHangsUpAndResendsTemplates) {
  TcpCollector collector(/*hang_ups=*/1);
  auto exporter = makeIpfixExporter(tcpOptions(collector.port()));
  ASSERT_TRUE(collector.hungUp());

  // Writing into the closed connection fails once the peer's reset is back
  // (on loopback: by the second write at the latest). What the kernel took
  // before that is gone (TCP cannot tell); what was not written yet is kept
  // and goes out on the next connection.
  const std::vector<FlowRecord> early = manyRecords(50, 1000);
  for (int i = 0; i < 20 && exporter->counters().errors.load() == 0; ++i) {
    exporter->exportBatch(early, kNowMs);
  }
  ASSERT_GE(exporter->counters().errors.load(), 1u);

  const std::vector<FlowRecord> records = manyRecords(120, 5000);
  exportInBatches(*exporter, records, 40);
  exporter->flush(kNowMs);
  EXPECT_EQ(exporter->counters().dropped.load(), 0u);
  exporter.reset();

  const std::vector<Message> messages = decodeStream(collector.streamAfterClose());
  ASSERT_GE(messages.size(), 4u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));  // a new session starts with the templates
  expectSequenceNumbers(messages);              // ... and its own numbering from 0
  std::vector<Message> later;                   // the messages of `records`
  for (const Message& m : messages) {
    if (!m.records.empty() && m.records.front().number(1) >= 5000) later.push_back(m);
  }
  expectRecordsMatch(records, later);
}

TEST(IpfixExporter, TcpCollectorDownAtStartupGetsEveryRecordOnceItListens) {
  LateTcpCollector collector;
  auto exporter = makeIpfixExporter(tcpOptions(collector.port()));  // refused: not an error
  const std::vector<FlowRecord> records = manyRecords(3000);
  exportInBatches(*exporter, records, 1000);
  EXPECT_GE(exporter->counters().errors.load(), 1u);  // the refused connection
  EXPECT_EQ(exporter->counters().dropped.load(), 0u);

  collector.listen();
  exporter->flush(kNowMs);  // retries with backoff until the buffer is through
  EXPECT_EQ(exporter->counters().dropped.load(), 0u);
  exporter.reset();

  const std::vector<Message> messages = decodeStream(collector.streamAfterClose());
  ASSERT_GE(messages.size(), 2u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  expectSequenceNumbers(messages);
  expectRecordsMatch(records, messages);
}

// A collector whose host drops the SYN (a firewall that drops rather than
// refuses, an address nobody answers): here a listener whose accept queue
// (backlog 0) is full, so the kernel drops new SYNs until a place frees up.
TEST(IpfixExporter, TcpCollectorThatDropsTheSynDoesNotHoldTheExportThread) {
  const int listener = bindLoopback(SOCK_STREAM);
  ASSERT_EQ(::listen(listener, 0), 0);
  const uint16_t port = boundPort(listener);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int filler = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);  // fills the queue

  const auto start = std::chrono::steady_clock::now();
  auto exporter = makeIpfixExporter(tcpOptions(std::to_string(port)));
  const std::vector<FlowRecord> records = manyRecords(300);
  exportInBatches(*exporter, records, 100);
  const auto held = std::chrono::steady_clock::now() - start;
  // A blocking connect held the export thread (and every other exporter on
  // it) for the whole connect timeout, 5 s, right here. The bound is about
  // that wait, not speed.
  EXPECT_LT(held, std::chrono::seconds(3));
  EXPECT_EQ(exporter->counters().dropped.load(), 0u);

  // The collector takes the queued connection: the SYN the kernel sends again
  // (after 1 s) gets through, and the buffered records follow the templates.
  ::close(::accept(listener, nullptr, nullptr));
  ::close(filler);
  Bytes stream;
  std::thread reader([&] {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 15000) != 1) return;
    const int conn = ::accept(listener, nullptr, nullptr);
    uint8_t buf[65536];
    for (;;) {
      pollfd c{conn, POLLIN, 0};
      if (::poll(&c, 1, 15000) != 1) break;
      const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      stream.insert(stream.end(), buf, buf + n);
    }
    ::close(conn);
  });
  exporter->flush(kNowMs);
  EXPECT_EQ(exporter->counters().dropped.load(), 0u);
  exporter.reset();  // closes the connection: the reader sees the end
  reader.join();
  ::close(listener);

  const std::vector<Message> messages = decodeStream(stream);
  ASSERT_GE(messages.size(), 2u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  expectSequenceNumbers(messages);
  expectRecordsMatch(records, messages);
}

TEST(IpfixExporter, TcpStalledCollectorDoesNotHoldTheExportThreadAndLossIsCountedExactly) {
  LateTcpCollector collector(/*stall=*/true);
  collector.listen();
  IpfixOptions options = tcpOptions(collector.port());
  options.tcp_buffer_bytes = 1 << 20;
  auto exporter = makeIpfixExporter(options);
  // ~24 MB of records: more than the kernel's socket buffers plus ours.
  const std::vector<FlowRecord> records = manyRecords(300'000);
  const auto start = std::chrono::steady_clock::now();
  exportInBatches(*exporter, records, 4096);
  const auto held = std::chrono::steady_clock::now() - start;
  // A blocking exporter would wait for the collector forever; this one waits
  // for the stall to be declared (5 s) once. The bound is about hanging, not speed.
  EXPECT_LT(held, std::chrono::seconds(60));
  const uint64_t dropped = exporter->counters().dropped.load();
  EXPECT_GT(dropped, 0u);

  collector.release();
  exporter->flush(kNowMs);
  EXPECT_EQ(exporter->counters().dropped.load(), dropped);  // nothing more once it reads
  // A record is counted once: exported (records=) or lost (dropped=), not both.
  EXPECT_EQ(exporter->counters().records.load(), records.size() - dropped);
  exporter.reset();

  const std::vector<Message> messages = decodeStream(collector.streamAfterClose());
  ASSERT_FALSE(messages.empty());
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  // Every record arrives at most once, and each is one that was sent.
  std::set<uint64_t> seen;
  uint64_t received = 0;
  for (const Message& m : messages) {
    for (const DataRecord& d : m.records) {
      EXPECT_TRUE(seen.insert(d.number(1)).second) << "duplicate record";
      EXPECT_GE(d.number(1), 1'000'000u);
      EXPECT_LT(d.number(1), 1'000'000u + records.size());
      ++received;
    }
  }
  EXPECT_EQ(received + dropped, records.size());
  // The sequence numbers skip exactly the dropped records: the collector sees the gap.
  uint64_t gaps = 0;
  uint32_t expected = 0;
  for (const Message& m : messages) {
    gaps += m.sequence - expected;
    expected = m.sequence + static_cast<uint32_t>(m.records.size());
  }
  EXPECT_EQ(gaps, dropped);
}

TEST(IpfixExporter, EncodersWriteIdenticalBytes) {
  const std::string a = tempPath("libfixbuf.ipfix");
  const std::string b = tempPath("direct.ipfix");
  const std::vector<FlowRecord> records = manyRecords(5000);
  const std::pair<std::string, Encoder> runs[] = {{a, Encoder::kLibfixbuf}, {b, Encoder::kDirect}};
  for (const auto& [path, encoder] : runs) {
    auto exporter = makeIpfixExporter(fileOptions(path, encoder));
    exportInBatches(*exporter, records, 1700);
    exporter->flush(kNowMs + 1000);
  }
  const Bytes fixbuf = readFile(a);
  EXPECT_GT(fixbuf.size(), 5000u * 77);
  EXPECT_TRUE(fixbuf == readFile(b));
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST(IpfixExporter, EncodersSendIdenticalUdpMessages) {
  std::vector<std::vector<Bytes>> received;
  const std::vector<FlowRecord> records = manyRecords(700);
  for (const Encoder encoder : {Encoder::kLibfixbuf, Encoder::kDirect}) {
    UdpCollector collector;
    IpfixOptions options = udpOptions(collector.port(), encoder);
    options.mtu = 300;
    options.template_refresh_packets = 7;
    auto exporter = makeIpfixExporter(options);
    exportInBatches(*exporter, records, 64, &collector);
    received.push_back(collector.waitFor(exporter->counters().messages.load()));
  }
  EXPECT_GT(received[0].size(), 200u);
  EXPECT_TRUE(received[0] == received[1]);
}

TEST(IpfixExporter, IpfixDumpReadsTheExportedFile) {
  if (!haveProgram("ipfixDump")) GTEST_SKIP() << "ipfixDump (libfixbuf-tools) not installed";
  const std::string path = tempPath("dump.ipfix");
  {
    auto exporter = makeIpfixExporter(fileOptions(path, Encoder::kLibfixbuf));
    exporter->exportBatch(std::vector<FlowRecord>{tcp4(), udp6(), icmp4(), icmp6()}, kNowMs);
  }
  const CommandResult dump = run("TZ=UTC ipfixDump --in " + path);
  ASSERT_EQ(dump.status, 0) << dump.output;
  EXPECT_NE(dump.output.find("2 Messages, 4 Data Records, 4 Template Records"), std::string::npos)
      << dump.output;
  for (const char* expected :
       {"sourceIPv4Address : 10.1.2.3", "destinationIPv4Address : 192.0.2.9",
        "sourceIPv6Address : 2001:0db8::0001", "icmpTypeCodeIPv4 : 2048",
        "icmpTypeCodeIPv6 : 260", "octetDeltaCount : 4294967297",
        "flowStartMilliseconds : 2023-11-14 22:13:20.123", "vlanId : 4094",
        "dot1qCustomerVlanId : 200", "postVlanId : 200", "sourceMacAddress : 02:11:22:33:44:55",
        "flowEndReason : 3",
        // ipfixDump 2.4 prints a 3-octet section as a little-endian number
        // (seen: octets 00 01 0a as 655616): ab cd ea, 00 06 40, 00 00 0f.
        "mplsTopLabelStackSection : 15388075", "mplsLabelStackSection2 : 4195840",
        "mplsLabelStackSection3 : 983040"}) {
    EXPECT_NE(dump.output.find(expected), std::string::npos) << expected;
  }
  EXPECT_EQ(dump.output.find("arning"), std::string::npos) << dump.output;
  std::filesystem::remove(path);
}

// Writes datagrams as Ethernet/IPv4/UDP frames to the IPFIX port in a pcap.
void writePcap(const std::string& path, const std::vector<Bytes>& datagrams) {
  Bytes out = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
               0xff, 0xff, 0, 0, 1, 0, 0, 0};  // magic, v2.4, snaplen 65535, Ethernet
  auto le32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  uint32_t t = 1'700'000'005;
  for (const Bytes& d : datagrams) {
    Bytes f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};  // Ethernet
    const size_t ip_len = 20 + 8 + d.size();
    Bytes ip = {0x45, 0, static_cast<uint8_t>(ip_len >> 8), static_cast<uint8_t>(ip_len),
                0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2};
    uint32_t sum = 0;
    for (size_t i = 0; i < ip.size(); i += 2) sum += (ip[i] << 8) | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = static_cast<uint8_t>(~sum >> 8);
    ip[11] = static_cast<uint8_t>(~sum);
    const size_t udp_len = 8 + d.size();
    Bytes udp = {0xc3, 0x50, 0x12, 0x83,  // 50000 -> 4739
                 static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len), 0, 0};
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), udp.begin(), udp.end());
    f.insert(f.end(), d.begin(), d.end());
    le32(t++);
    le32(0);
    le32(static_cast<uint32_t>(f.size()));
    le32(static_cast<uint32_t>(f.size()));
    out.insert(out.end(), f.begin(), f.end());
  }
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                              static_cast<std::streamsize>(out.size()));
}

TEST(IpfixExporter, TsharkDissectsUdpMessagesWithoutErrors) {
  if (!haveProgram("tshark")) GTEST_SKIP() << "tshark not installed";
  UdpCollector collector;
  IpfixOptions options = udpOptions(collector.port(), Encoder::kLibfixbuf);
  options.template_refresh_packets = 3;
  auto exporter = makeIpfixExporter(options);
  exportInBatches(*exporter, manyRecords(200), 50, &collector);
  const std::vector<Bytes> datagrams = collector.waitFor(exporter->counters().messages.load());
  ASSERT_EQ(datagrams.size(), exporter->counters().messages.load());

  const std::string pcap = tempPath("udp.pcap");
  writePcap(pcap, datagrams);
  const CommandResult verbose = run("tshark -n -r " + pcap + " -V");
  ASSERT_EQ(verbose.status, 0) << verbose.output;
  EXPECT_EQ(verbose.output.find("Malformed"), std::string::npos);
  EXPECT_NE(verbose.output.find("Version: 10"), std::string::npos) << "not dissected as IPFIX";
  EXPECT_NE(verbose.output.find("SrcAddr: 10.1.2.3"), std::string::npos);
  EXPECT_NE(verbose.output.find("SrcAddr: 2001:db8::1"), std::string::npos);
  const CommandResult expert = run("tshark -n -r " + pcap + " -q -z expert");
  ASSERT_EQ(expert.status, 0) << expert.output;
  EXPECT_EQ(expert.output.find("Errors ("), std::string::npos) << expert.output;
  EXPECT_EQ(expert.output.find("Warnings ("), std::string::npos) << expert.output;
  std::filesystem::remove(pcap);
}

TEST(IpfixExporter, PacedUdpExportStillDeliversEveryMessage) {
  UdpCollector collector;
  IpfixOptions options = udpOptions(collector.port(), Encoder::kDirect);
  options.mtu = 300;                      // 3 IPv4 records per message (20 + 3 x 93 bytes)
  options.max_messages_per_second = 2000;  // 100 messages, burst 64: some 20 ms
  options.template_refresh_packets = 0;
  auto exporter = makeIpfixExporter(options);
  std::vector<FlowRecord> records = manyRecords(300);
  for (FlowRecord& r : records) r.key.ip_version = 4;
  exportInBatches(*exporter, records, 60, &collector);
  const std::vector<Bytes> datagrams = collector.waitFor(exporter->counters().messages.load());
  EXPECT_EQ(datagrams.size(), 101u);  // templates + 100 data messages
  expectRecordsMatch(records, decodeDatagrams(datagrams));
}

TEST(IpfixExporter, FlushWithoutFlowsStillWritesAReadableFile) {
  const std::string path = tempPath("empty.ipfix");
  {
    auto exporter = makeIpfixExporter(fileOptions(path, Encoder::kLibfixbuf));
    exporter->flush(kNowMs);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  EXPECT_EQ(messages[0].export_time, kNowMs / 1000);
  std::filesystem::remove(path);
}

TEST(IpfixExporter, TcpCollectorNameThatDoesNotResolveIsNamedAtStartup) {
  IpfixOptions options = tcpOptions("4739");
  options.host = "collector.invalid";  // RFC 2606: never resolves
  try {
    makeIpfixExporter(options);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("collector.invalid:4739"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot resolve"), std::string::npos) << what;
  }
}

TEST(IpfixExporter, UnwritableFileIsReportedWithItsPath) {
  const std::string path = "/nonexistent-dir/flows.ipfix";
  try {
    makeIpfixExporter(fileOptions(path, Encoder::kLibfixbuf));
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(IpfixExporter, RejectsAnMtuTooSmallForTheTemplates) {
  IpfixOptions options = udpOptions("4739", Encoder::kLibfixbuf);
  options.mtu = 200;
  EXPECT_THROW(makeIpfixExporter(options), std::invalid_argument);
}

TEST(IpfixExporter, CountsRecordsOfAnUnknownIpVersionAsDropped) {
  const std::string path = tempPath("bad.ipfix");
  auto exporter = makeIpfixExporter(fileOptions(path, Encoder::kDirect));
  FlowRecord bad = tcp4();
  bad.key.ip_version = 5;
  exporter->exportBatch(std::vector<FlowRecord>{tcp4(), bad}, kNowMs);
  EXPECT_EQ(exporter->counters().records.load(), 1u);
  EXPECT_EQ(exporter->counters().dropped.load(), 1u);
  exporter.reset();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace flowfold

namespace flowfold {
namespace {

TEST(IpfixExporter, UdpCollectorDownLosesCountedRecordsAndTheReturnStartsWithTemplates) {
  uint16_t port;
  {
    const int fd = bindLoopback(SOCK_DGRAM);
    port = boundPort(fd);
    ::close(fd);
  }  // closed: the port now answers with ICMP port unreachable
  IpfixOptions options = udpOptions(std::to_string(port), Encoder::kDirect);
  options.template_refresh_packets = 0;
  options.template_refresh_ms = 0;
  auto exporter = makeIpfixExporter(options);
  const ExporterCounters& c = exporter->counters();

  // Linux reports the ICMP error on the next send of the connected socket;
  // loopback answers at once (the bound only guards against a hung test).
  uint64_t batches = 0;
  while (c.errors.load() == 0 && batches < 100) {
    exporter->exportBatch(std::vector<FlowRecord>{tcp4()}, kNowMs);
    ++batches;
  }
  ASSERT_GE(c.errors.load(), 1u) << "no send error after " << batches << " batches";
  EXPECT_GE(c.dropped.load(), 1u);
  // Each record was either delivered to the socket or counted lost, never both.
  EXPECT_EQ(c.records.load() + c.dropped.load(), batches);

  // The collector comes back on the same port: its first datagram is the
  // templates again, then the record.
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << "port " << port << " was taken";
  const uint64_t errors_before = c.errors.load();
  exporter->exportBatch(std::vector<FlowRecord>{tcp4()}, kNowMs);
  EXPECT_EQ(c.errors.load(), errors_before);
  std::vector<Bytes> datagrams;
  Bytes buf(65536);
  for (int i = 0; i < 2; ++i) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1) << "datagram " << i << " never came";
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    ASSERT_GT(n, 0);
    datagrams.emplace_back(buf.begin(), buf.begin() + n);
  }
  ::close(fd);
  const std::vector<Message> messages = decodeDatagrams(datagrams);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_TRUE(isTemplateMessage(messages[0]));
  ASSERT_EQ(messages[1].records.size(), 1u);
  EXPECT_EQ(c.records.load() + c.dropped.load(), batches + 1);
}

// ------------------------------------------------ local_networks: flowDirection (61)

LocalNetworks testLocalNetworks() {
  LocalNetworks n;
  EXPECT_EQ(n.add("10.0.0.0/8"), "");
  EXPECT_EQ(n.add("2001:db8::/32"), "");
  return n;
}

// tcp4 (10.1.2.3 -> 192.0.2.9): egress; its reverse: ingress; udp6 (both
// in 2001:db8::/32): none; icmp4 and icmp6 (both remote): none; a v6 flow
// from 2a00::1 into 2001:db8::/32: ingress; its reverse: egress.
std::vector<FlowRecord> directionRecords() {
  FlowRecord in4 = tcp4();
  std::swap(in4.key.src_addr, in4.key.dst_addr);
  in4.octets += 1;
  FlowRecord in6 = udp6();
  in6.key.src_addr = {0x2a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  in6.octets += 1;
  FlowRecord out6 = in6;
  std::swap(out6.key.src_addr, out6.key.dst_addr);
  out6.octets += 1;
  return {tcp4(), udp6(), icmp4(), in4, icmp6(), in6, out6};
}

TEST_P(IpfixEncoderTest, LocalNetworksPutDirectedFlowsInTemplates258And259WithFlowDirection) {
  const std::string path = tempPath("direction.ipfix");
  const std::vector<FlowRecord> records = directionRecords();
  {
    IpfixOptions o = fileOptions(path, GetParam());
    o.local_networks = testLocalNetworks();
    auto exporter = makeIpfixExporter(o);
    exporter->exportBatch(records, kNowMs);
    exporter->flush(kNowMs);
    EXPECT_EQ(exporter->counters().records.load(), records.size());
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_EQ(messages.size(), 2u);
  ASSERT_EQ(messages[0].templates.size(), 4u);
  std::map<uint16_t, std::vector<std::pair<uint16_t, uint16_t>>> declared;
  for (const auto& t : messages[0].templates) declared[t.id] = t.fields;
  for (const auto& [plain, directed] : {std::pair{256, 258}, std::pair{257, 259}}) {
    auto expected = declared[static_cast<uint16_t>(plain)];
    expected.emplace_back(61, 1);  // flowDirection, last
    EXPECT_EQ(declared[static_cast<uint16_t>(directed)], expected);
  }
  EXPECT_EQ(messages[1].set_ids, (std::vector<uint16_t>{256, 258, 257, 259}));
  // (template, flowDirection) by octets; ~0 = no flowDirection in the record.
  std::map<uint64_t, std::pair<uint16_t, uint64_t>> got;
  for (const DataRecord& d : messages[1].records) got[d.number(1)] = {d.template_id, d.number(61)};
  const uint64_t none = ~uint64_t{0};
  EXPECT_EQ(got[records[0].octets], std::make_pair(uint16_t{258}, uint64_t{1}));  // egress
  EXPECT_EQ(got[records[1].octets], std::make_pair(uint16_t{257}, none));
  EXPECT_EQ(got[records[2].octets], std::make_pair(uint16_t{256}, none));
  EXPECT_EQ(got[records[3].octets], std::make_pair(uint16_t{258}, uint64_t{0}));  // ingress
  EXPECT_EQ(got[records[4].octets], std::make_pair(uint16_t{257}, none));
  EXPECT_EQ(got[records[5].octets], std::make_pair(uint16_t{259}, uint64_t{0}));
  EXPECT_EQ(got[records[6].octets], std::make_pair(uint16_t{259}, uint64_t{1}));
  // Every other element as without the option.
  for (const DataRecord& d : messages[1].records) {
    for (const FlowRecord& r : records) {
      if (r.octets != d.number(1)) continue;
      auto fields = d.fields;
      fields.erase(61);
      EXPECT_EQ(fields, expectedFields(r)) << "record with octets " << r.octets;
    }
  }
  std::filesystem::remove(path);
}

TEST(IpfixExporter, EncodersWriteIdenticalBytesWithLocalNetworks) {
  const std::string a = tempPath("libfixbuf-dir.ipfix");
  const std::string b = tempPath("direct-dir.ipfix");
  std::vector<FlowRecord> records;
  for (int i = 0; i < 700; ++i)
    for (FlowRecord r : directionRecords()) {
      r.octets = 1'000'000 + records.size();
      records.push_back(r);
    }
  for (const auto& [path, encoder] : {std::pair{a, Encoder::kLibfixbuf}, std::pair{b, Encoder::kDirect}}) {
    IpfixOptions o = fileOptions(path, encoder);
    o.local_networks = testLocalNetworks();
    auto exporter = makeIpfixExporter(o);
    exportInBatches(*exporter, records, 1700);
    exporter->flush(kNowMs + 1000);
  }
  const Bytes fixbuf = readFile(a);
  EXPECT_GT(fixbuf.size(), records.size() * 77);
  EXPECT_TRUE(fixbuf == readFile(b));
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST(IpfixExporter, EncodersSendIdenticalUdpMessagesWithLocalNetworks) {
  std::vector<std::vector<Bytes>> received;
  std::vector<FlowRecord> records;
  for (int i = 0; i < 100; ++i)
    for (FlowRecord r : directionRecords()) {
      r.octets = 1'000'000 + records.size();
      records.push_back(r);
    }
  for (const Encoder encoder : {Encoder::kLibfixbuf, Encoder::kDirect}) {
    UdpCollector collector;
    IpfixOptions options = udpOptions(collector.port(), encoder);
    options.mtu = 600;
    options.template_refresh_packets = 7;
    options.local_networks = testLocalNetworks();
    auto exporter = makeIpfixExporter(options);
    exportInBatches(*exporter, records, 64, &collector);
    received.push_back(collector.waitFor(exporter->counters().messages.load()));
  }
  EXPECT_GT(received[0].size(), 100u);
  EXPECT_TRUE(received[0] == received[1]);
  // A message too small for the four templates is refused at start.
  IpfixOptions small = udpOptions("9", Encoder::kDirect);
  small.mtu = 400;
  small.local_networks = testLocalNetworks();
  EXPECT_THROW(makeIpfixExporter(small), std::invalid_argument);
}

TEST(IpfixExporter, IpfixDumpAndTsharkReadFlowDirection) {
  const std::vector<FlowRecord> records = directionRecords();
  if (haveProgram("ipfixDump")) {
    const std::string path = tempPath("dump-dir.ipfix");
    {
      IpfixOptions o = fileOptions(path, Encoder::kLibfixbuf);
      o.local_networks = testLocalNetworks();
      makeIpfixExporter(o)->exportBatch(records, kNowMs);
    }
    const CommandResult dump = run("TZ=UTC ipfixDump --in " + path);
    ASSERT_EQ(dump.status, 0) << dump.output;
    EXPECT_NE(dump.output.find("7 Data Records, 6 Template Records"), std::string::npos) << dump.output;
    EXPECT_NE(dump.output.find("flowDirection : 1"), std::string::npos) << dump.output;
    EXPECT_NE(dump.output.find("flowDirection : 0"), std::string::npos) << dump.output;
    EXPECT_EQ(dump.output.find("arning"), std::string::npos) << dump.output;
    std::filesystem::remove(path);
  }
  if (haveProgram("tshark")) {
    UdpCollector collector;
    IpfixOptions options = udpOptions(collector.port(), Encoder::kDirect);
    options.local_networks = testLocalNetworks();
    auto exporter = makeIpfixExporter(options);
    exportInBatches(*exporter, records, 50, &collector);
    const std::vector<Bytes> datagrams = collector.waitFor(exporter->counters().messages.load());
    const std::string pcap = tempPath("udp-dir.pcap");
    writePcap(pcap, datagrams);
    const CommandResult fields = run("tshark -n -r " + pcap + " -T fields -e cflow.direction");
    ASSERT_EQ(fields.status, 0) << fields.output;
    EXPECT_NE(fields.output.find("1,0,0,1"), std::string::npos) << fields.output;  // 258: egress, ingress; 259: ingress, egress
    const CommandResult expert = run("tshark -n -r " + pcap + " -q -z expert");
    EXPECT_EQ(expert.output.find("Errors ("), std::string::npos) << expert.output;
    EXPECT_EQ(expert.output.find("Warnings ("), std::string::npos) << expert.output;
    std::filesystem::remove(pcap);
  }
}

// ---------------------------------------------------------------- biflows

// The reverse direction of `r`, with counters of its own: addresses and
// ports swapped (an ICMP echo request's reply: type 0), written out here.
FlowRecord replyTo(const FlowRecord& r, uint64_t octets, uint64_t first_ms, uint8_t tcp_flags) {
  FlowRecord b = r;
  std::swap(b.key.src_addr, b.key.dst_addr);
  if (r.key.protocol == 1) {
    b.key.dst_port = 0 * 256 + 0;  // echo reply
  } else {
    std::swap(b.key.src_port, b.key.dst_port);
  }
  b.octets = octets;
  b.packets = octets / 100;
  b.first_ms = first_ms;
  b.last_ms = first_ms + 1000;
  b.tcp_flags = tcp_flags;
  b.src_mac = r.dst_mac;
  b.dst_mac = r.src_mac;
  b.mpls_stack = {0x1123452, 0x1000031, 0};  // label 0x12345 TC 1 S 0, then label 3 TC 0 S 1
  b.tos = 0x20;
  b.min_ttl = 50;
  b.max_ttl = 51;
  return b;
}

// The reverse elements (PEN 29305, kept as id | 0x8000) of a responder's
// record, computed here; all 0 for none.
std::map<uint16_t, Bytes> expectedReverseFields(const FlowRecord* r) {
  const FlowRecord zero{};
  std::map<uint16_t, Bytes> f;
  f[0x8000 | 1] = big(r ? r->octets : 0, 8);
  f[0x8000 | 2] = big(r ? r->packets : 0, 8);
  f[0x8000 | 152] = big(r ? r->first_ms : 0, 8);
  f[0x8000 | 153] = big(r ? r->last_ms : 0, 8);
  f[0x8000 | 148] = big(r ? r->flow_id : 0, 8);  // reverseFlowId: the responder's flow
  f[0x8000 | 6] = big(r ? r->tcp_flags : 0, 2);
  f[0x8000 | 56] = r ? Bytes(r->src_mac.begin(), r->src_mac.end()) : Bytes(6, 0);
  f[0x8000 | 80] = r ? Bytes(r->dst_mac.begin(), r->dst_mac.end()) : Bytes(6, 0);
  for (uint16_t i = 0; i < 3; ++i)  // the entries' 3 octets, written out: label, TC, S
    f[0x8000 | (70 + i)] = big(r ? r->mpls_stack[i] & 0xFFFFFF : 0, 3);
  f[0x8000 | 5] = {r ? r->tos : zero.tos};
  f[0x8000 | 52] = {r ? r->min_ttl : uint8_t{0}};
  f[0x8000 | 53] = {r ? r->max_ttl : uint8_t{0}};
  f[0x8000 | 136] = {r ? static_cast<uint8_t>(r->end_reason) : uint8_t{0}};  // reverseFlowEndReason
  return f;
}

TEST_P(IpfixEncoderTest, BiflowSendsEachConversationAsOneRecordWithReverseElements) {
  const std::string path = tempPath("biflow.ipfix");
  // The client's SYN flow, the server's reply (it starts later), a ping and
  // its reply, and a DNS query heard one way only.
  FlowRecord client = tcp4();
  client.tcp_flags = 0x02 | 0x10 | 0x01;  // SYN, ACK, FIN
  client.end_reason = FlowEndReason::kIdleTimeout;
  FlowRecord server = replyTo(client, 90'000, client.first_ms + 3, 0x12 | 0x01);
  server.end_reason = FlowEndReason::kEndOfFlow;
  server.flow_id = 0xFEDCBA9876543210;  // a flow of its own: reverseFlowId carries it
  const FlowRecord ping = icmp4();
  FlowRecord pong = replyTo(ping, 336, ping.first_ms + 20, 0);
  pong.end_reason = FlowEndReason::kIdleTimeout;
  pong.flow_id = 77;
  const FlowRecord query = udp6();
  {
    IpfixOptions o = fileOptions(path, GetParam());
    o.biflow = true;
    auto exporter = makeIpfixExporter(o);
    // The server's record first: the initiator is chosen by the records, not their order.
    exporter->exportBatch(std::vector<FlowRecord>{server, ping, query}, kNowMs);
    exporter->exportBatch(std::vector<FlowRecord>{pong, client}, kNowMs + 100);
    exporter->flush(kNowMs + 200);
    EXPECT_EQ(exporter->counters().records.load(), 3u);
    EXPECT_EQ(exporter->counters().biflows_paired.load(), 2u);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_GE(messages.size(), 2u);
  ASSERT_EQ(messages[0].templates.size(), 2u);
  EXPECT_EQ(messages[0].templates[0].id, 260);
  EXPECT_EQ(messages[0].templates[1].id, 261);
  // Each is the uniflow template (read from a uniflow file) with the reverse
  // elements and biflowDirection appended, written out here.
  {
    const std::string uni = tempPath("uniflow-templates.ipfix");
    {
      auto exporter = makeIpfixExporter(fileOptions(uni, GetParam()));
      exporter->flush(kNowMs);
    }
    const std::vector<Message> plain = decodeStream(readFile(uni));
    std::filesystem::remove(uni);
    ASSERT_EQ(plain.at(0).templates.size(), 2u);
    const std::vector<std::pair<uint16_t, uint16_t>> tail = {
        {0x8000 | 1, 8}, {0x8000 | 2, 8}, {0x8000 | 152, 8}, {0x8000 | 153, 8}, {0x8000 | 148, 8}, {0x8000 | 6, 2},
        {0x8000 | 56, 6}, {0x8000 | 80, 6}, {0x8000 | 70, 3}, {0x8000 | 71, 3}, {0x8000 | 72, 3},
        {0x8000 | 5, 1}, {0x8000 | 52, 1}, {0x8000 | 53, 1}, {0x8000 | 136, 1}, {239, 1}};
    for (size_t i = 0; i < 2; ++i) {
      auto want = plain[0].templates[i].fields;
      want.insert(want.end(), tail.begin(), tail.end());
      EXPECT_EQ(messages[0].templates[i].fields, want) << "template " << messages[0].templates[i].id;
    }
  }
  std::vector<DataRecord> data;
  for (const Message& m : messages)
    for (const DataRecord& d : m.records) data.push_back(d);
  ASSERT_EQ(data.size(), 3u);
  std::map<uint64_t, const DataRecord*> by_octets;  // the initiator's octets
  for (const DataRecord& d : data) by_octets[d.number(1)] = &d;
  // Each side's own end reason: flowEndReason the initiator's (in
  // expectedFields), reverseFlowEndReason the responder's.
  const auto expect = [&](const FlowRecord& initiator, const FlowRecord* responder, uint16_t tid) {
    ASSERT_TRUE(by_octets.count(initiator.octets)) << initiator.octets;
    const DataRecord& d = *by_octets[initiator.octets];
    EXPECT_EQ(d.template_id, tid);
    std::map<uint16_t, Bytes> want = expectedFields(initiator);
    want.merge(expectedReverseFields(responder));
    want[239] = {1};  // biflowDirection: initiator
    EXPECT_EQ(d.fields, want) << "biflow of octets " << initiator.octets;
  };
  expect(client, &server, 260);
  expect(ping, &pong, 260);
  expect(query, nullptr, 261);
  std::filesystem::remove(path);
}

TEST(IpfixExporter, EncodersWriteIdenticalBiflowBytes) {
  std::vector<FlowRecord> records;
  for (int i = 0; i < 400; ++i) {
    for (FlowRecord r : {tcp4(), udp6(), icmp4(), icmp6()}) {
      r.key.src_port = static_cast<uint16_t>(1000 + i);
      r.octets = 1'000'000 + records.size();
      records.push_back(r);
      if (i % 3 != 0) records.push_back(replyTo(r, 2'000'000 + records.size(), r.first_ms + i, 0x12));
    }
  }
  std::vector<Bytes> files;
  for (const bool direction : {false, true}) {
    for (const Encoder encoder : {Encoder::kLibfixbuf, Encoder::kDirect}) {
      const std::string path = tempPath("biflow-equal.ipfix");
      {
        IpfixOptions o = fileOptions(path, encoder);
        o.biflow = true;
        if (direction) o.local_networks = testLocalNetworks();
        auto exporter = makeIpfixExporter(o);
        exportInBatches(*exporter, records, 700);
        exporter->flush(kNowMs + 1000);
      }
      files.push_back(readFile(path));
      std::filesystem::remove(path);
    }
  }
  EXPECT_GT(files[0].size(), records.size() * 60);
  EXPECT_TRUE(files[0] == files[1]);
  EXPECT_TRUE(files[2] == files[3]);
  // The reader takes them (templates 262/263 with flowDirection).
  EXPECT_FALSE(decodeStream(files[2]).empty());
}

TEST_P(IpfixEncoderTest, BiflowWithLocalNetworksAddsTheInitiatorsFlowDirectionIn262And263) {
  const std::string path = tempPath("biflow-direction.ipfix");
  FlowRecord client = tcp4();  // 10.1.2.3 -> 192.0.2.9: from the local 10/8 out, egress
  client.tcp_flags = 0x02 | 0x10;
  FlowRecord server = replyTo(client, 90'000, client.first_ms + 3, 0x12 | 0x10);
  FlowRecord out6 = udp6();  // 2001:db8::1 -> 2001:4860::8888: egress, heard one way only
  out6.key.dst_addr = {0x20, 0x01, 0x48, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88};
  const FlowRecord ping = icmp4();  // 172.16.0.1 -> 8.8.8.8: neither is local, no direction
  {
    IpfixOptions o = fileOptions(path, GetParam());
    o.biflow = true;
    o.local_networks = testLocalNetworks();
    auto exporter = makeIpfixExporter(o);
    exporter->exportBatch(std::vector<FlowRecord>{server, out6, ping, client}, kNowMs);
    exporter->flush(kNowMs + 100);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_GE(messages.size(), 2u);
  ASSERT_EQ(messages[0].templates.size(), 4u);
  std::map<uint16_t, std::vector<std::pair<uint16_t, uint16_t>>> templates;
  for (const auto& t : messages[0].templates) templates[t.id] = t.fields;
  ASSERT_EQ(templates.size(), 4u);
  for (const uint16_t id : {260, 261}) {  // 262/263: 260/261 with flowDirection 61 appended
    auto want = templates.at(id);
    want.push_back({61, 1});
    EXPECT_EQ(templates.at(id + 2), want) << "template " << id + 2;
  }
  std::map<uint64_t, const DataRecord*> by_octets;
  for (const Message& m : messages)
    for (const DataRecord& d : m.records) by_octets[d.number(1)] = &d;
  ASSERT_EQ(by_octets.size(), 3u);
  const auto expect = [&](const FlowRecord& initiator, const FlowRecord* responder, uint16_t tid,
                          std::optional<uint8_t> direction) {
    ASSERT_TRUE(by_octets.count(initiator.octets)) << initiator.octets;
    const DataRecord& d = *by_octets[initiator.octets];
    EXPECT_EQ(d.template_id, tid);
    std::map<uint16_t, Bytes> want = expectedFields(initiator);
    want.merge(expectedReverseFields(responder));
    want[239] = {1};
    if (direction) want[61] = {*direction};
    EXPECT_EQ(d.fields, want) << "biflow of octets " << initiator.octets;
  };
  expect(client, &server, 262, 1);  // egress (RFC 5102 flowDirection: 1)
  expect(out6, nullptr, 263, 1);
  expect(ping, nullptr, 260, std::nullopt);
  std::filesystem::remove(path);
}

TEST(IpfixExporter, BiflowHalfLeavesWhenItsWaitIsOverEvenWithoutMoreRecords) {
  const std::string path = tempPath("biflow-tick.ipfix");
  IpfixOptions o = fileOptions(path, Encoder::kDirect);
  o.biflow = true;
  o.biflow_wait_ms = 5'000;
  auto exporter = makeIpfixExporter(o);
  const auto records_in_file = [&] {
    size_t n = 0;
    for (const Message& m : decodeStream(readFile(path))) n += m.records.size();
    return n;
  };
  exporter->exportBatch(std::vector<FlowRecord>{udp6()}, kNowMs);
  exporter->exportBatch({}, kNowMs + 5'000);  // a tick: the wait is not over
  EXPECT_EQ(records_in_file(), 0u);
  exporter->exportBatch({}, kNowMs + 5'001);
  EXPECT_EQ(records_in_file(), 1u);
  EXPECT_EQ(exporter->counters().records.load(), 1u);
  exporter.reset();
  std::filesystem::remove(path);
}

TEST(IpfixExporter, BiflowNeedsAnMtuForItsTemplates) {
  IpfixOptions o = udpOptions("4739", Encoder::kDirect);
  o.biflow = true;
  // The template message: headers (16 + 4), then per template 4 + 4 per
  // element + 4 per reverse element's PEN: 42 elements, 15 of them reverse;
  // then the options templates 264 (7 elements) and 265 (3), each in a set
  // of its own: set header 4, template header 6, 4 per element (544 bytes,
  // as README.md says).
  const size_t templates = 16 + 4 + 2 * (4 + 4 * 42 + 4 * 15) + (4 + 6 + 4 * 7) + (4 + 6 + 4 * 3);
  static_assert(templates == 544);
  o.mtu = templates - 1;
  EXPECT_THROW(makeIpfixExporter(o), std::invalid_argument);
  o.mtu = templates;
  EXPECT_NO_THROW(makeIpfixExporter(o));
}

}  // namespace
}  // namespace flowfold

namespace flowfold {
namespace {

// Metering counters as a test sets them, and the sampling the exporter is
// given with them.
class FixedMetering final : public MeteringSource {
 public:
  MeteringStatistics values;
  SamplingOptions rate;
  MeteringStatistics statistics() const override { return values; }
};

FixedMetering sampledMetering() {
  FixedMetering m;
  m.values.packets_observed = 1000;
  m.values.packets_selected = 100;
  m.values.packets_ignored = 7;
  m.values.records_not_exported = 3;
  m.rate = {10, SamplingMode::kRandom};
  return m;
}

// The options records of a stream by template: each record's elements.
std::map<uint16_t, std::vector<ipfix_test::DataRecord>> optionsByTemplate(const std::vector<Message>& messages) {
  std::map<uint16_t, std::vector<ipfix_test::DataRecord>> out;
  for (const Message& m : messages)
    for (const auto& r : m.options) out[r.template_id].push_back(r);
  return out;
}

TEST_P(IpfixEncoderTest, OptionsFollowTheTemplatesAndCloseReportsTheFinalCounts) {
  const std::string path = tempPath("options.ipfix");
  const FixedMetering metering = sampledMetering();
  IpfixOptions options = fileOptions(path, GetParam());
  options.sampling = metering.rate;
  options.observation_domain = 9;
  const std::vector<FlowRecord> records = manyRecords(3000);
  uint64_t messages_before_close = 0, bytes_before_close = 0;
  {
    auto exporter = makeIpfixExporter(options);
    exporter->setMeteringSource(&metering);
    exportInBatches(*exporter, records, 1000);
    exporter->flush(kNowMs + 1000);
    messages_before_close = exporter->counters().messages.load();
    bytes_before_close = exporter->counters().bytes.load();
    exporter->close(kNowMs + 2000);
    EXPECT_EQ(exporter->counters().messages.load(), messages_before_close + 1);
  }
  const std::vector<Message> messages = decodeStream(readFile(path));
  ASSERT_GE(messages.size(), 4u);
  ASSERT_TRUE(isTemplateMessage(messages[0]));
  ASSERT_EQ(messages[0].options_templates.size(), 4u);  // 264, 265 and, with sampling, 266, 267
  for (const auto& t : messages[0].options_templates) EXPECT_EQ(t.scope, 1u) << t.id;
  // Right after the templates, before any flow record.
  EXPECT_TRUE(messages[1].records.empty());
  EXPECT_EQ(messages[1].options.size(), 4u);
  auto opts = optionsByTemplate(messages);
  ASSERT_EQ(opts[264].size(), 2u);
  const auto& final = opts[264].back();
  EXPECT_EQ(final.number(149), 9u);
  EXPECT_EQ(final.number(41), messages_before_close);
  EXPECT_EQ(final.number(40), bytes_before_close);
  EXPECT_EQ(final.number(42), records.size());
  EXPECT_EQ(final.number(164), 7u);
  EXPECT_EQ(final.number(160), kNowMs);  // the exporter's first call
  EXPECT_EQ(final.number(323), kNowMs + 2000);
  EXPECT_EQ(opts[265].back().number(166), 3u);  // the queue's losses, the exporter lost none
  const auto& selector = opts[266].back();
  EXPECT_EQ(selector.number(304), 4u);  // uniform probabilistic
  EXPECT_EQ(selector.number(305), 1u);
  EXPECT_EQ(selector.number(306), 9u);
  EXPECT_EQ(selector.number(34), 10u);
  EXPECT_EQ(selector.number(35), 2u);  // random
  EXPECT_EQ(selector.number(318), 1000u);
  EXPECT_EQ(selector.number(319), 100u);
  EXPECT_EQ(opts[267].back().number(306), 9u);
  // Options records are data records: they count in the sequence numbers.
  uint32_t before = 0;
  for (const Message& m : messages) {
    EXPECT_EQ(m.sequence, before);
    before += static_cast<uint32_t>(m.records.size() + m.options.size());
  }
  std::filesystem::remove(path);
}

TEST(IpfixExporter, EncodersWriteIdenticalOptionsAndWithdrawals) {
  const FixedMetering metering = sampledMetering();
  std::vector<Bytes> streams;
  for (const Encoder encoder : {Encoder::kLibfixbuf, Encoder::kDirect}) {
    TcpCollector collector;
    IpfixOptions options;
    options.transport = IpfixOptions::Transport::kTcp;
    options.host = "127.0.0.1";
    options.port = collector.port();
    options.encoder = encoder;
    options.sampling = metering.rate;
    options.options_interval_ms = 500;
    const std::vector<FlowRecord> records = manyRecords(900);
    {
      auto exporter = makeIpfixExporter(options);
      exporter->setMeteringSource(&metering);
      for (size_t i = 0; i < 3; ++i)  // a second apart: a periodic report after the second and third
        exporter->exportBatch(std::span<const FlowRecord>(records.data() + 300 * i, 300), kNowMs + 1000 * i);
      exporter->close(kNowMs + 5000);
    }
    streams.push_back(collector.streamAfterClose());
  }
  EXPECT_TRUE(streams[0] == streams[1]);
  const std::vector<Message> messages = decodeStream(streams[1]);
  ASSERT_FALSE(messages.empty());
  // A TCP session ends with every template withdrawn (RFC 7011 section 8.1).
  std::vector<uint16_t> withdrawn = messages.back().withdrawn;
  std::sort(withdrawn.begin(), withdrawn.end());
  EXPECT_EQ(withdrawn, (std::vector<uint16_t>{256, 257, 264, 265, 266, 267}));
  EXPECT_EQ(optionsByTemplate(messages)[264].size(), 4u);  // start, two periodic, end
}

TEST(IpfixExporter, WithoutAMeteringSourceNoOptionsRecordsGoOut) {
  const std::string path = tempPath("no-options.ipfix");
  {
    auto exporter = makeIpfixExporter(fileOptions(path, Encoder::kDirect));
    exportInBatches(*exporter, manyRecords(100), 100);
    exporter->close(kNowMs + 1000);
  }
  for (const Message& m : decodeStream(readFile(path))) EXPECT_TRUE(m.options.empty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace flowfold
