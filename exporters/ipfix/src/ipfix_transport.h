#pragma once
// Where finished IPFIX messages go. The encoder (libfixbuf) hands over whole
// messages; a transport only moves bytes. UDP and file failures throw
// std::runtime_error with a message that names the peer or the file; TCP
// buffers, retries and counts its losses instead (tcp_transport.cc).

#include <netdb.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "flowfold/exporters/rotating_output.h"

namespace flowfold::ipfix {

class MessageTransport {
 public:
  virtual ~MessageTransport() = default;

  /// Sends one complete IPFIX message carrying `records` data records.
  /// UDP and file: throws when that message is lost. TCP: never throws; the
  /// message is buffered and losses show in recordsDropped().
  virtual void send(const uint8_t* data, size_t size, size_t records) = 0;
  /// Pushes buffered bytes out. TCP: waits (bounded) until the buffer has
  /// reached the collector or is given up as lost and counted.
  virtual void flush() {}
  /// Sends what is queued now (UDP queues messages until then, to send them
  /// with few system calls). Called at the end of every batch of records.
  virtual void push() {}
  /// True for a transport that counts what it delivered (UDP: a queued
  /// message may still fail at push()); the exporter then takes its message,
  /// byte and record counts from delivered() instead of counting send()s.
  struct Delivered {
    uint64_t messages = 0, bytes = 0, records = 0;
  };
  virtual bool countsDelivery() const { return false; }
  virtual Delivered delivered() const { return {}; }
  /// True for a transport that starts every connection with the templates
  /// itself (TCP): the caller hands them over once with setSessionStart()
  /// instead of sending them.
  virtual bool sendsTemplatesPerSession() const { return false; }
  virtual void setSessionStart(const uint8_t* /*data*/, size_t /*size*/) {}
  /// Records this transport lost after send() accepted them, and failures it
  /// met on the way (cumulative).
  virtual uint64_t recordsDropped() const { return 0; }
  /// UDP to a collector on this host: datagrams its socket dropped (see
  /// UdpSender::collectorDrops()); flush() takes a fresh count.
  virtual uint64_t collectorDrops() const { return 0; }
  /// UDP: errors from the network the kernel reported (UdpSender::refusals()).
  virtual uint64_t collectorRefusals() const { return 0; }
  virtual uint64_t errors() const { return 0; }
  /// Called before each batch with the pipeline clock. A transport that
  /// writes one file per interval switches to now_ms's file; true when a new
  /// file starts (the templates must go first in it).
  virtual bool startsNewFile(uint64_t /*now_ms*/) { return false; }
  /// "udp://host:port", "tcp://host:port", "file:path".
  virtual const std::string& describe() const = 0;
};

/// "tcp://host:port" ("[v6]:port" for an IPv6 literal).
std::string peerName(const std::string& scheme, const std::string& host, const std::string& port);

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const { freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;
/// getaddrinfo(); throws std::runtime_error "IPFIX collector NAME: cannot resolve: ...".
AddrInfoPtr resolve(const std::string& name, const std::string& host, const std::string& port,
                    int socktype);

/// UDP, paced at max_datagrams_per_second (0 = unpaced).
std::unique_ptr<MessageTransport> makeUdpTransport(const std::string& host, const std::string& port,
                                                   uint64_t max_datagrams_per_second);
/// IPFIX over TCP (RFC 7011 section 10.4) that never blocks capture for
/// long and loses nothing it can keep: see tcp_transport.cc. A name that does
/// not resolve throws at once; a collector that is down is retried.
std::unique_ptr<MessageTransport> makeTcpTransport(const std::string& host,
                                                   const std::string& port,
                                                   size_t buffer_bytes);
/// An IPFIX file, or one file per interval (see rotating_output.h).
std::unique_ptr<MessageTransport> makeFileTransport(const std::string& path, RotationOptions rotation);

}  // namespace flowfold::ipfix
