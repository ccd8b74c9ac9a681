#pragma once
// flowfold's configuration: a YAML file (-c) plus command-line overrides.
// Start-up errors are exceptions (ConfigError) carrying file:line:column;
// main prints the one line and exits with kExitUsage.

#include <cstdint>
#include <optional>
#include <utility>
#include <variant>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/exporters/ipfix_options.h"
#include "flowfold/flowcache/sampler.h"
#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "flowfold/exporters/netflow9_options.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/exporters/text_options.h"
#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/flowcache/sampler.h"
#include "flowfold/recorder/recorder_options.h"
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

/// One exporter of the configuration: its kind and its own options, the
/// options struct of its exporter library, filled by that library's settings
/// table (ipfixSettings(), netflow9Settings(), textSettings(); a MySQL sink's
/// keys by setMysqlOption()), with the exporter's own defaults.
struct ExporterConfig {
  enum class Type { kIpfix, kNetflow9, kText, kJson, kMysql };
  using Options = std::variant<IpfixOptions, NetflowV9Options, TextOptions, MysqlOptions>;
  Type type = Type::kIpfix;
  Options options;
  std::string origin;  // "file:line:col" or "command line", for messages

  /// An exporter of this kind with its defaults (json: TextOptions in JSON).
  static ExporterConfig ofType(Type type, std::string origin);
  template <class O>
  O& as() { return std::get<O>(options); }
  template <class O>
  const O& as() const { return std::get<O>(options); }

  std::string describe() const;
  /// The file it writes ("-" = standard output); "" when it sends to a
  /// collector or a database.
  std::string outputPath() const;
  /// The rotation of a file output; nullptr for an exporter without one.
  const RotationOptions* rotation() const;
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
  // Packet sampling (`sampling: N`, `sampling_mode`): one packet in N goes on
  // to the decoder and the cache (sampler.h); the rate goes to the collectors
  // in options data.
  SamplingOptions sampling;
  // Flow-cache workers. File: one reader routes packets to N workers by a
  // symmetric flow hash. Live: N captures per interface in a PACKET_FANOUT
  // group (the kernel's symmetric flow hash). 1 = one thread does it all.
  uint32_t workers = 1;
  // Application labels from nDPI (`dpi: true`, --dpi): every flow inspected
  // on its first packets; README "Applications (DPI)".
  bool dpi = false;
  std::vector<ExporterConfig> exporters;
  // The monitored networks (`local_networks:`, --local-networks): set, each
  // exporter gives a flow its direction relative to them (flowDirection 61,
  // `direction`); empty, no direction is exported (local_networks.h).
  LocalNetworks local_networks;

  // The packet recorder (`recorder:`, --record DIR): off without a directory.
  recorder::RecorderOptions recorder;
  std::string recorder_origin;  // "file:line:col" of `recorder:`, for messages

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
  /// The snap length a live capture opens with: `snaplen`, or whole packets
  /// when the recorder keeps them (recorder.snaplen) or DPI reads them
  /// (kDpiSnaplen: nDPI skips a packet cut short of its IP length).
  uint32_t liveSnaplen() const;
  static constexpr uint32_t kDpiSnaplen = 65535;
  /// The recorder's options as a recorder takes them: with the decoder's
  /// tunnel mode, so that its index keys the flows the cache keys.
  recorder::RecorderOptions recorderOptions() const;
};

/// Parses a YAML configuration file. Throws ConfigError("FILE:LINE:COL: ...").
Config loadConfigFile(const std::string& path);
/// Parses YAML text (name is used in messages).
Config parseConfig(const std::string& yaml_text, const std::string& name);

/// Parses "HOST:PORT" / "[V6]:PORT"; throws ConfigError naming `origin`.
void parseHostPort(const std::string& text, std::string& host, std::string& port, const std::string& origin);

/// geteuid() == 0.
bool runningAsRoot();

/// MySQL accounting counts each interval's packets exactly only when no
/// record spans an interval boundary: sets cache.split_interval, when unset,
/// to the greatest common divisor of the accounting intervals (and says so,
/// through `notes`); throws ConfigError when a set one does not divide each.
void splitAtAccountingIntervals(Config& config, std::vector<std::string>* notes = nullptr);

/// Empty, or why a flow cache that splits at `running_split_ms` (kept across
/// a reload) cannot serve the accounting intervals of `fresh`.
std::string accountingSplitMismatch(const Config& fresh, uint64_t running_split_ms);

/// Checks cross-field rules and what a run would otherwise refuse only after
/// opening its capture: exporters present, one kind of input, max_flows
/// against the flow caches, `user:`/`group:` exist and are not root, a live
/// run as root has a user to become. Throws ConfigError. Returns warnings
/// (settings the run will ignore) for the caller to log.
std::vector<std::string> validateConfig(const Config& config, bool running_as_root = runningAsRoot());

}  // namespace flowfold
