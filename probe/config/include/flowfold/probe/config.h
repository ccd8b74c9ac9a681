#pragma once
// flowfold's configuration: a YAML file (-c) plus command-line overrides.
// Start-up errors are exceptions (ConfigError) carrying file:line:column;
// main prints the one line and exits with kExitUsage.

#include <cstdint>
#include <optional>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/probe/decoder.h"

namespace flowfold {

/// Documented exit statuses (see README "Exit status").
enum ExitStatus : int {
  kExitOk = 0,
  kExitRuntime = 1,     // a runtime failure (an exporter could not start, ...)
  kExitUsage = 2,       // bad command line or configuration
  kExitInput = 3,       // the capture could not be opened or is not a capture
  kExitTruncated = 4,   // the capture ended mid-record: what was read was exported
  kExitExportLoss = 5,  // the input was read whole, but an exporter lost records (see stats)
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ExporterConfig {
  static constexpr uint32_t kDefaultMtu = 1400;
  static constexpr uint32_t kLoopbackMtu = 8192;
  enum class Type { kIpfix, kNetflow9, kText, kJson, kMysql };
  enum class Transport { kUdp, kTcp, kFile };
  Type type = Type::kIpfix;
  Transport transport = Transport::kUdp;
  std::string host;  // collector, for udp/tcp
  std::string port;
  std::string path;  // for file transport and text/json ("-" = stdout)
  uint32_t observation_domain = 0;  // IPFIX observation domain / v9 source id
  // Largest datagram / message in bytes; 0 = automatic: 1400 (safe on any
  // path), or 8192 when the collector is on loopback, where no path MTU
  // applies and every datagram costs a full trip through the kernel's
  // network stack (a large share of the probe's CPU at 1400 bytes). Not more:
  // collectors read into fixed buffers and cut what is longer (pmacct's
  // nfacctd 1.7 at 10000 bytes, GoFlow2 at 9000), which loses the records.
  uint32_t mtu = 0;
  uint64_t template_refresh_ms = 60'000;
  uint32_t template_refresh_packets = 20;
  // Datagrams per second over UDP (0 = unlimited). A capture file can expire a
  // million flows at once; unpaced, a collector's socket buffer overflows and
  // drops them silently. 20000/s is ~500k flow records/s.
  uint64_t rate_limit = 20'000;
  // IPFIX over TCP: MiB of messages held while the collector is down or
  // stalled (beyond it the oldest are dropped, counted).
  uint32_t tcp_buffer_mb = 64;
  // File outputs (IPFIX file, text, JSON): one file per interval, named by its
  // start time, and caps on the files kept (rotate, max_files, max_age). The
  // exporters' own type: see rotating_output.h.
  RotationOptions rotation;
  // IPFIX record encoding: flowfold's own writer or libfixbuf's fBufAppend
  // (`encoder:`, --ipfix-encoder); unset, the exporter's default
  // (IpfixOptions::encoder, the direct writer).
  enum class IpfixEncoder { kLibfixbuf, kDirect };
  std::optional<IpfixEncoder> ipfix_encoder;
  // MySQL/MariaDB sink: a DSN (mysql://USER@HOST:PORT/DB?table=T) and/or
  // settings by name (see mysql_exporter.h), applied in order over it.
  std::string mysql_dsn;
  std::vector<std::pair<std::string, std::string>> mysql_settings;
  std::string origin;       // "file:line:col" or "command line", for messages

  std::string describe() const;
  /// The mtu to use: the configured one, or the automatic choice above.
  uint32_t effectiveMtu() const;
};

struct Config {
  // input
  std::string read_file;  // -r; "-" = stdin
  // Live capture (when no file is given): one capture per interface; empty
  // means the system's default interface (the first one up with an address).
  std::vector<std::string> interfaces;
  std::string bpf_filter;
  uint32_t snaplen = 256;
  bool promiscuous = true;
  uint64_t buffer_size = 64ull << 20;

  // decoder: how tunnelled packets are accounted (README "Tunnels"): the
  // outer packet (default: what the wire carried), the innermost one, or both.
  probe::TunnelMode tunnels = probe::TunnelMode::kOuter;

  FlowCacheOptions cache;
  // Flow-cache workers. File: one reader routes packets to N workers by a
  // symmetric flow hash. Live: N captures per interface in a PACKET_FANOUT
  // group (the kernel's symmetric flow hash). 1 = one thread does it all.
  uint32_t workers = 1;
  std::vector<ExporterConfig> exporters;
  // The monitored networks (`local_networks:`, --local-networks): set, each
  // exporter gives a flow its direction relative to them (flowDirection 61,
  // `direction`); empty, no direction is exported (local_networks.h).
  LocalNetworks local_networks;

  // pipeline
  uint32_t export_batch = 4096;       // records per hand-off to the export thread
  uint32_t export_queue_batches = 64;  // bound of the export queue
  // Live: how long a stop (SIGTERM, SIGINT) waits for the exporters to take
  // the flows of the cache; below the unit's TimeoutStopSec (60 s).
  uint64_t stop_timeout_ms = 45'000;

  // Privileges: live capture opens as root (or with CAP_NET_RAW/NET_ADMIN),
  // then runs as this user before any exporter or file is touched.
  std::string user;          // empty: "flowfold" when that user exists
  std::string group;         // empty: the user's primary group
  std::string user_origin, group_origin;  // "file:line:col" when set by the file, for messages
  bool run_as_root = false;  // allow staying root (refused otherwise)

  // Prometheus metrics over HTTP; empty = off.
  std::string metrics_listen;       // "127.0.0.1:9108"
  std::string metrics_listen_origin;  // "file:line:col", for messages
  bool metrics_allow_remote = false;  // permit a non-loopback address

  std::string log_level = "info";
  bool log_syslog = false;  // syslog (daemon facility) instead of stderr
  uint64_t stats_interval_s = 0;  // 0 = only the final summary
  std::string config_path;        // where it came from, for messages

  bool live() const { return read_file.empty(); }
  /// Flow caches the run builds: one per worker for a file; live, one per
  /// worker on each interface (the default interface counts as one).
  uint32_t flowCacheCount() const;
  /// Each cache's share of cache.max_flows, rounded down, so that the whole
  /// probe keeps at most max_flows (validateConfig refuses fewer flows than
  /// caches).
  uint32_t maxFlowsPerCache() const;
};

/// Parses a YAML configuration file. Throws ConfigError("FILE:LINE:COL: ...").
Config loadConfigFile(const std::string& path);
/// Parses YAML text (name is used in messages).
Config parseConfig(const std::string& yaml_text, const std::string& name);

/// Parses "HOST:PORT" / "[V6]:PORT"; throws ConfigError naming `origin`.
void parseHostPort(const std::string& text, std::string& host, std::string& port, const std::string& origin);

/// geteuid() == 0.
bool runningAsRoot();

/// Checks cross-field rules and what a run would otherwise refuse only after
/// opening its capture: exporters present, one kind of input, max_flows
/// against the flow caches, `user:`/`group:` exist and are not root, a live
/// run as root has a user to become. Throws ConfigError. Returns warnings
/// (settings the run will ignore) for the caller to log.
std::vector<std::string> validateConfig(const Config& config, bool running_as_root = runningAsRoot());

}  // namespace flowfold
