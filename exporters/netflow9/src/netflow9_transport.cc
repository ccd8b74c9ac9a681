#include "flowfold/exporters/netflow9_transport.h"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <stdexcept>

#include "flowfold/exporters/pacer.h"

namespace flowfold::netflow9 {

namespace asio = boost::asio;
using asio::ip::udp;

struct UdpTransport::Impl {
  explicit Impl(uint64_t rate) : socket(io), pacer(rate) {}
  asio::io_context io;
  udp::socket socket;
  Pacer pacer;
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
    : impl_(std::make_unique<Impl>(max_datagrams_per_second)) {
  boost::system::error_code ec;
  udp::resolver resolver(impl_->io);
  const auto results = resolver.resolve(stripBrackets(host), port, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("netflow9: cannot resolve collector " + host + ":" + port + ": " +
                             (ec ? ec.message() : std::string("no address")));
  }
  const udp::endpoint endpoint = *results.begin();
  remote_ = formatEndpoint(endpoint);
  impl_->socket.open(endpoint.protocol(), ec);
  if (!ec) impl_->socket.connect(endpoint, ec);
  if (ec) {
    throw std::runtime_error("netflow9: cannot open UDP socket to " + remote_ + ": " +
                             ec.message());
  }
}

UdpTransport::~UdpTransport() = default;

bool UdpTransport::send(std::span<const uint8_t> datagram) {
  impl_->pacer.acquire();
  boost::system::error_code ec;
  impl_->socket.send(asio::buffer(datagram.data(), datagram.size()), 0, ec);
  if (ec) {
    ++errors_;
    last_error_ = ec.message();
    return false;
  }
  ++sent_;
  return true;
}

}  // namespace flowfold::netflow9
