// UdpSender against real sockets on loopback: every datagram must reach the
// receiver whole, in order and at its own size, whether it went out in a
// segmented run, one by one after the kernel refused segmentation, or paced.
// Receives wait with a bounded poll(), never a sleep.

#include "flowfold/exporters/udp_sender.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

namespace flowfold {
namespace {

using Bytes = std::vector<uint8_t>;

sockaddr_in loopback(uint16_t port, uint32_t addr = INADDR_LOOPBACK) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(addr);
  return a;
}

// A private network namespace for the calling thread, for the life of the
// object (root only; active() says whether it was made): its loopback is up
// and holds 10.99.0.1, an address that is not a loopback one, so a collector
// there is a remote one to UdpSender, while the kernel still answers a
// datagram to a closed port there at once (ICMP port unreachable over lo).
class PrivateNetwork {
 public:
  static constexpr uint32_t kRemote = 0x0A630001;  // 10.99.0.1
  PrivateNetwork() {
    if (::geteuid() != 0) return;
    saved_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0 || ::unshare(CLONE_NEWNET) != 0) return;
    entered_ = true;
    active_ = std::system("ip link set lo up && ip addr add 10.99.0.1/32 dev lo") == 0;
  }
  ~PrivateNetwork() {
    if (entered_) ::setns(saved_, CLONE_NEWNET);
    if (saved_ >= 0) ::close(saved_);
  }
  bool active() const { return active_; }

 private:
  int saved_ = -1;
  bool entered_ = false, active_ = false;
};

// The collector's side: a UDP socket on 127.0.0.1 with room for every test's datagrams.
class Receiver {
 public:
  explicit Receiver(uint16_t port = 0, int rcvbuf = 8 << 20, uint32_t addr = INADDR_LOOPBACK)
      : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in a = loopback(port, addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot bind a loopback UDP socket");
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Receiver() { ::close(fd_); }
  uint16_t port() const { return port_; }
  /// Reads what is queued, without waiting for more.
  size_t drain() {
    size_t n = 0;
    while (receive(0)) ++n;
    return n;
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
  int fd_;
  uint16_t port_ = 0;
};

// The exporter's side: a UDP socket connected to the receiver's port.
class ConnectedSocket {
 public:
  explicit ConnectedSocket(uint16_t port, uint32_t addr = INADDR_LOOPBACK) : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in a = loopback(port, addr);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect a UDP socket");
    int sndbuf = 8 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  ~ConnectedSocket() { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Datagrams of the given sizes, each with its own content (its index and size
// woven into every byte), so a cut in the wrong place or a swap shows.
std::vector<Bytes> makeDatagrams(const std::vector<size_t>& sizes) {
  std::vector<Bytes> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Bytes b(sizes[i]);
    for (size_t j = 0; j < b.size(); ++j) b[j] = static_cast<uint8_t>(i * 31 + j * 7 + sizes[i]);
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<std::span<const uint8_t>> views(const std::vector<Bytes>& datagrams) {
  return {datagrams.begin(), datagrams.end()};
}

void expectReceivedInOrder(Receiver& rx, const std::vector<Bytes>& sent) {
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::optional<Bytes> got = rx.receive();
    ASSERT_TRUE(got.has_value()) << "datagram " << i << " of " << sent.size() << " never came";
    ASSERT_EQ(got->size(), sent[i].size()) << "datagram " << i;
    EXPECT_EQ(*got, sent[i]) << "datagram " << i;
  }
  EXPECT_FALSE(rx.receive(0).has_value()) << "more datagrams than were sent";
}

// Datagrams as the sender must cut them into runs (equal sizes, the last may
// be shorter, at most 64): full IPFIX messages of one template and a shorter
// last one; a template message ending a run; a datagram alone because the
// next is longer; and more equal datagrams than one run may hold.
const std::vector<size_t> kMixedSizes = [] {
  std::vector<size_t> s(10, 1400);
  s.push_back(700);              // run 1: 10 x 1400 + 700
  s.insert(s.end(), 3, 8192);
  s.push_back(204);              // run 2: 3 x 8192 + 204
  s.push_back(9000);             // run 3: alone, the next is longer
  s.push_back(9500);             // run 4: 9500 + 1000
  s.insert(s.end(), 100, 1000);  // run 5: 64 x 1000; run 6: 35 x 1000 + 1
  s.push_back(1);
  return s;
}();

// A socket connected to its own address and port (what connecting to a
// closed loopback port can draw) is told from one connected to a peer.
TEST(UdpSender, TellsASocketConnectedToItself) {
  const int self = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(self, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(self, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(self, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ASSERT_EQ(::connect(self, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_TRUE(connectedToItself(self));
  const int other = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_EQ(::connect(other, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);  // to self's port, from another
  EXPECT_FALSE(connectedToItself(other));
  const int unconnected = ::socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_FALSE(connectedToItself(unconnected));
  ::close(self);
  ::close(other);
  ::close(unconnected);
}

TEST(UdpSender, DeliversEveryDatagramWholeAndInOrder) {
  Receiver rx;
  ConnectedSocket tx(rx.port());
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> datagrams = makeDatagrams(kMixedSizes);
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  expectReceivedInOrder(rx, datagrams);
  if (!sender.segmentationOffload()) GTEST_SKIP() << "this kernel refuses UDP segmentation offload";
  // Every datagram but the lone 9000 went in a run of two or more.
  EXPECT_EQ(sender.datagramsSegmented(), datagrams.size() - 1);
  EXPECT_EQ(sender.trips(), 1u);  // one sendmmsg for all the runs
}

TEST(UdpSender, DeliversEveryDatagramOverIPv6) {
  const int rx = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  if (rx < 0 || ::bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (rx >= 0) ::close(rx);
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  int rcvbuf = 8 << 20;
  ::setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  socklen_t len = sizeof a;
  ::getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len);
  const int tx = ::socket(AF_INET6, SOCK_DGRAM, 0);
  ASSERT_EQ(::connect(tx, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  UdpSender sender(tx, "test", 0);
  const std::vector<Bytes> datagrams = makeDatagrams(kMixedSizes);
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  Bytes buf(70000);
  for (size_t i = 0; i < datagrams.size(); ++i) {
    pollfd p{rx, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1) << "datagram " << i << " never came";
    const ssize_t n = ::recv(rx, buf.data(), buf.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(datagrams[i].size())) << "datagram " << i;
    EXPECT_TRUE(std::equal(datagrams[i].begin(), datagrams[i].end(), buf.begin())) << "datagram " << i;
  }
  if (sender.segmentationOffload()) {
    EXPECT_EQ(sender.datagramsSegmented(), datagrams.size() - 1);
  }
  ::close(tx);
  ::close(rx);
}

TEST(UdpSender, SendsOneByOneWhenTheKernelRefusesSegmentation) {
  Receiver rx;
  ConnectedSocket tx(rx.port());
  // UDP checksums off: Linux refuses segmented sends on such a socket (EINVAL).
  const int on = 1;
  ASSERT_EQ(::setsockopt(tx.fd(), SOL_SOCKET, SO_NO_CHECK, &on, sizeof on), 0);
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> datagrams = makeDatagrams(kMixedSizes);
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  EXPECT_FALSE(sender.segmentationOffload());
  EXPECT_EQ(sender.datagramsSegmented(), 0u);
  expectReceivedInOrder(rx, datagrams);

  // And stays so: the next batch goes out whole as well.
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  expectReceivedInOrder(rx, datagrams);
}

TEST(UdpSender, DisabledSegmentationStillDeliversEverything) {
  Receiver rx;
  ConnectedSocket tx(rx.port());
  UdpSender sender(tx.fd(), "test", 0);
  sender.disableSegmentationOffload();
  const std::vector<Bytes> datagrams = makeDatagrams(kMixedSizes);
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  EXPECT_EQ(sender.datagramsSegmented(), 0u);
  expectReceivedInOrder(rx, datagrams);
}

TEST(UdpSender, RefusedConnectionLosesOnlyTheDatagramsOfThatTrip) {
  PrivateNetwork net;
  if (!net.active()) GTEST_SKIP() << "needs root (a private network namespace)";
  uint16_t port;
  {
    Receiver gone(0, 8 << 20, PrivateNetwork::kRemote);
    port = gone.port();
  }  // closed: the port now answers with ICMP port unreachable
  ConnectedSocket tx(port, PrivateNetwork::kRemote);
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> first = makeDatagrams({100});
  std::vector<int> errors(1, -1);
  sender.send(views(first), errors);
  EXPECT_EQ(errors[0], 0);  // it leaves; the port unreachable comes back
  pollfd p{tx.fd(), 0, 0};  // a pending socket error shows as POLLERR
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "no ICMP port unreachable came back";
  ASSERT_TRUE(p.revents & POLLERR);

  // The pending error fails the next trip: the run of two 500s. The 800 is a
  // trip of its own and goes out.
  const std::vector<Bytes> second = makeDatagrams({500, 500, 800});
  errors.assign(3, -1);
  sender.send(views(second), errors);
  if (!sender.segmentationOffload()) GTEST_SKIP() << "this kernel refuses UDP segmentation offload";
  EXPECT_EQ(errors, (std::vector<int>{ECONNREFUSED, ECONNREFUSED, 0}));
  EXPECT_EQ(sender.refusals(), 1u) << "the port unreachable for the first datagram";
}

TEST(UdpSender, CountsEveryRefusalARemoteCollectorsHostSendsBackEvenThoseSendmmsgSwallows) {
  PrivateNetwork net;
  if (!net.active()) GTEST_SKIP() << "needs root (a private network namespace)";
  uint16_t port;
  {
    Receiver gone(0, 8 << 20, PrivateNetwork::kRemote);
    port = gone.port();
  }
  ConnectedSocket tx(port, PrivateNetwork::kRemote);
  UdpSender sender(tx.fd(), "test", 0);
  // Ten datagrams, each longer than the one before: ten messages of one
  // sendmmsg. Each is refused before the next is sent (the ICMP comes back
  // over lo at once); the next one then fails and sendmmsg, which has sent
  // some, returns early and forgets why.
  const std::vector<Bytes> ten = makeDatagrams({100, 101, 102, 103, 104, 105, 106, 107, 108, 109});
  std::vector<int> errors(ten.size(), -1);
  sender.send(views(ten), errors);
  EXPECT_EQ(errors, std::vector<int>(ten.size(), 0)) << "each one left, in a call of its own";
  EXPECT_EQ(sender.refusals(), 9u);
  sender.checkPendingRefusal();  // the last one's refusal waits on the socket
  EXPECT_EQ(sender.refusals(), 10u);
  sender.checkPendingRefusal();  // nothing sent since: nothing more, and no wait
  EXPECT_EQ(sender.refusals(), 10u);
}

TEST(UdpSender, AnIpv4MappedLoopbackCollectorIsTheIpv4SocketItReaches) {
  // [::ffff:127.0.0.1]:port from an IPv6 socket reaches an IPv4 collector on
  // 127.0.0.1:port: it listens, so everything is sent and arrives.
  Receiver rx;
  const int tx = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(rx.port());
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:127.0.0.1", &a.sin6_addr), 1);
  if (tx < 0 || ::connect(tx, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (tx >= 0) ::close(tx);
    GTEST_SKIP() << "no IPv6 sockets here";
  }
  UdpSender sender(tx, "test", 0);
  const std::vector<Bytes> datagrams = makeDatagrams({200, 300, 400});
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  expectReceivedInOrder(rx, datagrams);
  ::close(tx);
}

TEST(UdpSender, SendsNothingToALocalCollectorNobodyListensOnAndCountsEveryDatagramLost) {
  uint16_t port;
  {
    Receiver gone;
    port = gone.port();
  }  // no socket on this host has the port now
  ConnectedSocket tx(port);
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> lost = makeDatagrams({300, 300, 400});
  std::vector<int> errors(lost.size(), -1);
  sender.send(views(lost), errors);
  EXPECT_EQ(errors, std::vector<int>(lost.size(), ECONNREFUSED));
  EXPECT_EQ(sender.trips(), 0u) << "nothing was sent";
  // A collector binds the port: the next send goes out, all of it.
  Receiver rx(port);
  const std::vector<Bytes> kept = makeDatagrams({500, 500, 200});
  errors.assign(kept.size(), -1);
  sender.send(views(kept), errors);
  EXPECT_EQ(errors, std::vector<int>(kept.size(), 0));
  expectReceivedInOrder(rx, kept);
}

TEST(UdpSender, PacedBatchesStillDeliverEverythingInOrder) {
  Receiver rx;
  ConnectedSocket tx(rx.port());
  // 2000 a second with a burst of 10: 60 datagrams wait for the pacer some
  // five times (about 25 ms in all), and what is ready goes out before each wait.
  UdpSender sender(tx.fd(), "test", 2000);
  const std::vector<Bytes> datagrams = makeDatagrams(std::vector<size_t>(60, 1200));
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));
  expectReceivedInOrder(rx, datagrams);
  EXPECT_GT(sender.trips(), 1u);  // the pacer split the batch
}

// A collector on this host whose socket buffer is full: the kernel drops what
// does not fit, every send succeeds, and the sender reads the socket's drop
// count. The truth is what the receiver gets: sent - received.
TEST(UdpSender, CountsTheDatagramsALocalCollectorDropped) {
  Receiver rx(0, 1);  // the kernel's smallest receive buffer: a few datagrams
  ConnectedSocket tx(rx.port());
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> datagrams = makeDatagrams(std::vector<size_t>(64, 1000));
  std::vector<int> errors(datagrams.size(), -1);
  sender.send(views(datagrams), errors);
  EXPECT_EQ(errors, std::vector<int>(datagrams.size(), 0));  // the sender cannot tell
  sender.checkCollector();
  const size_t received = rx.drain();
  ASSERT_LT(received, datagrams.size());
  EXPECT_EQ(sender.collectorDrops(), datagrams.size() - received);
}

TEST(UdpSender, DropsBeforeItsTimeAreNotItsToCount) {
  Receiver rx(0, 1);
  ConnectedSocket earlier_tx(rx.port());
  UdpSender earlier(earlier_tx.fd(), "earlier", 0);
  const std::vector<Bytes> flood = makeDatagrams(std::vector<size_t>(64, 1000));
  std::vector<int> errors(flood.size(), -1);
  earlier.send(views(flood), errors);
  earlier.checkCollector();
  ASSERT_GT(earlier.collectorDrops(), 0u);
  rx.drain();

  ConnectedSocket tx(rx.port());
  UdpSender sender(tx.fd(), "test", 0);
  const std::vector<Bytes> one = makeDatagrams({100});
  errors.assign(1, -1);
  sender.send(views(one), errors);
  sender.checkCollector();
  EXPECT_EQ(rx.drain(), 1u);
  EXPECT_EQ(sender.collectorDrops(), 0u);
}

TEST(UdpSender, WatchesOnlyACollectorOnThisHost) {
  const int unconnected = ::socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_EQ(LocalCollectorDrops::forConnectedSocket(unconnected), nullptr);
  ::close(unconnected);
  Receiver rx;
  ConnectedSocket tx(rx.port());
  const auto watch = LocalCollectorDrops::forConnectedSocket(tx.fd());
  ASSERT_NE(watch, nullptr);
  EXPECT_EQ(watch->port(), rx.port());
}

}  // namespace
}  // namespace flowfold
