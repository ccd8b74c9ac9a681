#pragma once
// Where finished IPFIX messages go. The encoder (libfixbuf) hands over whole
// messages; a transport only moves bytes. Every failure throws
// std::runtime_error with a message that names the peer or the file.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace flowfold::ipfix {

class MessageTransport {
 public:
  virtual ~MessageTransport() = default;

  /// Sends one complete IPFIX message.
  virtual void send(const uint8_t* data, size_t size) = 0;
  /// Pushes buffered bytes out (files).
  virtual void flush() {}
  /// False when a stream transport lost its connection.
  virtual bool connected() const { return true; }
  /// Opens a new connection after a loss; throws when that fails or when
  /// the last attempt was too recent (backoff). A new connection is a new
  /// IPFIX transport session: the caller must send the templates again.
  virtual void reconnect() {}
  /// "udp://host:port", "tcp://host:port", "file:path".
  virtual const std::string& describe() const = 0;
};

std::unique_ptr<MessageTransport> makeUdpTransport(const std::string& host,
                                                   const std::string& port);
/// Connects at once (5 s timeout), so a wrong address fails at start-up.
std::unique_ptr<MessageTransport> makeTcpTransport(const std::string& host,
                                                   const std::string& port);
std::unique_ptr<MessageTransport> makeFileTransport(const std::string& path);

}  // namespace flowfold::ipfix
