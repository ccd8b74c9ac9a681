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
#include <stdexcept>

#include "flowfold/exporters/log.h"

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
  UdpTransport(const std::string& host, const std::string& port)
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
      if (::connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
        last_errno = errno;
        ::close(fd_);
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
  }
  ~UdpTransport() override {
    if (fd_ >= 0) ::close(fd_);
  }

  // An ICMP port unreachable for an earlier datagram fails a later send
  // (ECONNREFUSED): that message is counted as lost; the next send goes out.
  void send(const uint8_t* data, size_t size, size_t /*records*/) override {
    for (;;) {
      const ssize_t n = ::send(fd_, data, size, 0);
      if (n == static_cast<ssize_t>(size)) return;
      if (n < 0 && errno == EINTR) continue;
      const std::string why = n < 0 ? std::strerror(errno) : "short datagram write";
      throw std::runtime_error("IPFIX send to " + name_ + " failed: " + why);
    }
  }

  const std::string& describe() const override { return name_; }

 private:
  std::string name_;
  int fd_ = -1;
};

class FileTransport final : public MessageTransport {
 public:
  explicit FileTransport(const std::string& path) : name_("file:" + path) {
    if (path.empty()) throw std::invalid_argument("IPFIX file export: no path given");
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::runtime_error("IPFIX file " + path + ": cannot create: " + std::strerror(errno));
    }
  }
  ~FileTransport() override {
    if (fd_ >= 0 && ::close(fd_) != 0) logWarn("IPFIX %s: closing failed: %s", name_.c_str(), std::strerror(errno));
  }

  // One write per message, no stdio buffer: a full disk is seen at the
  // message it hits. The partial message is cut off again, so the file stays
  // a sequence of whole messages that readers accept, and writing resumes by
  // itself once there is space.
  void send(const uint8_t* data, size_t size, size_t /*records*/) override {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd_, data + done, size - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      const int err = n < 0 ? errno : ENOSPC;
      if (::ftruncate(fd_, static_cast<off_t>(good_size_)) != 0 ||
          ::lseek(fd_, static_cast<off_t>(good_size_), SEEK_SET) < 0) {
        logWarn("IPFIX %s: cannot cut off a partial message: %s", name_.c_str(), std::strerror(errno));
      }
      throw std::runtime_error("IPFIX " + name_ + ": write failed: " + std::strerror(err) +
                               (err == ENOSPC ? " (free some space: writing resumes by itself)" : ""));
    }
    good_size_ += size;
  }
  void flush() override {}
  const std::string& describe() const override { return name_; }

 private:
  std::string name_;
  int fd_ = -1;
  uint64_t good_size_ = 0;  // bytes of whole messages in the file
};

}  // namespace

std::unique_ptr<MessageTransport> makeUdpTransport(const std::string& host,
                                                   const std::string& port) {
  return std::make_unique<UdpTransport>(host, port);
}
std::unique_ptr<MessageTransport> makeFileTransport(const std::string& path) {
  return std::make_unique<FileTransport>(path);
}

}  // namespace flowfold::ipfix
