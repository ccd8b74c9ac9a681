#pragma once
// Prometheus metrics: a small exposition model, its renderer (text format
// 0.0.4) and a loopback HTTP endpoint that serves it. Boost.Asio stays inside
// the library; nothing of it is in this header.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace flowfold {

/// One time series of a family: its labels and its current value.
/// Counters are uint64_t and print exactly (all 20 digits, never an exponent);
/// a double prints in its shortest round-trip form, with NaN, +Inf, -Inf.
/// Write integer literals with a u suffix (`5u`) or `uint64_t{5}`: a plain
/// int converts to neither alternative.
struct MetricSample {
  /// Rendered in this order. Names must match [a-zA-Z_][a-zA-Z0-9_]* and be
  /// distinct within the sample; values are any UTF-8 text (escaped on output).
  std::vector<std::pair<std::string, std::string>> labels;
  std::variant<uint64_t, double> value = uint64_t{0};
};

/// One metric family: `# HELP`, `# TYPE` and one line per sample.
struct MetricFamily {
  enum class Type { kCounter, kGauge };

  /// [a-zA-Z_:][a-zA-Z0-9_:]*. Counters are conventionally named `..._total`
  /// (not enforced: format 0.0.4 does not require it).
  std::string name;
  /// Free text; the `# HELP` line is left out when empty.
  std::string help;
  Type type = Type::kGauge;
  /// Zero samples is allowed (HELP and TYPE only). Two samples with the same
  /// label set are rejected.
  std::vector<MetricSample> samples;
};

/// True when name is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*.
bool isValidMetricName(std::string_view name);
/// True when name is a valid label name: [a-zA-Z_][a-zA-Z0-9_]*.
bool isValidLabelName(std::string_view name);

/// Renders families in the Prometheus text exposition format 0.0.4, in the
/// given order, each line ending in '\n' (empty input gives ""). Label values
/// escape backslash, double quote and newline; HELP text escapes backslash and
/// newline. No timestamps.
/// Throws std::invalid_argument naming the offender on an invalid metric or
/// label name, a duplicate family name, a label repeated within a sample or a
/// label set repeated within a family.
std::string renderPrometheus(const std::vector<MetricFamily>& families);

/// Limits and policy for MetricsServer; the defaults suit a probe.
struct MetricsServerOptions {
  /// Binding anything but a loopback address (127.0.0.0/8, ::1,
  /// ::ffff:127.x.y.z) must be asked for explicitly.
  bool allow_non_loopback = false;
  /// A connection must deliver its whole request within this long, and take
  /// the whole response within this long again; otherwise it is closed.
  /// Once it has the response it is closed within half a second (or this
  /// long, if shorter) even if the client keeps it open.
  std::chrono::milliseconds request_timeout{5000};
  /// A request whose headers do not end within this many bytes gets a 431
  /// and is closed.
  size_t max_request_bytes = 8192;
  /// Connections open at once. A newcomer beyond that is not refused: the
  /// oldest connection that already has its response is closed to make room,
  /// else the one that has been sending its request the longest; one that is
  /// being sent its response keeps its slot.
  size_t max_connections = 64;
};

/// A minimal HTTP/1.1 (and 1.0) server for Prometheus scrapes, running
/// Boost.Asio on its own thread (named "ff-metrics") with every connection
/// handled asynchronously, so a slow or silent client does not hold up the
/// others, and a bounded number of slots that such clients cannot hold.
///
///   GET/HEAD /metrics  200, Content-Type: text/plain; version=0.0.4; charset=utf-8
///   GET/HEAD /         200, a small HTML page linking /metrics
///   other paths        404
///   other methods      405 (with Allow: GET, HEAD), whatever the path
///   bad request line   400; HTTP/2+ 505; headers over max_request_bytes 431
///
/// Every response carries Content-Length and Connection: close; one request
/// per connection. A query string is ignored (`/metrics?x` is `/metrics`).
class MetricsServer {
 public:
  /// Called on the server thread for each scrape of /metrics (GET and HEAD);
  /// it must be thread-safe with respect to whatever it reads, and should be
  /// quick: the server serves one body at a time. If it throws, the scrape
  /// gets a 500 with the exception's text.
  using BodyProvider = std::function<std::string()>;

  /// Binds host:port and starts serving before returning. host is an IPv4 or
  /// IPv6 literal ("127.0.0.1", "::1", "[::1]"); port 0 picks a free port
  /// (see port()).
  /// Throws std::invalid_argument when host is not loopback and
  /// options.allow_non_loopback is false, or body is empty; throws
  /// std::runtime_error naming host:port when host is not an IP address or
  /// the socket cannot be bound (port in use, address not on this machine).
  MetricsServer(const std::string& host, uint16_t port, BodyProvider body,
                MetricsServerOptions options = {});
  /// Same as stop().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The bound port (the kernel's pick when constructed with 0).
  uint16_t port() const;
  /// The bound endpoint for logs: "127.0.0.1:9100" or "[::1]:9100".
  const std::string& endpoint() const;
  /// The scrape URL for logs: "http://127.0.0.1:9100/metrics",
  /// "http://[::1]:9100/metrics" (an IPv6 host in brackets, RFC 3986).
  std::string url() const;

  /// Closes the listener and every open connection, then joins the server
  /// thread. Idempotent; callable from any thread except from inside the
  /// body provider.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowfold
