// IPFIX over TCP (RFC 7011 section 10.4) for a probe that must keep running
// whatever the collector does:
//
//  - Messages go into a bounded in-memory buffer (default 64 MiB) and leave
//    through a non-blocking socket. A collector that reads slowly gets back
//    pressure (send() waits for it while it makes progress, as a blocking
//    socket would, so a capture file is never thinned out); one that is down
//    or has stopped reading for kStallMs never holds the export thread
//    longer than that: the oldest buffered messages are dropped and counted.
//  - A connection refused, reset or closed is retried with backoff (1 s
//    doubling to 30 s); the buffer is kept meanwhile. A message cut by the
//    loss is sent again whole on the next connection.
//  - Connecting never waits: the connect is started and looked at again on
//    each later call, so a collector whose host drops the SYNs (a firewall,
//    a dead address) costs nothing until it times out (kConnectTimeout),
//    and other exporters on the export thread are not held up meanwhile.
//  - Every connection is a new transport session: it starts with the
//    templates (setSessionStart) and its own sequence numbers from 0, which
//    skip ahead over records dropped while it is up so the collector sees
//    the gap.
//
// What TCP cannot tell: messages the kernel had accepted when the peer
// vanished. They may be lost without a count (IPFIX has no acknowledgements).

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "flowfold/log.h"
#include "ipfix_transport.h"

namespace flowfold::ipfix {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kMinBackoff{1};
constexpr std::chrono::seconds kMaxBackoff{30};
constexpr std::chrono::seconds kConnectTimeout{5};
// A collector that accepts nothing for this long while the buffer is full is
// treated as stalled: new messages push the oldest out instead of waiting.
constexpr std::chrono::seconds kStallTime{5};
// At shutdown, how long to keep trying to hand the buffer over without progress.
constexpr std::chrono::seconds kDrainTime{10};
// The kernel aborts a connection whose data stays unacknowledged this long.
constexpr unsigned kUserTimeoutMs = 60000;

struct Message {
  std::vector<uint8_t> bytes;
  size_t records = 0;
  size_t offset = 0;  // bytes already written on the current connection
};

void putBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

class TcpTransport final : public MessageTransport {
 public:
  TcpTransport(const std::string& host, const std::string& port, size_t buffer_bytes)
      : host_(host), port_(port), name_(peerName("tcp", host, port)), capacity_(buffer_bytes) {
    resolve(name_, host_, port_, SOCK_STREAM);  // a name that does not resolve: fail at start-up
    advanceConnect();
  }
  ~TcpTransport() override {
    closeSocket();
    abandonConnect();
  }

  void send(const uint8_t* data, size_t size, size_t records) override {
    pump();
    makeRoomFor(size);
    if (queued_bytes_ + size > capacity_) {  // larger than the whole buffer
      drop(records);
    } else {
      queue_.push_back(Message{std::vector<uint8_t>(data, data + size), records, 0});
      queued_bytes_ += size;
    }
    pump();
  }

  void flush() override {
    auto last_progress = Clock::now();
    pump();
    while (!queue_.empty() || preamble_pending_) {
      const uint64_t before = bytes_written_;
      const int waiting_on = fd_ >= 0 ? fd_ : connecting_fd_;
      if (waiting_on >= 0) {
        pollfd p{waiting_on, POLLOUT, 0};
        ::poll(&p, 1, 100);
      } else {
        ::poll(nullptr, 0, 100);  // waiting for the next reconnect attempt
      }
      pump();
      if (bytes_written_ != before) last_progress = Clock::now();
      if (Clock::now() - last_progress >= kDrainTime) break;
    }
    if (queue_.empty()) return;
    size_t records = 0;
    for (const Message& m : queue_) records += m.records;
    logError("IPFIX collector %s: gave up on %zu buffered records after %lld s without progress "
             "(counted in records_dropped)",
             name_.c_str(), records,
             static_cast<long long>(kDrainTime.count()));
    records_dropped_ += records;
    queue_.clear();
    queued_bytes_ = 0;
  }

  bool sendsTemplatesPerSession() const override { return true; }
  void setSessionStart(const uint8_t* data, size_t size) override {
    preamble_.bytes.assign(data, data + size);
    preamble_.offset = 0;
    // Nothing has gone out on this connection before the templates.
    preamble_pending_ = fd_ >= 0;
    pump();
  }

  uint64_t recordsDropped() const override { return records_dropped_; }
  uint64_t errors() const override { return errors_; }
  const std::string& describe() const override { return name_; }

 private:
  // Writes as much of the preamble and the buffer as the socket takes now;
  // connects first when a retry is due.
  void pump() {
    if (fd_ < 0 && !advanceConnect()) return;
    while (fd_ >= 0) {
      Message* m = preamble_pending_ ? &preamble_ : (queue_.empty() ? nullptr : &queue_.front());
      if (m == nullptr) return;
      if (m->offset == 0 && m->bytes.size() >= 16) putBe32(m->bytes.data() + 8, stream_sequence_);
      const ssize_t n = ::send(fd_, m->bytes.data() + m->offset, m->bytes.size() - m->offset,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        m->offset += static_cast<size_t>(n);
        bytes_written_ += static_cast<uint64_t>(n);
        last_progress_ = Clock::now();
        stalled_ = false;
        if (m->offset < m->bytes.size()) continue;
        if (m == &preamble_) {
          preamble_pending_ = false;
        } else {
          stream_sequence_ += static_cast<uint32_t>(m->records);
          queued_bytes_ -= m->bytes.size();
          queue_.pop_front();
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      connectionLost(n < 0 ? std::strerror(errno) : "closed by the collector");
    }
  }

  // Frees space for `size` bytes: waits while the collector keeps reading,
  // drops the oldest waiting messages when it is down or stalled.
  void makeRoomFor(size_t size) {
    while (queued_bytes_ + size > capacity_ && !queue_.empty()) {
      if (fd_ >= 0 && !stalled_) {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 100);
        pump();
        if (fd_ >= 0 && Clock::now() - last_progress_ >= kStallTime) {
          stalled_ = true;
          logWarn("IPFIX collector %s: no data accepted for %lld s; dropping the oldest buffered "
                  "records while it stays stalled",
                  name_.c_str(),
                  static_cast<long long>(kStallTime.count()));
        }
        continue;
      }
      // Never the message being written: the stream would lose its framing.
      auto victim = queue_.begin();
      if (fd_ >= 0 && victim->offset > 0) ++victim;
      if (victim == queue_.end()) return;
      queued_bytes_ -= victim->bytes.size();
      drop(victim->records);
      queue_.erase(victim);
    }
  }

  void drop(size_t records) {
    records_dropped_ += records;
    // While connected, the sequence numbers skip the lost records: a gap the collector reports.
    if (fd_ >= 0) stream_sequence_ += static_cast<uint32_t>(records);
    unsigned long long suppressed = 0;
    if (drop_log_.allow(suppressed)) {
      logWarn("IPFIX collector %s: buffer full (%zu MiB), collector %s: dropped the oldest "
              "records, %llu so far (counted in records_dropped)%s",
              name_.c_str(), capacity_ >> 20, fd_ >= 0 ? "stalled" : "unreachable",
              static_cast<unsigned long long>(records_dropped_),
              suppressed ? (" [" + std::to_string(suppressed) + " similar suppressed]").c_str() : "");
    }
  }

  void connectionLost(const char* why) {
    closeSocket();
    ++errors_;
    logWarn("IPFIX collector %s: connection lost (%s); keeping %zu buffered messages and reconnecting",
            name_.c_str(), why, queue_.size());
    if (!queue_.empty()) queue_.front().offset = 0;  // resent whole on the next connection
    next_attempt_ = Clock::now();                      // first retry at once
    backoff_ = kMinBackoff;
  }

  // Moves the connection on without waiting: starts an attempt when one is
  // due, or looks at the one under way. True once connected.
  bool advanceConnect() {
    if (connecting_fd_ < 0) {
      if (Clock::now() < next_attempt_) return false;
      std::string why;
      if (!startAttempt(why)) return attemptFailed(why);
    }
    for (;;) {
      pollfd p{connecting_fd_, POLLOUT, 0};
      int rc;
      do {
        rc = ::poll(&p, 1, 0);
      } while (rc < 0 && errno == EINTR);
      std::string why;
      if (rc == 0) {
        if (Clock::now() < connect_deadline_) return false;  // still under way
        why = "timed out after " + std::to_string(kConnectTimeout.count()) + " s";
      } else {
        int so_error = 0;
        socklen_t len = sizeof so_error;
        ::getsockopt(connecting_fd_, SOL_SOCKET, SO_ERROR, &so_error, &len);
        if (so_error == 0) return connected();
        why = std::strerror(so_error);
      }
      // This address failed: the next one, or the attempt failed.
      abandonConnect();
      if (!tryNextAddress(why)) return attemptFailed(why);
    }
  }

  // Resolves the collector again (its address may have changed) and starts
  // connecting to the first address that takes a socket.
  bool startAttempt(std::string& why) {
    try {
      addresses_ = resolve(name_, host_, port_, SOCK_STREAM);
    } catch (const std::exception& e) {
      why = e.what();
      return false;
    }
    next_address_ = addresses_.get();
    why = "no address";
    return tryNextAddress(why);
  }

  bool tryNextAddress(std::string& why) {
    for (; next_address_ != nullptr; next_address_ = next_address_->ai_next) {
      const addrinfo* a = next_address_;
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) {
        why = std::strerror(errno);
        continue;
      }
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
        connecting_fd_ = fd;
        connect_deadline_ = Clock::now() + kConnectTimeout;
        next_address_ = next_address_->ai_next;
        return true;
      }
      why = std::strerror(errno);
      ::close(fd);
    }
    return false;
  }

  bool connected() {
    fd_ = connecting_fd_;
    connecting_fd_ = -1;
    addresses_.reset();
    ::setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &kUserTimeoutMs, sizeof kUserTimeoutMs);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    stream_sequence_ = 0;
    preamble_.offset = 0;
    preamble_pending_ = !preamble_.bytes.empty();
    last_progress_ = Clock::now();
    stalled_ = false;
    backoff_ = kMinBackoff;
    first_attempt_ = false;
    logInfo("IPFIX collector %s: connected; sending the templates and %zu buffered messages",
            name_.c_str(), queue_.size());
    return true;
  }

  bool attemptFailed(const std::string& why) {
    addresses_.reset();
    ++errors_;
    if (first_attempt_) {
      logWarn("IPFIX collector %s: cannot connect (%s); buffering up to %zu MiB and retrying — "
              "is the collector running and listening on TCP?",
              name_.c_str(), why.c_str(), capacity_ >> 20);
    } else {
      unsigned long long suppressed = 0;
      if (retry_log_.allow(suppressed)) {
        logWarn("IPFIX collector %s: cannot connect (%s); retrying in %lld s, %zu messages buffered",
                name_.c_str(), why.c_str(), static_cast<long long>(backoff_.count()), queue_.size());
      }
    }
    first_attempt_ = false;
    scheduleRetry();
    return false;
  }

  void abandonConnect() {
    if (connecting_fd_ >= 0) ::close(connecting_fd_);
    connecting_fd_ = -1;
  }

  void scheduleRetry() {
    next_attempt_ = Clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  }

  void closeSocket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    preamble_pending_ = false;  // due again on the next connection
  }

  const std::string host_, port_, name_;
  const size_t capacity_;
  int fd_ = -1;             // connected
  int connecting_fd_ = -1;  // a connect under way
  Clock::time_point connect_deadline_{};
  AddrInfoPtr addresses_;   // of the attempt under way
  const addrinfo* next_address_ = nullptr;
  bool first_attempt_ = true;  // its failure gets the start-up wording

  std::deque<Message> queue_;
  size_t queued_bytes_ = 0;
  Message preamble_;  // the templates, first on every connection
  bool preamble_pending_ = false;
  uint32_t stream_sequence_ = 0;

  Clock::time_point last_progress_{};
  bool stalled_ = false;
  Clock::time_point next_attempt_{};
  std::chrono::seconds backoff_ = kMinBackoff;

  uint64_t bytes_written_ = 0;
  uint64_t records_dropped_ = 0;
  uint64_t errors_ = 0;
  LogRateLimiter drop_log_, retry_log_;
};

}  // namespace

std::unique_ptr<MessageTransport> makeTcpTransport(const std::string& host, const std::string& port,
                                                   size_t buffer_bytes) {
  return std::make_unique<TcpTransport>(host, port, buffer_bytes);
}

}  // namespace flowfold::ipfix
