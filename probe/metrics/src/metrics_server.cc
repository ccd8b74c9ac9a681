// A deliberately small HTTP server for Prometheus scrapes: one request per
// connection, no keep-alive, no chunking, nothing beyond the request line read.
// Everything runs on one Asio thread; each connection is a chain of async
// operations guarded by a deadline, so a client that dribbles or says nothing
// costs a socket for request_timeout and never blocks anyone else.
//
// Slots are bounded, so who holds them is policy: a client that has its
// response gives its slot up within kDrainTime, and when every slot is taken
// the newcomer is let in by closing the client that has held a slot with the
// least claim to it (one that already has its response, else the slowest
// sender of a request). A flood of clients that never close, or that dribble
// half a request, therefore cannot lock a scraper out.

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <pthread.h>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include "flowfold/probe/metrics.h"

namespace flowfold {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextType = "text/plain; charset=utf-8";
constexpr std::string_view kHtmlType = "text/html; charset=utf-8";
constexpr std::string_view kIndexPage =
    "<!DOCTYPE html>\n"
    "<html><head><title>flowfold</title></head>\n"
    "<body><h1>flowfold</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";
constexpr size_t kReadChunk = 2048;
// After the response, what the client still sends is read and dropped (so
// closing does not turn into a RST that could destroy the response in the
// client's buffer), but only this much.
constexpr size_t kMaxDrainBytes = 64 * 1024;
// ... and only for this long (or request_timeout, if shorter): the client has
// its whole response by then or is not reading it, and a slot held open by a
// client that never closes is one a scraper cannot have.
constexpr std::chrono::milliseconds kDrainTime{500};
constexpr std::chrono::milliseconds kAcceptRetry{100};

std::string stripBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::string formatEndpoint(const std::string& address, bool v6, uint16_t port) {
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

bool isLoopback(const asio::ip::address& address) {
  if (address.is_v4()) return address.to_v4().is_loopback();
  const asio::ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).is_loopback();
  return v6.is_loopback();
}

// Where the header block ends (one past its empty line), or npos. Blank lines
// before the request line are skipped, as RFC 9112 section 2.2 asks; bare LF
// line ends are accepted for hand-typed requests.
size_t findHeaderEnd(std::string_view data, size_t& request_start) {
  request_start = data.find_first_not_of("\r\n");
  if (request_start == std::string_view::npos) {
    request_start = data.size();
    return std::string_view::npos;
  }
  for (size_t nl = data.find('\n', request_start); nl != std::string_view::npos;
       nl = data.find('\n', nl + 1)) {
    if (nl + 1 < data.size() && data[nl + 1] == '\n') return nl + 2;
    if (nl + 2 < data.size() && data[nl + 1] == '\r' && data[nl + 2] == '\n') return nl + 3;
  }
  return std::string_view::npos;
}

struct Response {
  std::string_view status;
  std::string_view content_type;
  std::string body;
  std::string_view extra_headers = {};
};

Response textResponse(std::string_view status, std::string body) {
  return {status, kTextType, std::move(body)};
}

class Connection;

class HttpServer {
 public:
  HttpServer(const std::string& host, uint16_t port, MetricsServer::BodyProvider body,
             const MetricsServerOptions& options);
  ~HttpServer() { stop(); }

  void stop();
  uint16_t port() const { return port_; }
  const std::string& endpoint() const { return endpoint_; }
  const MetricsServerOptions& options() const { return options_; }

  // Server thread only from here on.
  Response scrape();
  void remove(const std::shared_ptr<Connection>& connection) { connections_.erase(connection); }

 private:
  void accept();
  void shutdown();
  void makeRoom();

  MetricsServer::BodyProvider body_;
  MetricsServerOptions options_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  std::unordered_set<std::shared_ptr<Connection>> connections_;
  bool stopping_ = false;
  uint16_t port_ = 0;
  std::string endpoint_;
  std::mutex stop_mutex_;
  std::thread thread_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer& server)
      : socket_(std::move(socket)),
        deadline_(socket_.get_executor()),
        server_(server),
        accepted_(std::chrono::steady_clock::now()) {}

  void start() {
    armDeadline(server_.options().request_timeout);
    read();
  }

  // Idempotent. Closing the socket completes any pending operation with
  // operation_aborted; the handlers then find closed_ set and stop.
  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    socket_.close(ignored);
    deadline_.cancel();
    server_.remove(shared_from_this());
  }

  enum class Phase { kReading, kWriting, kDraining };
  Phase phase() const { return phase_; }
  bool closed() const { return closed_; }
  std::chrono::steady_clock::time_point accepted() const { return accepted_; }

 private:
  void armDeadline(std::chrono::milliseconds allowance) {
    deadline_.expires_after(allowance);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
      // A deadline moved after this wait already fired is not a timeout.
      if (!ec && self->deadline_.expiry() <= std::chrono::steady_clock::now()) self->close();
    });
  }

  void read() {
    const size_t old_size = request_.size();
    const size_t room = server_.options().max_request_bytes - old_size;
    request_.resize(old_size + std::min(room, kReadChunk));
    socket_.async_read_some(
        asio::buffer(request_.data() + old_size, request_.size() - old_size),
        [self = shared_from_this(), old_size](const error_code& ec, size_t n) {
          if (self->closed_) return;
          if (ec) return self->close();
          self->request_.resize(old_size + n);
          self->onData();
        });
  }

  void onData() {
    size_t request_start = 0;
    const size_t end = findHeaderEnd(request_, request_start);
    if (end != std::string::npos) {
      respond(handle(std::string_view(request_).substr(request_start, end - request_start)));
    } else if (request_.size() >= server_.options().max_request_bytes) {
      respond(textResponse("431 Request Header Fields Too Large", "Request too large\n"));
    } else {
      read();
    }
  }

  Response handle(std::string_view head) {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    // request-line = method SP request-target SP HTTP-version
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
        line.find(' ', sp2 + 1) != std::string_view::npos) {
      return textResponse("400 Bad Request", "Bad request\n");
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);

    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
      if (version.starts_with("HTTP/") && version.size() > 5 && version[5] >= '2' &&
          version[5] <= '9') {
        return textResponse("505 HTTP Version Not Supported", "HTTP version not supported\n");
      }
      return textResponse("400 Bad Request", "Bad request\n");
    }
    head_only_ = method == "HEAD";
    if (method != "GET" && !head_only_) {
      Response r = textResponse("405 Method Not Allowed", "Method not allowed\n");
      r.extra_headers = "Allow: GET, HEAD\r\n";
      return r;
    }
    target = target.substr(0, target.find_first_of("?#"));
    if (target == "/metrics") return server_.scrape();
    if (target == "/") return {"200 OK", kHtmlType, std::string(kIndexPage)};
    return textResponse("404 Not Found", "Not found\n");
  }

  void respond(Response response) {
    phase_ = Phase::kWriting;
    request_.clear();
    request_.shrink_to_fit();
    header_ = "HTTP/1.1 ";
    header_ += response.status;
    header_ += "\r\nContent-Type: ";
    header_ += response.content_type;
    header_ += "\r\nContent-Length: ";
    header_ += std::to_string(response.body.size());
    header_ += "\r\n";
    header_ += response.extra_headers;
    header_ += "Connection: close\r\n\r\n";
    body_ = head_only_ ? std::string() : std::move(response.body);

    // A fresh allowance for the client to take the response.
    armDeadline(server_.options().request_timeout);
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(header_), asio::buffer(body_)};
    asio::async_write(socket_, buffers,
                      [self = shared_from_this()](const error_code& ec, size_t /*written*/) {
                        if (self->closed_) return;
                        if (ec) return self->close();
                        self->header_.clear();
                        self->body_.clear();
                        error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                        self->phase_ = Phase::kDraining;
                        self->armDeadline(std::min(self->server_.options().request_timeout, kDrainTime));
                        self->drain();
                      });
  }

  // Waits for the client to close its side (it has the whole response).
  void drain() {
    socket_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                              if (self->closed_) return;
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) return self->close();
                              self->drain();
                            });
  }

  tcp::socket socket_;
  asio::steady_timer deadline_;
  HttpServer& server_;
  std::chrono::steady_clock::time_point accepted_;
  std::string request_;
  std::string header_;
  std::string body_;
  std::array<char, 512> scratch_{};
  size_t drained_ = 0;
  Phase phase_ = Phase::kReading;
  bool head_only_ = false;
  bool closed_ = false;
};

HttpServer::HttpServer(const std::string& host, uint16_t port, MetricsServer::BodyProvider body,
                       const MetricsServerOptions& options)
    : body_(std::move(body)), options_(options) {
  if (!body_) throw std::invalid_argument("metrics: the server needs a body provider");
  if (options_.request_timeout.count() <= 0 || options_.max_request_bytes < 64 ||
      options_.max_connections == 0) {
    throw std::invalid_argument(
        "metrics: request_timeout must be positive, max_request_bytes at least 64 and "
        "max_connections at least 1");
  }

  const std::string bare = stripBrackets(host);
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(bare, ec);
  if (ec) {
    throw std::runtime_error("metrics: cannot listen on " +
                             formatEndpoint(host, false, port) + ": not an IP address");
  }
  const std::string requested = formatEndpoint(address.to_string(), address.is_v6(), port);
  if (!options_.allow_non_loopback && !isLoopback(address)) {
    throw std::invalid_argument("metrics: refusing to listen on " + requested +
                                ": not a loopback address, and listening beyond this "
                                "machine was not explicitly allowed");
  }

  const tcp::endpoint where(address, port);
  const char* step = "open";
  acceptor_.open(where.protocol(), ec);
  if (!ec) {
    step = "set SO_REUSEADDR";
    // Lets a restarted probe take its port back while old connections sit in
    // TIME_WAIT; Linux still refuses a port another socket listens on.
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    step = "bind";
    acceptor_.bind(where, ec);
  }
  if (!ec) {
    step = "listen";
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (!ec) port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    throw std::runtime_error("metrics: cannot listen on " + requested + " (" + step +
                             "): " + ec.message());
  }
  endpoint_ = formatEndpoint(address.to_string(), address.is_v6(), port_);

  accept();
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception&) {
        // A handler threw (only an allocation failure can): drop it, keep serving.
      }
    }
  });
  // Named so that /proc/PID/task/*/comm (and top -H) tell it apart; from
  // here, so that the name is there as soon as the server is.
  pthread_setname_np(thread_.native_handle(), "ff-metrics");
}

void HttpServer::stop() {
  std::lock_guard lock(stop_mutex_);
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { shutdown(); });
  if (thread_.get_id() == std::this_thread::get_id()) return;  // from the body provider
  thread_.join();
}

void HttpServer::shutdown() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  // close() erases from connections_: iterate over a copy.
  const auto open = std::move(connections_);
  connections_.clear();
  for (const auto& connection : open) connection->close();
  // With nothing left to wait on, io_.run() returns and the thread ends.
}

void HttpServer::accept() {
  acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
    if (stopping_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors and the like: retry later instead of spinning.
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this](const error_code& wait_ec) {
        if (!wait_ec && !stopping_) accept();
      });
      return;
    }
    if (connections_.size() >= options_.max_connections) makeRoom();
    if (connections_.size() < options_.max_connections) {
      auto connection = std::make_shared<Connection>(std::move(socket), *this);
      connections_.insert(connection);
      connection->start();
    } else {
      error_code ignored;
      socket.close(ignored);
    }
    accept();
  });
}

// At the connection limit one client makes room for the newcomer: the oldest
// of those that already have their response and only keep the connection
// open, else the one that has been sending its request the longest. One being
// sent its response keeps its slot (its deadline bounds it). So clients that
// never close and slow senders cannot lock a fast scraper out.
void HttpServer::makeRoom() {
  std::shared_ptr<Connection> oldest_drainer;
  std::shared_ptr<Connection> oldest_reader;
  auto older = [](const std::shared_ptr<Connection>& candidate,
                  const std::shared_ptr<Connection>& current) {
    return !current || candidate->accepted() < current->accepted();
  };
  for (const auto& connection : connections_) {
    if (connection->closed()) continue;
    switch (connection->phase()) {
      case Connection::Phase::kDraining:
        if (older(connection, oldest_drainer)) oldest_drainer = connection;
        break;
      case Connection::Phase::kReading:
        if (older(connection, oldest_reader)) oldest_reader = connection;
        break;
      case Connection::Phase::kWriting:
        break;
    }
  }
  if (oldest_drainer) {
    oldest_drainer->close();
  } else if (oldest_reader) {
    oldest_reader->close();
  }
}

Response HttpServer::scrape() {
  try {
    return {"200 OK", kExpositionType, body_()};
  } catch (const std::exception& e) {
    return textResponse("500 Internal Server Error",
                        std::string("metrics unavailable: ") + e.what() + "\n");
  } catch (...) {
    return textResponse("500 Internal Server Error", "metrics unavailable\n");
  }
}

}  // namespace

struct MetricsServer::Impl {
  Impl(const std::string& host, uint16_t port, BodyProvider body,
       const MetricsServerOptions& options)
      : server(host, port, std::move(body), options) {}
  HttpServer server;
};

MetricsServer::MetricsServer(const std::string& host, uint16_t port, BodyProvider body,
                             MetricsServerOptions options)
    : impl_(std::make_unique<Impl>(host, port, std::move(body), options)) {}

MetricsServer::~MetricsServer() = default;

uint16_t MetricsServer::port() const { return impl_->server.port(); }

const std::string& MetricsServer::endpoint() const { return impl_->server.endpoint(); }

std::string MetricsServer::url() const { return "http://" + endpoint() + "/metrics"; }

void MetricsServer::stop() { impl_->server.stop(); }

}  // namespace flowfold
