#pragma once
// UDP transport for NetFlow v9 datagrams (Boost.Asio resolves and connects;
// nothing of it in this header). Synchronous: send() returns once the kernel
// has the datagrams. A batch goes out with few system calls (UdpSender).

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace flowfold::netflow9 {

class UdpTransport {
 public:
  /// Resolves host:port once (IPv4 or IPv6; a bracketed "[::1]" is accepted)
  /// and opens a socket connected to the first address. Connecting makes the
  /// kernel report an ICMP port unreachable as ECONNREFUSED on a later send
  /// instead of swallowing it. max_datagrams_per_second 0 means unpaced.
  /// Throws std::runtime_error when the name does not resolve or the socket
  /// cannot be opened.
  UdpTransport(const std::string& host, const std::string& port,
               uint64_t max_datagrams_per_second = 0);
  ~UdpTransport();
  UdpTransport(const UdpTransport&) = delete;
  UdpTransport& operator=(const UdpTransport&) = delete;

  /// Sends one datagram, waiting for the pacer first. Never throws: on
  /// failure returns false, counts it and keeps the error text; the next send
  /// is tried normally.
  bool send(std::span<const uint8_t> datagram);
  /// Sends a batch in order, paced like single sends. errors[i] is 0 when
  /// datagram i went out, else the errno that lost it (also counted and kept
  /// as lastError()).
  void send(std::span<const std::span<const uint8_t>> datagrams, std::span<int> errors);

  /// A collector on this host: datagrams its socket dropped (UdpSender::collectorDrops()).
  uint64_t collectorDrops() const;
  /// Errors from the network the kernel reported (UdpSender::refusals()).
  uint64_t collectorRefusals() const;
  /// At a flush: a refusal still pending (UdpSender::checkPendingRefusal()).
  void checkPendingRefusal();
  /// Takes a fresh count of those (end of a run).
  void checkCollector();

  uint64_t datagramsSent() const { return sent_; }
  uint64_t sendErrors() const { return errors_; }
  const std::string& lastError() const { return last_error_; }
  /// The resolved collector address, e.g. "127.0.0.1:2055" or "[::1]:2055".
  const std::string& remote() const { return remote_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t sent_ = 0;
  uint64_t errors_ = 0;
  std::string last_error_;
  std::string remote_;
};

}  // namespace flowfold::netflow9
