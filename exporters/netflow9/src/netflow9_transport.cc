#include "flowfold/exporters/netflow9_transport.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "flowfold/exporters/host_port.h"
#include "flowfold/exporters/udp_sender.h"

namespace flowfold::netflow9 {

namespace asio = boost::asio;
using asio::ip::udp;

struct UdpTransport::Impl {
  Impl() : socket(io) {}
  asio::io_context io;
  udp::socket socket;
  std::optional<UdpSender> sender;  // once the socket is connected
};

namespace {

std::string stripBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::string formatEndpoint(const udp::endpoint& ep) {
  const std::string addr = ep.address().to_string();
  const std::string port = std::to_string(ep.port());
  return ep.address().is_v6() ? "[" + addr + "]:" + port : addr + ":" + port;
}

}  // namespace

UdpTransport::UdpTransport(const std::string& host, const std::string& port,
                           uint64_t max_datagrams_per_second)
    : impl_(std::make_unique<Impl>()) {
  boost::system::error_code ec;
  udp::resolver resolver(impl_->io);
  const auto results = resolver.resolve(stripBrackets(host), port, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("netflow9: cannot resolve collector " + joinHostPort(host, port) + ": " +
                             (ec ? ec.message() : std::string("no address")));
  }
  const udp::endpoint endpoint = *results.begin();
  remote_ = formatEndpoint(endpoint);
  impl_->socket.open(endpoint.protocol(), ec);
  if (!ec) impl_->socket.connect(endpoint, ec);
  for (int retry = 0; !ec && retry < 8 && connectedToItself(impl_->socket.native_handle()); ++retry) {
    impl_->socket.close(ec);  // it drew the collector's own port: draw another
    impl_->socket.open(endpoint.protocol(), ec);
    if (!ec) impl_->socket.connect(endpoint, ec);
  }
  if (ec) {
    throw std::runtime_error("netflow9: cannot open UDP socket to " + remote_ + ": " +
                             ec.message());
  }
  impl_->sender.emplace(impl_->socket.native_handle(), "netflow9 collector " + remote_,
                        max_datagrams_per_second);
}

UdpTransport::~UdpTransport() = default;

uint64_t UdpTransport::collectorDrops() const { return impl_->sender->collectorDrops(); }
void UdpTransport::checkCollector() { impl_->sender->checkCollector(); }
uint64_t UdpTransport::collectorRefusals() const { return impl_->sender->refusals(); }
void UdpTransport::checkPendingRefusal() { impl_->sender->checkPendingRefusal(); }

bool UdpTransport::send(std::span<const uint8_t> datagram) {
  int error = 0;
  send(std::span<const std::span<const uint8_t>>(&datagram, 1), std::span<int>(&error, 1));
  return error == 0;
}

void UdpTransport::send(std::span<const std::span<const uint8_t>> datagrams, std::span<int> errors) {
  impl_->sender->send(datagrams, errors);
  for (const int e : errors) {
    if (e == 0) {
      ++sent_;
      continue;
    }
    ++errors_;
    last_error_ = std::strerror(e);
  }
}

}  // namespace flowfold::netflow9
