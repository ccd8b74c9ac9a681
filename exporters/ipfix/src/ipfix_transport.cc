#include "ipfix_transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "flowfold/exporters/output_file.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/exporters/udp_sender.h"
#include "flowfold/log.h"

namespace flowfold::ipfix {

std::string peerName(const std::string& scheme, const std::string& host, const std::string& port) {
  const bool v6_literal = host.find(':') != std::string::npos;
  return scheme + "://" + (v6_literal ? "[" + host + "]" : host) + ":" + port;
}

AddrInfoPtr resolve(const std::string& name, const std::string& host, const std::string& port,
                    int socktype) {
  if (host.empty()) throw std::invalid_argument("IPFIX collector " + name + ": no host given");
  if (port.empty()) throw std::invalid_argument("IPFIX collector " + name + ": no port given");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    throw std::runtime_error("IPFIX collector " + name + ": cannot resolve: " + gai_strerror(rc));
  }
  return AddrInfoPtr(result);
}

namespace {

class UdpTransport final : public MessageTransport {
 public:
  UdpTransport(const std::string& host, const std::string& port, uint64_t max_datagrams_per_second)
      : name_(peerName("udp", host, port)) {
    AddrInfoPtr ai = resolve(name_, host, port, SOCK_DGRAM);
    int last_errno = 0;
    for (addrinfo* a = ai.get(); a; a = a->ai_next) {
      fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd_ < 0) {
        last_errno = errno;
        continue;
      }
      // Connected, so the kernel reports an ICMP port unreachable (the
      // collector is down) on a later send: counted, instead of invisible.
      int rc = ::connect(fd_, a->ai_addr, a->ai_addrlen);
      for (int retry = 0; rc == 0 && retry < 8 && connectedToItself(fd_); ++retry) {
        ::close(fd_);  // it drew the collector's own port: draw another
        fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        rc = fd_ < 0 ? -1 : ::connect(fd_, a->ai_addr, a->ai_addrlen);
      }
      if (rc != 0) {
        last_errno = errno;
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        continue;
      }
      break;
    }
    if (fd_ < 0) {
      throw std::runtime_error("IPFIX collector " + name_ + ": cannot open a UDP socket: " +
                               std::strerror(last_errno));
    }
    // A burst of messages must queue in the kernel rather than fail; the
    // kernel caps this at net.core.wmem_max, which is fine.
    int sndbuf = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    sender_.emplace(fd_, "IPFIX collector " + name_, max_datagrams_per_second);
  }
  ~UdpTransport() override {
    if (fd_ >= 0) ::close(fd_);
  }

  // Messages wait here until push(), which the exporter calls at the end of
  // every batch of records (so none waits longer than its batch), and then
  // leave together: see UdpSender.
  void send(const uint8_t* data, size_t size, size_t records) override {
    if (queue_.size() == kQueueMessages || queued_bytes_ + size > kQueueBytes) push();
    if (buffer_.size() < queued_bytes_ + size) buffer_.resize(std::max(kQueueBytes, queued_bytes_ + size));
    std::memcpy(buffer_.data() + queued_bytes_, data, size);
    queue_.push_back({queued_bytes_, size, records});
    queued_bytes_ += size;
  }

  // An ICMP port unreachable for an earlier datagram fails a later send
  // (ECONNREFUSED): the messages of that one trip are counted as lost, the
  // rest go out.
  void push() override {
    if (queue_.empty()) return;
    datagrams_.clear();
    for (const Queued& q : queue_) datagrams_.emplace_back(buffer_.data() + q.offset, q.size);
    errors_of_.assign(queue_.size(), 0);
    sender_->send(datagrams_, errors_of_);
    for (size_t i = 0; i < queue_.size(); ++i) {
      const Queued& q = queue_[i];
      if (errors_of_[i] == 0) {
        delivered_.messages += 1;
        delivered_.bytes += q.size;
        delivered_.records += q.records;
        continue;
      }
      ++errors_;
      dropped_ += q.records;
      unsigned long long suppressed = 0;
      if (failure_log_.allow(suppressed)) {
        logWarn("IPFIX send to %s failed: %s (%s%s); check that the collector is running and reachable",
                name_.c_str(), std::strerror(errors_of_[i]),
                q.records == 0 ? "a message of templates, sent again with the next batch"
                               : (std::to_string(q.records) + " records lost").c_str(),
                suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
      }
    }
    queue_.clear();
    queued_bytes_ = 0;
  }
  void flush() override {
    push();
    // The last datagrams were dropped (or not) while they were sent: a
    // loopback send runs the collector's receive path before it returns.
    sender_->checkCollector();
    sender_->checkPendingRefusal();
  }
  uint64_t collectorDrops() const override { return sender_->collectorDrops(); }
  uint64_t collectorRefusals() const override { return sender_->refusals(); }
  bool countsDelivery() const override { return true; }
  Delivered delivered() const override { return delivered_; }
  uint64_t recordsDropped() const override { return dropped_; }
  uint64_t errors() const override { return errors_; }
  const std::string& describe() const override { return name_; }

 private:
  // At most this much waits for push(): bounds the copy kept of messages.
  static constexpr size_t kQueueMessages = 256;
  static constexpr size_t kQueueBytes = 1 << 20;
  struct Queued {
    size_t offset, size, records;
  };

  std::string name_;
  int fd_ = -1;
  std::optional<UdpSender> sender_;
  std::vector<uint8_t> buffer_;  // the queued messages, back to back
  std::vector<Queued> queue_;
  size_t queued_bytes_ = 0;
  std::vector<std::span<const uint8_t>> datagrams_;  // reused by push()
  std::vector<int> errors_of_;
  Delivered delivered_;
  uint64_t dropped_ = 0, errors_ = 0;
  LogRateLimiter failure_log_;
};

class FileTransport final : public MessageTransport {
 public:
  // OutputFile appends ("-": standard output): a reload (SIGHUP) or a restart
  // adds a new message stream, templates first, after the messages already in
  // the file, which stays a valid IPFIX file. With rotation, each interval's
  // file is such a file, opened at the first message of its interval.
  FileTransport(const std::string& path, RotationOptions rotation)
      : out_(path, rotation), name_("file:" + path) {
    if (!out_.rotates()) prepareFile();
  }

  bool startsNewFile(uint64_t now_ms) override {
    if (!out_.rotates()) return false;
    want_ms_ = now_ms;
    try {
      if (!out_.advanceTo(now_ms)) return false;
      prepareFile();
    } catch (const std::exception&) {
      // No file now: send() tries again and counts what it loses.
    }
    return true;
  }

  // One write per message, no stdio buffer: a full disk is seen at the
  // message it hits. The partial message is cut off again, so the file stays
  // a sequence of whole messages that readers accept, and writing resumes by
  // itself once there is space. A write that put nothing out (/dev/full, a
  // closed pipe) leaves nothing to cut; a pipe or a device that took part of a
  // message cannot be cut, and its reader sees a torn message: that is said,
  // rate-limited, as every recurring failure is.
  void send(const uint8_t* data, size_t size, size_t /*records*/) override {
    OutputFile& file = currentFile();
    if (!tail_checked_) {
      tail_checked_ = true;
      cutTornTail(file);
    }
    size_t written = 0;
    const int err = file.writeAll(data, size, written);
    if (err == 0) return;
    if (!file.takeBack(written, 0)) {
      unsigned long long suppressed = 0;
      if (cut_failure_log_.allow(suppressed)) {
        logWarn("IPFIX %s: cannot cut off a partial message (%zu of %zu bytes written): %s%s", name_.c_str(),
                written, size, std::strerror(errno),
                suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
      }
    }
    throw std::runtime_error("IPFIX " + name_ + ": write failed to " + file.name() + ": " + std::strerror(err) +
                             (err == ENOSPC ? " (free some space: writing resumes by itself)" : ""));
  }
  const std::string& describe() const override { return name_; }

 private:
  // The file to write now; with rotation, one whose open failed earlier is
  // tried again (throws as OutputFile does when it still cannot be opened).
  OutputFile& currentFile() {
    if (out_.file() == nullptr) {
      out_.advanceTo(want_ms_);
      if (out_.file() == nullptr) throw std::runtime_error("IPFIX " + name_ + ": no file open");
      prepareFile();
    }
    return *out_.file();
  }

  // A file just opened: refused when it holds something else than IPFIX;
  // its tail is checked before the first message written to it.
  void prepareFile() {
    try {
      refuseWhatIsNotIpfix(*out_.file());
    } catch (...) {
      out_.close();
      throw;
    }
    tail_checked_ = false;
  }

  // Appending IPFIX messages to a file that holds something else (a wrong
  // path: a log, a capture) would spoil that file and give no IPFIX file
  // either. A non-empty file must start with an IPFIX message header.
  static void refuseWhatIsNotIpfix(const OutputFile& file) {
    uint8_t head[4];
    const size_t n = file.readAt(head, sizeof head, 0);
    if (n == 0) return;  // empty, or a pipe or a device
    const bool ipfix = n == sizeof head && head[0] == 0 && head[1] == 10 && ((head[2] << 8) | head[3]) >= 16;
    if (!ipfix) {
      throw std::runtime_error("IPFIX file " + file.name() +
                               " already exists and does not start with an IPFIX message: refusing to append "
                               "to it; give a new path, or move that file away");
    }
  }

  // A file that ends inside a message (what a crash or a power loss left of
  // a write: flowfold itself takes a failed write back) would make every
  // message appended after it unreadable. Before this stream's first message
  // the file is walked from header to header (it is read once) and such a
  // tail is cut off, said once. This runs in the export thread at the first
  // write, when a reload's old exporter has finished writing. Anything but a
  // torn last message (another program's bytes inside the file) is left as
  // it is: it is not flowfold's to destroy.
  void cutTornTail(OutputFile& file) {
    const uint64_t size = file.size();
    if (size == 0) return;
    const uint64_t torn_at = tornMessageStart(file, size);
    if (torn_at == size) return;
    if (file.cutTo(torn_at)) {
      logWarn("IPFIX %s: the file ended inside a message (%llu bytes from byte %llu on: a write cut by a crash or "
              "a power loss); cut it off, so that the messages appended after it can be read",
              file.name().c_str(), static_cast<unsigned long long>(size - torn_at),
              static_cast<unsigned long long>(torn_at));
    } else {
      logWarn("IPFIX %s: the file ends inside a message at byte %llu, and cutting it off failed (%s): readers will "
              "stop there", file.name().c_str(), static_cast<unsigned long long>(torn_at), std::strerror(errno));
    }
  }

  // Where the torn last message of a file of `size` bytes starts, or `size`
  // when the file ends with a whole message (or holds something else than
  // IPFIX messages from some point on: not a torn tail).
  static uint64_t tornMessageStart(const OutputFile& file, uint64_t size) {
    std::vector<uint8_t> window(1 << 16);
    uint64_t at = 0, window_at = 0;
    size_t window_len = 0;
    while (at < size) {
      if (at + 4 > window_at + window_len) {
        window_at = at;
        window_len = file.readAt(window.data(), window.size(), at);
        if (window_len < 4) return size - at < 16 ? at : size;  // a header cut short, or unreadable
      }
      const uint8_t* h = window.data() + (at - window_at);
      const unsigned version = h[0] << 8 | h[1], length = h[2] << 8 | h[3];
      if (version != 10 || length < 16) return size;  // not a message: not ours to cut
      if (at + length > size) return at;            // the message goes past the end: torn
      at += length;
    }
    return size;
  }

  RotatingOutput out_;
  std::string name_;
  LogRateLimiter cut_failure_log_;
  bool tail_checked_ = false;
  uint64_t want_ms_ = 0;  // with rotation: the time whose interval's file is wanted
};

}  // namespace

std::unique_ptr<MessageTransport> makeUdpTransport(const std::string& host, const std::string& port,
                                                   uint64_t max_datagrams_per_second) {
  return std::make_unique<UdpTransport>(host, port, max_datagrams_per_second);
}
std::unique_ptr<MessageTransport> makeFileTransport(const std::string& path, RotationOptions rotation) {
  return std::make_unique<FileTransport>(path, rotation);
}

}  // namespace flowfold::ipfix
