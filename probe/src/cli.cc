#include "flowfold/probe/cli.h"

#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "flowfold/exporters/mysql_exporter.h"

namespace flowfold {

namespace {

enum LongOnly {
  kOptText = 1000,
  kOptJson,
  kOptIpfixFile,
  kOptCheckConfig,
  kOptVersion,
  kOptExportRate,
  kOptObservationDomain,
  kOptMtu,
  kOptActive,
  kOptIdle,
  kOptLogLevel,
  kOptIpfixEncoder,
  kOptWorkers,
  kOptMysql,
  kOptTunnels,
};

// How the user wrote option `c` (getopt's return value or optopt): "-r" or
// "--mtu". Long-only options have values above 255; printing optopt as a
// char gave a raw byte ("-\xEF").
std::string optionName(int c, const option* longs) {
  if (c > 0 && c < 256 && c != '?' && c != ':') return std::string("-") + static_cast<char>(c);
  for (const option* o = longs; o->name; ++o)
    if (o->val == c) return std::string("--") + o->name;
  return "";
}

uint64_t number(const char* text, const char* what, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  const std::string s = text;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max)
    throw ConfigError(std::string("command line: ") + what + " must be a number in [" + std::to_string(min) + ", " +
                      std::to_string(max) + "], not '" + s + "'");
  return v;
}

uint64_t secondsToMs(const char* text, const char* what) {
  // Accept the same forms as the YAML file by reusing its parser.
  const std::string yaml = std::string("cache:\n  idle_timeout: ") + text + "\n";
  try {
    return parseConfig(yaml, "command line").cache.idle_timeout_ms;
  } catch (const ConfigError&) {
    throw ConfigError(std::string("command line: ") + what + " must be a duration such as 15, 15s or 500ms, not '" +
                      text + "'");
  }
}

}  // namespace

std::string usageText() {
  return R"(Usage: flowfold [options] [BPF filter ...]

Input (one of):
  -r FILE              read a pcap or pcapng capture ('-' = standard input)
  -i IFACE             capture live on an interface (repeatable: one capture each);
                       with neither -r nor -i, the default interface

Export (repeatable; given on the command line they replace the file's exporters):
  -n HOST:PORT         send to a collector ([ADDR]:PORT for IPv6)
  -v 9|10              protocol for -n collectors: 9 = NetFlow v9, 10 = IPFIX (default)
  -P udp|tcp           transport for -n collectors (default udp; tcp is IPFIX only)
  --ipfix-file PATH    write IPFIX to a file (RFC 5655; appended to; - = stdout)
  --text[=FILE]        one readable line per flow (default: standard output)
  --mysql DSN          write flows into MySQL/MariaDB:
                       mysql://USER@HOST:PORT/DATABASE?table=NAME (or ?socket=PATH);
                       the password comes from the config, password_file or
                       FLOWFOLD_MYSQL_PASSWORD, never the command line
  --json[=FILE]        one JSON object per flow
  --export-rate N      at most N datagrams per second per UDP collector
  --observation-domain N  IPFIX observation domain / NetFlow v9 source id
  --mtu N              largest export datagram in bytes (default 1400; 8192 to a
                       collector on loopback)
  --ipfix-encoder E    direct (default; flowfold's own record writer) or libfixbuf
                       (fBufAppend): byte-identical messages, direct is ~10x cheaper

Flow cache:
  -m MAX_FLOWS         most flows kept at once (default 1000000), by the whole
                       probe: each flow cache (one per worker, live one per worker
                       and interface) keeps an equal share, rounded down; the
                       least recently seen is exported early when full
  -t NAME=DURATION     timeouts, softflowd style: active|maxlife=60, idle|general=15
  --active-timeout D   same as -t active=D
  --idle-timeout D     same as -t idle=D
  --workers N          flow-cache threads, sharded by a symmetric flow hash (default 1)

Decoder:
  --tunnels MODE       GRE, ERSPAN, VXLAN, Geneve, GTP-U, IP-in-IP, 6in4 traffic:
                       outer (default; the outer packet, as on the wire), inner
                       (the innermost packet) or both (one flow each)

General:
  -c FILE              YAML configuration (see flowfold.yaml(5))
  --check-config [FILE]  validate the configuration (-c FILE, or FILE) and exit
  --log-level LEVEL    error, warn, info (default) or debug
  -h, --help           this text
  --version            print the version
)";
}

Config parseCommandLine(int argc, char** argv, CommandLine& cl) {
  std::vector<std::string> collectors;
  std::vector<ExporterConfig> extra;
  int version = 10;
  std::string transport = "udp";
  std::string read_file, log_level;
  std::vector<std::string> interfaces;
  int64_t max_flows = -1;
  int64_t active_ms = -1, idle_ms = -1, rate = -1, domain = -1, mtu = -1;
  std::string ipfix_encoder;
  int64_t workers = -1;
  std::string tunnels;

  static const option kLong[] = {
      {"text", optional_argument, nullptr, kOptText},
      {"json", optional_argument, nullptr, kOptJson},
      {"ipfix-file", required_argument, nullptr, kOptIpfixFile},
      {"check-config", no_argument, nullptr, kOptCheckConfig},
      {"version", no_argument, nullptr, kOptVersion},
      {"export-rate", required_argument, nullptr, kOptExportRate},
      {"observation-domain", required_argument, nullptr, kOptObservationDomain},
      {"mtu", required_argument, nullptr, kOptMtu},
      {"active-timeout", required_argument, nullptr, kOptActive},
      {"idle-timeout", required_argument, nullptr, kOptIdle},
      {"log-level", required_argument, nullptr, kOptLogLevel},
      {"ipfix-encoder", required_argument, nullptr, kOptIpfixEncoder},
      {"workers", required_argument, nullptr, kOptWorkers},
      {"mysql", required_argument, nullptr, kOptMysql},
      {"tunnels", required_argument, nullptr, kOptTunnels},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  // 0, not 1: glibc then also forgets where it was inside a cluster of short
  // options ("-x" left half read by an earlier call that threw), which
  // optind = 1 keeps, so a second parse (SIGHUP, tests) read stale text.
  optind = 0;
  opterr = 0;
  int c;
  // '+': stop at the first non-option, which starts the BPF filter.
  // ':': a missing value returns ':' (not '?'), told apart from an unknown option.
  while ((c = getopt_long(argc, argv, "+:r:i:n:v:P:m:t:c:h", kLong, nullptr)) != -1) {
    // An empty value ("-r ''", "--text=") names nothing: taken as "not
    // given", -r '' captured live on the default interface and -c '' read
    // no configuration. Every option's value must be something.
    if (optarg && *optarg == '\0' && c != ':' && c != '?') {
      if (c == kOptText || c == kOptJson)
        throw ConfigError("command line: " + optionName(c, kLong) + "= needs a file name (" + optionName(c, kLong) +
                          " alone writes to standard output)");
      throw ConfigError("command line: " + optionName(c, kLong) + " needs a value, not an empty string");
    }
    switch (c) {
      case 'r': read_file = optarg; break;
      case 'i': interfaces.push_back(optarg); break;
      case 'n': collectors.push_back(optarg); break;
      case 'v':
        if (std::string(optarg) == "9") version = 9;
        else if (std::string(optarg) == "10") version = 10;
        else throw ConfigError(std::string("command line: -v takes 9 (NetFlow v9) or 10 (IPFIX), not '") + optarg + "'");
        break;
      case 'P':
        transport = optarg;
        if (transport != "udp" && transport != "tcp")
          throw ConfigError("command line: -P takes udp or tcp, not '" + transport + "'");
        break;
      case 'm': max_flows = static_cast<int64_t>(number(optarg, "-m MAX_FLOWS", 1, 1u << 30)); break;
      case 't': {
        const std::string t = optarg;
        const auto eq = t.find('=');
        const std::string name = t.substr(0, eq);
        if (eq == std::string::npos) throw ConfigError("command line: -t takes NAME=DURATION, e.g. -t idle=15");
        const uint64_t ms = secondsToMs(t.c_str() + eq + 1, "-t");
        if (name == "active" || name == "maxlife") active_ms = static_cast<int64_t>(ms);
        else if (name == "idle" || name == "general") idle_ms = static_cast<int64_t>(ms);
        else throw ConfigError("command line: unknown timeout '" + name + "' (active/maxlife, idle/general)");
        break;
      }
      case 'c': cl.config_file = optarg; break;
      case 'h': cl.show_help = true; break;
      case kOptVersion: cl.show_version = true; break;
      case kOptCheckConfig: cl.check_config = true; break;
      case kOptText:
      case kOptJson: {
        ExporterConfig e;
        e.type = c == kOptText ? ExporterConfig::Type::kText : ExporterConfig::Type::kJson;
        e.path = optarg ? optarg : "-";
        e.origin = "command line";
        extra.push_back(e);
        break;
      }
      case kOptMysql: {
        ExporterConfig e;
        e.type = ExporterConfig::Type::kMysql;
        e.mysql_dsn = optarg;
        e.origin = "command line";
        try {
          validateMysqlOptions(parseMysqlDsn(e.mysql_dsn));
        } catch (const std::invalid_argument& ex) {
          throw ConfigError(std::string("command line: --mysql: ") + ex.what());
        }
        extra.push_back(e);
        break;
      }
      case kOptIpfixFile: {
        ExporterConfig e;
        e.type = ExporterConfig::Type::kIpfix;
        e.transport = ExporterConfig::Transport::kFile;
        e.path = optarg;
        e.origin = "command line";
        extra.push_back(e);
        break;
      }
      case kOptExportRate: rate = static_cast<int64_t>(number(optarg, "--export-rate", 0, 100'000'000)); break;
      case kOptObservationDomain:
        domain = static_cast<int64_t>(number(optarg, "--observation-domain", 0, UINT32_MAX));
        break;
      case kOptMtu: mtu = static_cast<int64_t>(number(optarg, "--mtu", 256, 65'000)); break;
      case kOptActive: active_ms = static_cast<int64_t>(secondsToMs(optarg, "--active-timeout")); break;
      case kOptIdle: idle_ms = static_cast<int64_t>(secondsToMs(optarg, "--idle-timeout")); break;
      case kOptLogLevel: log_level = optarg; break;
      case kOptWorkers: workers = static_cast<int64_t>(number(optarg, "--workers", 1, 64)); break;
      case kOptTunnels: {
        probe::TunnelMode mode;
        tunnels = optarg;
        if (!probe::parseTunnelMode(tunnels, mode))
          throw ConfigError("command line: --tunnels takes outer, inner or both, not '" + tunnels + "'");
        break;
      }
      case kOptIpfixEncoder:
        ipfix_encoder = optarg;
        if (ipfix_encoder != "libfixbuf" && ipfix_encoder != "direct")
          throw ConfigError("command line: --ipfix-encoder takes libfixbuf or direct, not '" + ipfix_encoder + "'");
        break;
      case ':':
        throw ConfigError("command line: " + optionName(optopt, kLong) + " needs a value (see flowfold --help)");
      case '?':
      default: {
        std::string typed = argv[optind - 1];
        if (typed.compare(0, 2, "--") != 0)  // a short option: optopt is its letter
          throw ConfigError("command line: unknown option -" + std::string(1, static_cast<char>(optopt)) +
                            " (see flowfold --help)");
        typed.resize(std::min(typed.find('='), typed.size()));
        // A known long option sets optopt: it was given a value it does not take ("--version=1").
        if (optopt != 0) throw ConfigError("command line: " + typed + " takes no value (see flowfold --help)");
        throw ConfigError("command line: unknown option " + typed + " (see flowfold --help)");
      }
    }
  }

  // `flowfold --check-config FILE` (as packagers and admins type it) names
  // the file to check rather than a capture filter.
  if (cl.check_config && cl.config_file.empty() && optind == argc - 1 && access(argv[optind], R_OK) == 0) {
    cl.config_file = argv[optind++];
  }
  Config config;
  if (!cl.config_file.empty()) config = loadConfigFile(cl.config_file);

  std::string filter;
  for (int i = optind; i < argc; ++i) filter += (filter.empty() ? "" : " ") + std::string(argv[i]);
  if (!filter.empty()) config.bpf_filter = filter;
  if (!read_file.empty() && !interfaces.empty())
    throw ConfigError("command line: -r FILE and -i IFACE are two inputs; choose one");
  if (!read_file.empty()) {
    config.read_file = read_file;
    config.interfaces.clear();
  }
  if (!interfaces.empty()) {
    config.interfaces = interfaces;
    config.read_file.clear();
  }
  if (max_flows >= 0) config.cache.max_flows = static_cast<uint32_t>(max_flows);
  if (workers >= 0) config.workers = static_cast<uint32_t>(workers);
  if (!tunnels.empty()) probe::parseTunnelMode(tunnels, config.tunnels);
  if (active_ms >= 0) config.cache.active_timeout_ms = static_cast<uint64_t>(active_ms);
  if (idle_ms >= 0) config.cache.idle_timeout_ms = static_cast<uint64_t>(idle_ms);
  if (!log_level.empty()) {
    if (log_level != "error" && log_level != "warn" && log_level != "info" && log_level != "debug")
      throw ConfigError("command line: --log-level takes error, warn, info or debug");
    config.log_level = log_level;
  }

  if (version == 9 && transport == "tcp")
    throw ConfigError("command line: NetFlow v9 is exported over UDP only (-v 9 with -P tcp)");
  std::vector<ExporterConfig> cli_exporters;
  for (const auto& collector : collectors) {
    ExporterConfig e;
    e.type = version == 9 ? ExporterConfig::Type::kNetflow9 : ExporterConfig::Type::kIpfix;
    e.transport = transport == "tcp" ? ExporterConfig::Transport::kTcp : ExporterConfig::Transport::kUdp;
    e.origin = "command line";
    parseHostPort(collector, e.host, e.port, "command line: -n");
    cli_exporters.push_back(e);
  }
  cli_exporters.insert(cli_exporters.end(), extra.begin(), extra.end());
  if (!cli_exporters.empty()) config.exporters = cli_exporters;
  for (auto& e : config.exporters) {
    if (rate >= 0) e.rate_limit = static_cast<uint64_t>(rate);
    if (domain >= 0) e.observation_domain = static_cast<uint32_t>(domain);
    if (mtu >= 0) e.mtu = static_cast<uint32_t>(mtu);
    if (!ipfix_encoder.empty())
      e.ipfix_encoder = ipfix_encoder == "direct" ? ExporterConfig::IpfixEncoder::kDirect
                                                  : ExporterConfig::IpfixEncoder::kLibfixbuf;
  }
  return config;
}

}  // namespace flowfold
