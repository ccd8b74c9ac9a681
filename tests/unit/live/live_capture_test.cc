#include "flowfold/probe/live_capture.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "child_process.h"
#include "flowfold/probe/privileges.h"

namespace flowfold {
namespace {

using test_support::kChildSkip;
using test_support::runInChild;
using Result = PcapLiveSource::Result;

constexpr int kDltEn10mb = 1;

#define SKIP_UNLESS_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root (opening a capture)"

// A UDP socket bound to 127.0.0.1 on a free port: the capture's target, and
// it keeps the kernel from answering with ICMP port unreachable.
class UdpReceiver {
 public:
  UdpReceiver() : fd_(socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot bind a UDP socket on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
  }
  ~UdpReceiver() { close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
};

void sendDatagrams(uint16_t port, int count, size_t size) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  const std::vector<char> payload(size, 'x');
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(size));
  }
  close(fd);
}

struct Seen {
  uint32_t caplen;
  uint32_t wirelen;
  uint64_t ts_ms;
};

uint64_t nowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Dispatches until `want` packets arrived (or a generous limit passed, which
// only a broken capture reaches), then until the link is idle once, so a
// packet too many would be seen too.
std::vector<Seen> captureUntil(PcapLiveSource& src, size_t want) {
  std::vector<Seen> seen;
  const PcapLiveSource::PacketCallback cb = [&](const uint8_t*, uint32_t caplen, uint32_t wirelen, uint64_t ts) {
    seen.push_back({caplen, wirelen, ts});
  };
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (seen.size() < want && std::chrono::steady_clock::now() < limit) {
    const Result r = src.dispatch(cb, -1);
    if (r == Result::kInterfaceDown || r == Result::kStopped) break;
  }
  while (std::chrono::steady_clock::now() < limit && src.dispatch(cb, -1) == Result::kPackets) {
  }
  return seen;
}

TEST(LiveCaptureTest, RejectsOptionsThatCannotWork) {
  LiveCaptureOptions o;
  o.interface = "lo";
  o.timeout_ms = 0;
  EXPECT_THROW(PcapLiveSource{o}, InputError);
  o.timeout_ms = 100;
  o.snaplen = 0;
  EXPECT_THROW(PcapLiveSource{o}, InputError);
}

TEST(LiveCaptureTest, NonexistentInterfaceListsTheRealOnes) {
  SKIP_UNLESS_ROOT();
  LiveCaptureOptions o;
  o.interface = "nosuchif0";
  try {
    PcapLiveSource src(o);
    FAIL() << "opened a nonexistent interface";
  } catch (const NoSuchInterfaceError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no such interface 'nosuchif0'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lo"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(LiveCaptureTest, BadFilterEchoesLibpcapMessage) {
  SKIP_UNLESS_ROOT();
  LiveCaptureOptions o;
  o.interface = "lo";
  o.filter = "udp port";
  try {
    PcapLiveSource src(o);
    FAIL() << "a bad filter was accepted";
  } catch (const CaptureFilterError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad capture filter 'udp port': "), std::string::npos) << msg;
    EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;  // libpcap's words
  }
}

TEST(LiveCaptureTest, OpensLoopback) {
  SKIP_UNLESS_ROOT();
  LiveCaptureOptions o;
  o.interface = "lo";
  PcapLiveSource src(o);
  EXPECT_EQ(src.name(), "lo");
  EXPECT_EQ(src.datalink(), kDltEn10mb);
  EXPECT_EQ(src.datalinkName(), "EN10MB");
  EXPECT_EQ(src.ifindex(), if_nametoindex("lo"));
  EXPECT_NE(src.ifindex(), 0u);
  EXPECT_GE(src.selectableFd(), 0);
}

// The kernel's id of the fanout group a capture's socket is in (0: none).
int kernelFanoutId(const PcapLiveSource& source) {
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(source.selectableFd(), SOL_PACKET, PACKET_FANOUT, &v, &len) != 0) return -1;
  return v & 0xFFFF;
}

TEST(LiveCaptureTest, CapturesOfOneGroupShareAKernelIdThatNoOtherGroupHas) {
  SKIP_UNLESS_ROOT();
  LiveCaptureOptions a, b;
  a.interface = b.interface = "lo";
  a.buffer_size = b.buffer_size = 1 << 20;
  a.fanout = std::make_shared<FanoutGroup>();
  b.fanout = std::make_shared<FanoutGroup>();
  auto a1 = std::make_unique<PcapLiveSource>(a);
  auto a2 = std::make_unique<PcapLiveSource>(a);
  PcapLiveSource b1(b), b2(b);
  const int id_a = kernelFanoutId(*a1);
  ASSERT_GT(id_a, 0);
  EXPECT_EQ(kernelFanoutId(*a2), id_a);
  EXPECT_EQ(a.fanout->id(), id_a);
  ASSERT_GT(kernelFanoutId(b1), 0);
  EXPECT_EQ(kernelFanoutId(b2), kernelFanoutId(b1));
  EXPECT_NE(kernelFanoutId(b1), id_a);
  // Once its last member is gone, a group's id may be anybody's: the next
  // member asks the kernel for a fresh group instead of joining that id.
  a1.reset();
  EXPECT_EQ(a.fanout->id(), id_a);
  a2.reset();
  EXPECT_EQ(a.fanout->id(), 0);
  PcapLiveSource a3(a);
  EXPECT_GT(kernelFanoutId(a3), 0);
  EXPECT_EQ(a.fanout->id(), kernelFanoutId(a3));
  EXPECT_NE(kernelFanoutId(a3), kernelFanoutId(b1));
}

TEST(LiveCaptureTest, DefaultInterfaceIsUpRunningAndNotLoopback) {
  std::string name;
  try {
    name = PcapLiveSource::defaultInterface();
  } catch (const InputError& e) {
    GTEST_SKIP() << "no suitable interface on this machine: " << e.what();
  }
  EXPECT_NE(name, "lo");
  EXPECT_NE(name, "any");
  EXPECT_NE(if_nametoindex(name.c_str()), 0u) << name;
}

TEST(LiveCaptureTest, SeesExactlyTheDatagramsSentToAPort) {
  SKIP_UNLESS_ROOT();
  UdpReceiver receiver;
  LiveCaptureOptions o;
  o.interface = "lo";
  o.filter = "udp and dst port " + std::to_string(receiver.port());
  PcapLiveSource src(o);
  // The kernel counts what reached the socket before libpcap installed the
  // filter too, and other tests may be talking on loopback meanwhile: only
  // the increase from here on belongs to this test.
  const uint64_t received_at_start = src.stats().captured;

  constexpr int kCount = 25;
  constexpr size_t kPayload = 300;  // frame 342 bytes, more than the snap length
  const uint64_t before = nowMs();
  sendDatagrams(receiver.port(), kCount, kPayload);
  const std::vector<Seen> seen = captureUntil(src, kCount);
  const uint64_t after = nowMs();

  ASSERT_EQ(seen.size(), static_cast<size_t>(kCount));
  for (const Seen& s : seen) {
    EXPECT_EQ(s.wirelen, 14u + 20u + 8u + kPayload);
    EXPECT_EQ(s.caplen, 256u);  // default snap length
    EXPECT_GE(s.ts_ms + 1, before);
    EXPECT_LE(s.ts_ms, after + 1);
  }
  EXPECT_EQ(src.packetsRead(), static_cast<uint64_t>(kCount));
  const LiveCaptureStats st = src.stats();
  // On loopback the kernel hands the packet socket each packet twice (sent
  // and received); libpcap discards the sent copy, the kernel counts both.
  EXPECT_EQ(st.captured - received_at_start, 2u * kCount);
  EXPECT_EQ(st.capture_dropped, 0u);
  // Counters are cumulative: asking again changes nothing.
  EXPECT_EQ(src.stats().captured, st.captured);
}

TEST(LiveCaptureTest, BreakLoopStopsEveryLaterDispatch) {
  SKIP_UNLESS_ROOT();
  LiveCaptureOptions o;
  o.interface = "lo";
  o.filter = "udp and port 9";  // nothing
  PcapLiveSource src(o);
  src.breakLoop();
  const PcapLiveSource::PacketCallback ignore = [](const uint8_t*, uint32_t, uint32_t, uint64_t) {};
  EXPECT_EQ(src.dispatch(ignore, -1), Result::kStopped);
  EXPECT_EQ(src.dispatch(ignore, -1), Result::kStopped);
}

TEST(LiveCaptureTest, CallbackExceptionPropagatesOutOfDispatch) {
  SKIP_UNLESS_ROOT();
  UdpReceiver receiver;
  LiveCaptureOptions o;
  o.interface = "lo";
  o.filter = "udp and dst port " + std::to_string(receiver.port());
  PcapLiveSource src(o);
  sendDatagrams(receiver.port(), 3, 10);
  int calls = 0;
  const PcapLiveSource::PacketCallback thrower = [&](const uint8_t*, uint32_t, uint32_t, uint64_t) {
    ++calls;
    throw std::runtime_error("from the callback");
  };
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool thrown = false;
  while (!thrown && std::chrono::steady_clock::now() < limit) {
    try {
      src.dispatch(thrower, -1);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "from the callback");
      thrown = true;
    }
  }
  EXPECT_TRUE(thrown);
  EXPECT_EQ(calls, 1);  // the rest of the block was not delivered after the throw
}

// Sends UDP datagrams to addr:port (IPv4 dotted quad).
bool sendTo(const char* addr, uint16_t port, int count) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, addr, &to.sin_addr);
  bool ok = true;
  for (int i = 0; i < count && ok; ++i) {
    ok = sendto(fd, "flowfold", 8, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 8;
  }
  close(fd);
  return ok;
}

ino_t socketInode(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// A veth end with an address and a static neighbour, so datagrams to
// 10.201.0.2 leave through it at once (no ARP) and are captured outgoing.
// The peer has no address: nothing answers, nothing else is sent (IPv6 is
// off in the namespace, so no neighbour discovery or MLD either; the counts
// below include what arrives before libpcap installs its filter).
constexpr const char* kMakeVeth =
    "(sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 || true) && "
    "ip link add fflive0 type veth peer name fflive1 && ip addr add 10.201.0.1/30 dev fflive0";
constexpr const char* kVethUp =
    "ip link set fflive1 up && ip link set fflive0 up && "
    "ip neigh replace 10.201.0.2 lladdr 02:00:00:00:00:02 dev fflive0 nud permanent";

Result dispatchUntilNot(PcapLiveSource& src, Result r, int limit = 50) {
  const PcapLiveSource::PacketCallback ignore = [](const uint8_t*, uint32_t, uint32_t, uint64_t) {};
  Result got = r;
  for (int i = 0; i < limit && got == r; ++i) got = src.dispatch(ignore, -1);
  return got;
}

// In a child with its own network namespace (nothing touches the test's):
// a veth interface that goes down, comes back, disappears and is re-created.
TEST(LiveCaptureTest, InterfaceDownOrGoneIsAStatusAndReopenRecovers) {
  SKIP_UNLESS_ROOT();
  if (std::system("ip -V >/dev/null 2>&1") != 0) GTEST_SKIP() << "iproute2 (ip) is not installed";
  enum Step {
    kOk = 0, kOpenedWhileDown = 10, kDownMessage, kSetup, kNotSeen, kDispatchNotDown, kWentDownMessage,
    kReopenedWhileDown, kReopenDownMessage, kReopenFailed, kNewSocketForDown, kNotResumed, kNotGone, kGoneMessage,
    kReopenedWhileGone, kReopenGoneMessage, kReopenAfterRecreate, kSameSocket, kIfindex, kNotSeenAgain, kStats,
  };
  const int rc = runInChild([]() -> int {
    if (unshare(CLONE_NEWNET) != 0) return kChildSkip;
    if (std::system(kMakeVeth) != 0) return kChildSkip;
    LiveCaptureOptions o;
    o.interface = "fflive0";
    o.filter = "udp and dst port 9999";
    try {
      PcapLiveSource down(o);
      return kOpenedWhileDown;
    } catch (const InterfaceDownError& e) {
      if (std::string(e.what()) != "interface 'fflive0' is down (ip link set fflive0 up)") {
        std::fprintf(stderr, "%s\n", e.what());
        return kDownMessage;
      }
    }
    if (std::system(kVethUp) != 0) return kSetup;
    PcapLiveSource src(o);
    const ino_t first_socket = socketInode(src.selectableFd());
    if (!sendTo("10.201.0.2", 9999, 3) || captureUntil(src, 3).size() != 3) return kNotSeen;

    // Down: a status, and reopen() says so until the interface is up again.
    if (std::system("ip link set fflive0 down") != 0) return kSetup;
    if (dispatchUntilNot(src, Result::kIdle) != Result::kInterfaceDown) return kDispatchNotDown;
    if (src.error() != "interface 'fflive0' went down") {
      std::fprintf(stderr, "after down: %s\n", src.error().c_str());
      return kWentDownMessage;
    }
    if (src.reopen()) return kReopenedWhileDown;
    if (src.error() != "interface 'fflive0' is down (ip link set fflive0 up)") return kReopenDownMessage;
    if (std::system(kVethUp) != 0) return kSetup;
    if (!src.reopen()) {
      std::fprintf(stderr, "reopen: %s\n", src.error().c_str());
      return kReopenFailed;
    }
    if (socketInode(src.selectableFd()) != first_socket) return kNewSocketForDown;
    if (!sendTo("10.201.0.2", 9999, 4) || captureUntil(src, 4).size() != 4) return kNotResumed;

    // Gone: libpcap's message; reopen() fails until the name exists again.
    if (std::system("ip link del fflive0") != 0) return kSetup;
    if (dispatchUntilNot(src, Result::kIdle) != Result::kInterfaceDown) return kNotGone;
    if (src.error() != "capture on 'fflive0' failed: The interface disappeared") {
      std::fprintf(stderr, "after delete: %s\n", src.error().c_str());
      return kGoneMessage;
    }
    if (src.reopen()) return kReopenedWhileGone;
    if (src.error().rfind("no such interface 'fflive0' (interfaces: ", 0) != 0) {
      std::fprintf(stderr, "reopen after delete: %s\n", src.error().c_str());
      return kReopenGoneMessage;
    }
    if (std::system(kMakeVeth) != 0 || std::system(kVethUp) != 0) return kSetup;
    if (!src.reopen()) {
      std::fprintf(stderr, "reopen after re-create: %s\n", src.error().c_str());
      return kReopenAfterRecreate;
    }
    if (socketInode(src.selectableFd()) == first_socket) return kSameSocket;
    if (src.ifindex() != if_nametoindex("fflive0")) return kIfindex;
    if (!sendTo("10.201.0.2", 9999, 5) || captureUntil(src, 5).size() != 5) return kNotSeenAgain;
    // Outgoing packets are counted once (unlike loopback); the counters
    // carry over the reopen.
    if (src.stats().captured != 12 || src.packetsRead() != 12) {
      std::fprintf(stderr, "received %llu, read %llu\n", static_cast<unsigned long long>(src.stats().captured),
                   static_cast<unsigned long long>(src.packetsRead()));
      return kStats;
    }
    return kOk;
  });
  if (rc == kChildSkip) GTEST_SKIP() << "cannot create a network namespace with a veth pair here";
  EXPECT_EQ(rc, kOk);
}

// An open handle is a socket: it keeps capturing after root is dropped, but
// a new one cannot be opened without CAP_NET_RAW.
TEST(LiveCaptureTest, OpenHandleSurvivesDroppingRoot) {
  SKIP_UNLESS_ROOT();
  if (!userExists("nobody")) GTEST_SKIP() << "no user 'nobody'";
  enum Step { kOk = 0, kNotDropped = 10, kNotSeen, kOpenedWithoutCaps, kPermissionMessage };
  const int rc = runInChild([]() -> int {
    UdpReceiver receiver;
    LiveCaptureOptions o;
    o.interface = "lo";
    o.filter = "udp and dst port " + std::to_string(receiver.port());
    PcapLiveSource src(o);
    if (!dropPrivileges("nobody", "")) return kNotDropped;
    sendDatagrams(receiver.port(), 5, 20);
    if (captureUntil(src, 5).size() != 5) return kNotSeen;
    try {
      PcapLiveSource again(o);
      return kOpenedWithoutCaps;
    } catch (const CapturePermissionError& e) {
      const std::string msg = e.what();
      if (msg.find("permission denied; capturing needs CAP_NET_RAW and CAP_NET_ADMIN (or run as root)") ==
          std::string::npos) {
        std::fprintf(stderr, "as nobody: %s\n", e.what());
        return kPermissionMessage;
      }
    }
    return kOk;
  });
  EXPECT_EQ(rc, kOk);
}

// CAP_NET_RAW alone is enough to open a capture (what reopen() needs after
// an interface disappeared).
TEST(LiveCaptureTest, KeptNetRawIsEnoughToOpenACapture) {
  SKIP_UNLESS_ROOT();
  if (!userExists("nobody")) GTEST_SKIP() << "no user 'nobody'";
  enum Step { kOk = 0, kNotDropped = 10, kNotSeen };
  const int rc = runInChild([]() -> int {
    if (!dropPrivileges("nobody", "", /*keep_capture_capability=*/true)) return kNotDropped;
    UdpReceiver receiver;
    LiveCaptureOptions o;
    o.interface = "lo";
    o.filter = "udp and dst port " + std::to_string(receiver.port());
    PcapLiveSource src(o);
    sendDatagrams(receiver.port(), 4, 20);
    if (captureUntil(src, 4).size() != 4) return kNotSeen;
    return kOk;
  });
  EXPECT_EQ(rc, kOk);
}

}  // namespace
}  // namespace flowfold
