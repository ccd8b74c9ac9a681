// The endpoint over real TCP sockets. The client side is plain POSIX sockets
// with a receive timeout, so a server bug fails a test instead of hanging it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "flowfold/probe/metrics.h"

namespace flowfold {
namespace {

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Connects to a numeric IPv4/IPv6 address; -1 in the Socket on failure.
Socket connectTo(const std::string& host, uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) return Socket(-1);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    family = AF_INET6;
  }
  Socket socket(::socket(family, SOCK_STREAM, 0));
  if (socket.fd() < 0) return socket;
  const timeval timeout{10, 0};
  setsockopt(socket.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(socket.fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  if (::connect(socket.fd(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return Socket(-1);
  }
  return socket;
}

void sendAll(const Socket& socket, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(socket.fd(), data.data(), data.size(), MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << std::strerror(errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
}

struct Received {
  std::string data;
  bool closed = false;     // orderly EOF or reset, as opposed to our 10 s timeout
};

Received readUntilClosed(const Socket& socket) {
  Received received;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(socket.fd(), buf, sizeof buf, 0);
    if (n > 0) {
      received.data.append(buf, static_cast<size_t>(n));
      continue;
    }
    received.closed = n == 0 || errno == ECONNRESET;
    return received;
  }
}

struct HttpResponse {
  std::string status_line;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool closed = false;
};

HttpResponse parseResponse(const Received& received) {
  HttpResponse response;
  response.closed = received.closed;
  const std::string& raw = received.data;
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return response;
  size_t pos = raw.find("\r\n");
  response.status_line = raw.substr(0, pos);
  while (pos < head_end) {
    const size_t next = raw.find("\r\n", pos + 2);
    const std::string line = raw.substr(pos + 2, next - pos - 2);
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    pos = next;
  }
  response.body = raw.substr(head_end + 4);
  return response;
}

HttpResponse exchange(const std::string& host, uint16_t port, std::string_view request) {
  const Socket socket = connectTo(host, port);
  if (socket.fd() < 0) {
    ADD_FAILURE() << "cannot connect to " << host << " port " << port;
    return {};
  }
  sendAll(socket, request);
  return parseResponse(readUntilClosed(socket));
}

HttpResponse get(const MetricsServer& server, const std::string& target,
                 const std::string& host = "127.0.0.1") {
  return exchange(host, server.port(),
                  "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n");
}

const std::string kBody =
    "# HELP flowfold_packets_total Packets.\n"
    "# TYPE flowfold_packets_total counter\n"
    "flowfold_packets_total 12\n";

MetricsServer::BodyProvider fixedBody() {
  return [] { return kBody; };
}

TEST(MetricsServer, ServesMetricsOverLoopbackTcp) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(server.endpoint(), "127.0.0.1:" + std::to_string(server.port()));

  const HttpResponse response = get(server, "/metrics");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.headers.at("content-length"), std::to_string(kBody.size()));
  EXPECT_EQ(response.headers.at("connection"), "close");
  EXPECT_EQ(response.body, kBody);
  EXPECT_TRUE(response.closed);
}

TEST(MetricsServer, CallsTheProviderForEachScrapeOnItsOwnThread) {
  std::atomic<int> scrapes{0};
  std::atomic<bool> on_test_thread{false};
  const std::thread::id test_thread = std::this_thread::get_id();
  MetricsServer server("127.0.0.1", 0, [&] {
    if (std::this_thread::get_id() == test_thread) on_test_thread = true;
    return "scrapes " + std::to_string(++scrapes) + "\n";
  });
  EXPECT_EQ(get(server, "/metrics").body, "scrapes 1\n");
  EXPECT_EQ(get(server, "/metrics").body, "scrapes 2\n");
  EXPECT_EQ(scrapes, 2);
  EXPECT_FALSE(on_test_thread);
}

TEST(MetricsServer, AnswersHttp10AndBareLineFeeds) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  HttpResponse response = exchange("127.0.0.1", server.port(), "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, kBody);
  response = exchange("127.0.0.1", server.port(), "GET /metrics HTTP/1.0\n\n");
  EXPECT_EQ(response.body, kBody);
}

TEST(MetricsServer, AssemblesARequestSentInPieces) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  const Socket socket = connectTo("127.0.0.1", server.port());
  ASSERT_GE(socket.fd(), 0);
  for (const char* piece : {"GE", "T /metr", "ics HTTP/1.1\r", "\nHost: x\r\n\r", "\n"}) {
    sendAll(socket, piece);
  }
  const HttpResponse response = parseResponse(readUntilClosed(socket));
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, kBody);
}

TEST(MetricsServer, HeadSendsHeadersWithoutBody) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  const HttpResponse response =
      exchange("127.0.0.1", server.port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.headers.at("content-length"), std::to_string(kBody.size()));
  EXPECT_EQ(response.body, "");
}

TEST(MetricsServer, RootPageLinksMetrics) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  const HttpResponse response = get(server, "/");
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(response.body.find("<a href=\"/metrics\">"), std::string::npos) << response.body;
  EXPECT_EQ(response.headers.at("content-length"), std::to_string(response.body.size()));
}

TEST(MetricsServer, IgnoresTheQueryString) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  EXPECT_EQ(get(server, "/metrics?name[]=x").body, kBody);
}

TEST(MetricsServer, OtherPathsAre404) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  for (const char* target : {"/metricsx", "/metrics/", "/favicon.ico", "*", "/METRICS"}) {
    const HttpResponse response = get(server, target);
    EXPECT_EQ(response.status_line, "HTTP/1.1 404 Not Found") << target;
    EXPECT_EQ(response.headers.at("connection"), "close");
    EXPECT_EQ(response.headers.at("content-length"), std::to_string(response.body.size()));
  }
}

TEST(MetricsServer, OtherMethodsAre405) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  for (const char* request : {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                              "PUT / HTTP/1.1\r\n\r\n", "DELETE /nothing HTTP/1.0\r\n\r\n",
                              "get /metrics HTTP/1.1\r\n\r\n"}) {
    const HttpResponse response = exchange("127.0.0.1", server.port(), request);
    EXPECT_EQ(response.status_line, "HTTP/1.1 405 Method Not Allowed") << request;
    EXPECT_EQ(response.headers.at("allow"), "GET, HEAD");
  }
}

TEST(MetricsServer, MalformedRequestLinesAre400) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  for (const char* request : {"GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
                              "GET /metrics HTTP/1.1 extra\r\n\r\n", "hello\r\n\r\n",
                              "GET /metrics SPDY/3\r\n\r\n"}) {
    const HttpResponse response = exchange("127.0.0.1", server.port(), request);
    EXPECT_EQ(response.status_line, "HTTP/1.1 400 Bad Request") << request;
  }
  EXPECT_EQ(exchange("127.0.0.1", server.port(), "GET /metrics HTTP/2.0\r\n\r\n").status_line,
            "HTTP/1.1 505 HTTP Version Not Supported");
}

TEST(MetricsServer, ProviderFailureIs500) {
  MetricsServer server("127.0.0.1", 0, []() -> std::string {
    throw std::runtime_error("stats not ready");
  });
  const HttpResponse response = get(server, "/metrics");
  EXPECT_EQ(response.status_line, "HTTP/1.1 500 Internal Server Error");
  EXPECT_NE(response.body.find("stats not ready"), std::string::npos);
}

TEST(MetricsServer, SilentAndSlowClientsDoNotBlockAScrape) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  const Socket silent = connectTo("127.0.0.1", server.port());
  const Socket slow = connectTo("127.0.0.1", server.port());
  ASSERT_GE(silent.fd(), 0);
  ASSERT_GE(slow.fd(), 0);
  sendAll(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n");  // and never the blank line
  EXPECT_EQ(get(server, "/metrics").body, kBody);
  EXPECT_EQ(get(server, "/").status_line, "HTTP/1.1 200 OK");
}

TEST(MetricsServer, ClosesAClientThatIsTooSlow) {
  MetricsServerOptions options;
  options.request_timeout = std::chrono::milliseconds(200);
  MetricsServer server("127.0.0.1", 0, fixedBody(), options);
  const Socket silent = connectTo("127.0.0.1", server.port());
  ASSERT_GE(silent.fd(), 0);
  sendAll(silent, "GET /metr");
  const Received received = readUntilClosed(silent);
  EXPECT_TRUE(received.closed);
  EXPECT_EQ(received.data, "");
}

TEST(MetricsServer, ClosesAnOversizedRequest) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  const Socket socket = connectTo("127.0.0.1", server.port());
  ASSERT_GE(socket.fd(), 0);
  sendAll(socket, "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(9000, 'a'));
  const HttpResponse response = parseResponse(readUntilClosed(socket));
  EXPECT_TRUE(response.closed);
  EXPECT_EQ(response.status_line, "HTTP/1.1 431 Request Header Fields Too Large");
  // The server still serves others.
  EXPECT_EQ(get(server, "/metrics").body, kBody);
}

TEST(MetricsServer, AcceptsARequestJustUnderTheLimit) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  std::string request = "GET /metrics HTTP/1.1\r\nX-Padding: ";
  request += std::string(8192 - request.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(request.size(), 8192u);
  EXPECT_EQ(exchange("127.0.0.1", server.port(), request).body, kBody);
}

TEST(MetricsServer, AtTheConnectionLimitTheOldestSlowClientMakesRoom) {
  MetricsServerOptions options;
  options.max_connections = 2;
  MetricsServer server("127.0.0.1", 0, fixedBody(), options);
  const Socket first = connectTo("127.0.0.1", server.port());
  const Socket second = connectTo("127.0.0.1", server.port());
  ASSERT_GE(first.fd(), 0);
  ASSERT_GE(second.fd(), 0);
  EXPECT_EQ(get(server, "/metrics").body, kBody);
  const Received evicted = readUntilClosed(first);  // the kernel queues accepts in order
  EXPECT_TRUE(evicted.closed);
  EXPECT_EQ(evicted.data, "");
  EXPECT_EQ(get(server, "/metrics").body, kBody);
}

TEST(MetricsServer, LetsGoOfAConnectionItHasAnsweredEvenIfTheClientKeepsIt) {
  // With a long request_timeout, only a short drain after the response can
  // free this connection's slot while the test looks (10 s).
  MetricsServerOptions options;
  options.request_timeout = std::chrono::seconds(60);
  MetricsServer server("127.0.0.1", 0, fixedBody(), options);
  const Socket holder = connectTo("127.0.0.1", server.port());
  ASSERT_GE(holder.fd(), 0);
  sendAll(holder, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  const HttpResponse response = parseResponse(readUntilClosed(holder));
  EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(response.body, kBody);
  // The server shut down its side at once (the EOF above); its socket is
  // fully closed once a byte from us draws a reset instead of being read.
  bool released = false;
  for (int i = 0; i < 200 && !released; ++i) {
    const ssize_t n = ::send(holder.fd(), "x", 1, MSG_NOSIGNAL);
    released = n < 0 && (errno == ECONNRESET || errno == EPIPE);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(released) << "the server still held the answered connection after 10 s";
}

// Hostile clients on loopback: `full` connections that each send a whole
// request and never close, and `half` that send half a request and stall. Each
// is reopened as soon as the server closes it, so the flood keeps pressing on
// every slot for as long as it runs.
class SlowClientFlood {
 public:
  SlowClientFlood(uint16_t port, size_t full, size_t half) : port_(port) {
    for (size_t i = 0; i < full + half; ++i) clients_.push_back({-1, i < full});
    thread_ = std::thread([this] { run(); });
  }
  ~SlowClientFlood() {
    stop_ = true;
    thread_.join();
    for (const Client& c : clients_) {
      if (c.fd >= 0) ::close(c.fd);
    }
  }
  // Responses the full-request clients have been sent so far.
  size_t responses() const { return responses_.load(); }
  // Times a client found its connection closed by the server.
  size_t closed() const { return closed_.load(); }

 private:
  struct Client {
    int fd;
    bool full_request;
  };

  void open(Client& client) {
    Socket socket = connectTo("127.0.0.1", port_);
    if (socket.fd() < 0) return;  // tried again on the next round
    const std::string_view request = client.full_request
                                         ? "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                         : "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    if (::send(socket.fd(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return;
    }
    client.fd = ::dup(socket.fd());
  }

  void run() {
    std::vector<pollfd> polled;
    char scratch[4096];
    while (!stop_) {
      polled.clear();
      for (Client& c : clients_) {
        if (c.fd < 0) open(c);
        polled.push_back({c.fd, POLLIN, 0});
      }
      if (::poll(polled.data(), polled.size(), 10) <= 0) continue;
      for (size_t i = 0; i < clients_.size(); ++i) {
        if (polled[i].fd < 0 || polled[i].revents == 0) continue;
        const ssize_t n = ::recv(clients_[i].fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n > 0) {
          if (std::string_view(scratch, static_cast<size_t>(n)).starts_with("HTTP/1.1 ")) ++responses_;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          ::close(clients_[i].fd);
          clients_[i].fd = -1;
          ++closed_;
        }
      }
    }
  }

  uint16_t port_;
  std::vector<Client> clients_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> responses_{0};
  std::atomic<size_t> closed_{0};
  std::thread thread_;
};

TEST(MetricsServer, EveryScrapeGetsThroughAFloodOfClientsThatHoldTheirConnections) {
  MetricsServer server("127.0.0.1", 0, fixedBody());  // the default 64 slots
  constexpr size_t kHolders = 96;   // more than there are slots
  constexpr size_t kStallers = 32;
  SlowClientFlood flood(server.port(), kHolders, kStallers);
  // Let the flood take the slots first: the holders have been answered.
  for (int waited = 0; flood.responses() < 64 && waited < 10000; waited += 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(flood.responses(), 64u) << "the flood never filled the slots";

  constexpr int kScrapes = 40;
  int complete = 0;
  for (int i = 0; i < kScrapes; ++i) {
    const HttpResponse response = get(server, "/metrics");
    if (response.status_line == "HTTP/1.1 200 OK" && response.body == kBody) ++complete;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(complete, kScrapes) << "scrapes locked out by the flood; flood connections closed by "
                                   "the server: " << flood.closed();
}

TEST(MetricsServer, UrlPutsAnIpv4HostAsIs) {
  MetricsServer server("127.0.0.1", 0, fixedBody());
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
}

TEST(MetricsServer, RefusesNonLoopbackAddressesWithoutOptIn) {
  for (const char* host : {"0.0.0.0", "::", "192.0.2.1", "[::]"}) {
    EXPECT_THROW(MetricsServer(host, 0, fixedBody()), std::invalid_argument) << host;
  }
  try {
    MetricsServer("0.0.0.0", 9100, fixedBody());
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("0.0.0.0:9100"), std::string::npos) << e.what();
  }
}

TEST(MetricsServer, ListensOnAllAddressesWhenAllowed) {
  MetricsServerOptions options;
  options.allow_non_loopback = true;
  MetricsServer server("0.0.0.0", 0, fixedBody(), options);
  EXPECT_EQ(get(server, "/metrics").body, kBody);
}

TEST(MetricsServer, AcceptsOtherLoopbackForms) {
  for (const char* host : {"127.0.0.2", "::ffff:127.0.0.1"}) {
    MetricsServer server(host, 0, fixedBody());
    EXPECT_NE(server.port(), 0) << host;
  }
}

TEST(MetricsServer, PortInUseThrowsNamingTheAddress) {
  MetricsServer first("127.0.0.1", 0, fixedBody());
  const std::string where = "127.0.0.1:" + std::to_string(first.port());
  try {
    MetricsServer second("127.0.0.1", first.port(), fixedBody());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(where), std::string::npos) << message;
    EXPECT_NE(message.find("in use"), std::string::npos) << message;
  }
  EXPECT_EQ(get(first, "/metrics").body, kBody);
}

TEST(MetricsServer, BadAddressThrowsNamingIt) {
  for (const char* host : {"localhost.invalid", "", "127.0.0.256", "[::1"}) {
    try {
      MetricsServer server(host, 9100, fixedBody());
      FAIL() << "no exception for " << host;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(host) + ":9100"), std::string::npos)
          << e.what();
    }
  }
}

TEST(MetricsServer, RejectsAnEmptyProvider) {
  EXPECT_THROW(MetricsServer("127.0.0.1", 0, nullptr), std::invalid_argument);
}

bool ipv6LoopbackAvailable() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

TEST(MetricsServer, ServesOverIpv6Loopback) {
  if (!ipv6LoopbackAvailable()) GTEST_SKIP() << "no IPv6 loopback here";
  for (const char* host : {"::1", "[::1]"}) {
    MetricsServer server(host, 0, fixedBody());
    EXPECT_EQ(server.endpoint(), "[::1]:" + std::to_string(server.port()));
    // RFC 3986: an IPv6 host in a URL is bracketed, or the port reads as part of it.
    EXPECT_EQ(server.url(), "http://[::1]:" + std::to_string(server.port()) + "/metrics");
    const HttpResponse response = get(server, "/metrics", "::1");
    EXPECT_EQ(response.status_line, "HTTP/1.1 200 OK");
    EXPECT_EQ(response.body, kBody);
  }
}

TEST(MetricsServer, StopClosesConnectionsAndIsIdempotent) {
  auto server = std::make_unique<MetricsServer>("127.0.0.1", 0, fixedBody());
  const uint16_t port = server->port();
  const Socket idle = connectTo("127.0.0.1", port);
  ASSERT_GE(idle.fd(), 0);
  EXPECT_EQ(get(*server, "/metrics").body, kBody);  // the idle one is accepted by now
  server->stop();
  const Received received = readUntilClosed(idle);
  EXPECT_TRUE(received.closed);
  EXPECT_EQ(received.data, "");
  server->stop();
  EXPECT_LT(connectTo("127.0.0.1", port).fd(), 0);
  server.reset();  // the destructor after stop() is fine too
}

}  // namespace
}  // namespace flowfold
