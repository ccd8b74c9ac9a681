#include "flowfold/probe/cli.h"

#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "flowfold/log.h"
#include "flowfold/probe/settings.h"

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
  kOptTcpEnd,
  kOptLogLevel,
  kOptIpfixEncoder,
  kOptWorkers,
  kOptMysql,
  kOptTunnels,
  kOptLocalNetworks,
  kOptRecord,
  kOptRecordSize,
  kOptSampling,
  kOptSamplingMode,
  kOptSplitInterval,
  kOptDpi,
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

// How messages name an option: -m with its value, the rest as typed.
std::string optionWhat(std::string_view option) {
  return option == "-m" ? "-m MAX_FLOWS" : std::string(option);
}

// Reads an option's value as its table entry says, the fault in the command
// line's words: "command line: --workers must be a number in [1, 64], not '0'".
SettingValue optionValue(const ValueSpec& spec, const std::string& text, const std::string& what) {
  try {
    // The command line has always read "010" as ten (no YAML reader takes it
    // for octal here): its leading zeros are dropped, not refused.
    const bool whole = spec.kind == ValueSpec::Kind::kWhole && !text.empty();
    return parseSettingValue(spec, whole ? text.substr(std::min(text.find_first_not_of('0'), text.size() - 1)) : text);
  } catch (const ValueError&) {
    switch (spec.kind) {
      case ValueSpec::Kind::kWhole:
        throw ConfigError("command line: " + what + " must be a number in [" + std::to_string(spec.min) + ", " +
                          std::to_string(spec.max) + "], not '" + text + "'");
      case ValueSpec::Kind::kDuration:
        throw ConfigError("command line: " + what + " must be a duration such as 15, 15s or 500ms, not '" + text +
                          "'");
      case ValueSpec::Kind::kBytes:
        throw ConfigError("command line: " + what + " must be a size between " + std::to_string(spec.min) + " and " +
                          std::to_string(spec.max) + " bytes, such as 500G or 64M, not '" + text + "'");
      case ValueSpec::Kind::kChoice: {
        std::string list;
        for (size_t i = 0; i < spec.choices.size(); ++i)
          list += (i == 0 ? "" : i + 1 == spec.choices.size() ? " or " : ", ") + std::string(spec.choices[i]);
        if (what == "--log-level") throw ConfigError("command line: --log-level takes " + list);
        throw ConfigError("command line: " + what + " takes " + list + ", not '" + text + "'");
      }
      default: throw ConfigError("command line: " + what + ": bad value '" + text + "'");
    }
  }
}

// What the command line says, read whole before the configuration file is
// loaded, then applied over it.
struct CommandLineSettings {
  std::string read_file;
  std::vector<std::string> interfaces;
  std::vector<std::string> collectors;  // -n, with -v and -P
  int version = 10;
  std::string transport = "udp";
  std::vector<ExporterConfig> outputs;  // --text, --json, --ipfix-file, --mysql
  std::optional<LocalNetworks> local_networks;  // --local-networks (replaces the file's)
  std::vector<std::string> record_directories;  // --record (replace the file's)
  bool dpi = false;                             // --dpi
  // Settings of the tables, in the order given (the last one wins).
  std::vector<std::pair<const Setting<Config>*, SettingValue>> probe;
  // Exporter settings (key, value as written), for every exporter that has them.
  std::vector<std::pair<std::string_view, std::string>> exporter;
  int first_operand = 0;  // the BPF filter starts here
};

// A setting of the tables: true when `option` is one.
bool takeTableOption(const std::string& option, const char* value, CommandLineSettings& s) {
  if (const auto* setting = probeSettingForOption(option)) {
    s.probe.emplace_back(setting, optionValue(setting->value, value, optionWhat(option)));
    return true;
  }
  if (const auto setting = exporterOption(option)) {
    optionValue(setting->value, value, optionWhat(option));  // refused here, in the command line's words
    s.exporter.emplace_back(setting->key, value);
    return true;
  }
  return false;
}

// -t NAME=DURATION, softflowd's spelling of the cache timeouts.
void takeTimeout(const std::string& t, CommandLineSettings& s) {
  const auto eq = t.find('=');
  const std::string name = t.substr(0, eq);
  if (eq == std::string::npos) throw ConfigError("command line: -t takes NAME=DURATION, e.g. -t idle=15");
  const Setting<Config>* setting = nullptr;
  if (name == "active" || name == "maxlife") setting = probeSetting("cache", "active_timeout");
  else if (name == "idle" || name == "general") setting = probeSetting("cache", "idle_timeout");
  else if (name == "tcp_end") setting = probeSetting("cache", "tcp_end_timeout");
  // The value first: "-t bogus=x" was a bad duration before it was a bad name.
  const SettingValue value =
      optionValue((setting ? setting : probeSetting("cache", "idle_timeout"))->value, t.substr(eq + 1), "-t");
  if (!setting)
    throw ConfigError("command line: unknown timeout '" + name + "' (active/maxlife, idle/general, tcp_end)");
  s.probe.emplace_back(setting, value);
}

ExporterConfig commandLineExporter(ExporterConfig::Type type) {
  return ExporterConfig::ofType(type, "command line");
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
                       FLOWFOLD_MYSQL_PASSWORD, never the command line;
                       &accounting_interval=5m adds per-host accounting tables
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
  -t NAME=DURATION     timeouts, softflowd style: active|maxlife=60, idle|general=15,
                       tcp_end=10 (a TCP flow stays this long after its FIN or
                       RST for the closing packets; 0 = ends at the FIN or RST)
  --active-timeout D   same as -t active=D
  --idle-timeout D     same as -t idle=D
  --tcp-end-timeout D  same as -t tcp_end=D
  --split-interval D   no record spans a multiple of D (e.g. 1m, UTC-aligned): a
                       flow across a boundary is reported up to it (flowEndReason 2)
                       and continues in a new record; 0 (default) = off
  --workers N          flow-cache threads, sharded by a symmetric flow hash (default 1)
  --sampling N         meter one packet in N (default 1: every packet); records
                       keep the raw counts, the rate goes to the collectors in
                       options data (see flowfold.yaml(5) "sampling")
  --sampling-mode M    count (default: the 1st packet of every N) or random
                       (each packet with probability 1/N)

Direction:
  --local-networks CIDR[,CIDR...]  the monitored networks (IPv4 and IPv6, repeatable);
                       each flow gets a direction relative to them: egress from a
                       local source to a remote destination, ingress the other way
                       (flowDirection 61); none between two local or two remote
                       addresses. Unset, no direction is exported

Packet recording:
  --record DIR         keep every captured packet in a ring of pcap files in DIR
                       (repeatable: directories on several disks, written in turn);
                       see flowfold.yaml(5) "recorder"
  --record-size SIZE   most the ring takes, e.g. 500G (the oldest files go first;
                       without it, the ring stops short of 5% free space)
  (flowfold extract --ring DIR ... -w FILE [BPF]: the packets of a time range and
   a filter out of the ring; see flowfold(8) EXTRACT and flowfold extract --help)

Applications:
  --dpi                label each flow with its application (nDPI): TLS.YouTube,
                       its category and server name, to every exporter; see
                       flowfold.yaml(5) "dpi"

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

namespace {

const option kLong[] = {
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
    {"tcp-end-timeout", required_argument, nullptr, kOptTcpEnd},
    {"log-level", required_argument, nullptr, kOptLogLevel},
    {"ipfix-encoder", required_argument, nullptr, kOptIpfixEncoder},
    {"workers", required_argument, nullptr, kOptWorkers},
    {"mysql", required_argument, nullptr, kOptMysql},
    {"tunnels", required_argument, nullptr, kOptTunnels},
    {"local-networks", required_argument, nullptr, kOptLocalNetworks},
    {"record", required_argument, nullptr, kOptRecord},
    {"record-size", required_argument, nullptr, kOptRecordSize},
    {"sampling", required_argument, nullptr, kOptSampling},
    {"sampling-mode", required_argument, nullptr, kOptSamplingMode},
    {"split-interval", required_argument, nullptr, kOptSplitInterval},
    {"dpi", no_argument, nullptr, kOptDpi},
    {"help", no_argument, nullptr, 'h'},
    {nullptr, 0, nullptr, 0},
};

// An empty value ("-r ''", "--text=") names nothing: taken as "not given",
// -r '' captured live on the default interface and -c '' read no
// configuration. Every option's value must be something.
void refuseEmptyValue(int c) {
  if (!optarg || *optarg != '\0' || c == ':' || c == '?') return;
  if (c == kOptText || c == kOptJson)
    throw ConfigError("command line: " + optionName(c, kLong) + "= needs a file name (" + optionName(c, kLong) +
                      " alone writes to standard output)");
  throw ConfigError("command line: " + optionName(c, kLong) + " needs a value, not an empty string");
}

// An option getopt did not take: unknown, or given a value it does not take.
[[noreturn]] void refuseUnknown(char** argv) {
  std::string typed = argv[optind - 1];
  if (typed.compare(0, 2, "--") != 0)  // a short option: optopt is its letter
    throw ConfigError("command line: unknown option -" + std::string(1, static_cast<char>(optopt)) +
                      " (see flowfold --help)");
  typed.resize(std::min(typed.find('='), typed.size()));
  // A known long option sets optopt: it was given a value it does not take ("--version=1").
  if (optopt != 0) throw ConfigError("command line: " + typed + " takes no value (see flowfold --help)");
  throw ConfigError("command line: unknown option " + typed + " (see flowfold --help)");
}

ExporterConfig mysqlOutput(const char* dsn) {
  ExporterConfig e = commandLineExporter(ExporterConfig::Type::kMysql);
  try {
    e.as<MysqlOptions>() = parseMysqlDsn(dsn);
    validateMysqlOptions(e.as<MysqlOptions>());
  } catch (const std::invalid_argument& ex) {
    throw ConfigError(std::string("command line: --mysql: ") + ex.what());
  }
  return e;
}

// One option that is not a setting of the tables.
void takeOption(int c, char** argv, CommandLineSettings& s, CommandLine& cl) {
  switch (c) {
    case 'r': s.read_file = optarg; break;
    case 'i': s.interfaces.push_back(optarg); break;
    case 'n': s.collectors.push_back(optarg); break;
    case 'v':
      if (std::string(optarg) == "9") s.version = 9;
      else if (std::string(optarg) == "10") s.version = 10;
      else throw ConfigError(std::string("command line: -v takes 9 (NetFlow v9) or 10 (IPFIX), not '") + optarg + "'");
      break;
    case 'P':
      s.transport = optarg;
      if (s.transport != "udp" && s.transport != "tcp")
        throw ConfigError("command line: -P takes udp or tcp, not '" + s.transport + "'");
      break;
    case 't': takeTimeout(optarg, s); break;
    case 'c': cl.config_file = optarg; break;
    case 'h': cl.show_help = true; break;
    case kOptVersion: cl.show_version = true; break;
    case kOptCheckConfig: cl.check_config = true; break;
    case kOptText:
    case kOptJson: {
      ExporterConfig e = commandLineExporter(c == kOptText ? ExporterConfig::Type::kText : ExporterConfig::Type::kJson);
      e.as<TextOptions>().path = optarg ? optarg : "-";
      s.outputs.push_back(e);
      break;
    }
    case kOptMysql: s.outputs.push_back(mysqlOutput(optarg)); break;
    case kOptRecord: s.record_directories.push_back(optarg); break;
    case kOptDpi: s.dpi = true; break;
    case kOptLocalNetworks: {
      // CIDR[,CIDR...]; given again, the lists add up.
      if (!s.local_networks) s.local_networks.emplace();
      std::string_view rest = optarg;
      while (true) {
        const size_t comma = rest.find(',');
        const std::string_view one = rest.substr(0, comma);
        const std::string error = s.local_networks->add(one);
        if (!error.empty()) throw ConfigError("command line: --local-networks: " + error);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      break;
    }
    case kOptIpfixFile: {
      ExporterConfig e = commandLineExporter(ExporterConfig::Type::kIpfix);
      e.as<IpfixOptions>().transport = IpfixOptions::Transport::kFile;
      e.as<IpfixOptions>().path = optarg;
      s.outputs.push_back(e);
      break;
    }
    case ':': throw ConfigError("command line: " + optionName(optopt, kLong) + " needs a value (see flowfold --help)");
    default: refuseUnknown(argv);
  }
}

CommandLineSettings readOptions(int argc, char** argv, CommandLine& cl) {
  CommandLineSettings s;
  // 0, not 1: glibc then also forgets where it was inside a cluster of short
  // options ("-x" left half read by an earlier call that threw), which
  // optind = 1 keeps, so a second parse (SIGHUP, tests) read stale text.
  optind = 0;
  opterr = 0;
  int c;
  // '+': stop at the first non-option, which starts the BPF filter.
  // ':': a missing value returns ':' (not '?'), told apart from an unknown option.
  while ((c = getopt_long(argc, argv, "+:r:i:n:v:P:m:t:c:h", kLong, nullptr)) != -1) {
    refuseEmptyValue(c);
    if (c != ':' && c != '?' && takeTableOption(optionName(c, kLong), optarg, s)) continue;
    takeOption(c, argv, s, cl);
  }
  s.first_operand = optind;
  return s;
}

// The configuration file, when one is named. `flowfold --check-config FILE`
// (as packagers and admins type it) names the file to check rather than a
// capture filter.
Config loadNamedConfig(int argc, char** argv, CommandLineSettings& s, CommandLine& cl) {
  if (cl.check_config && cl.config_file.empty() && s.first_operand == argc - 1 &&
      access(argv[s.first_operand], R_OK) == 0) {
    cl.config_file = argv[s.first_operand++];
  }
  return cl.config_file.empty() ? Config{} : loadConfigFile(cl.config_file);
}

void applyInput(int argc, char** argv, const CommandLineSettings& s, Config& config) {
  std::string filter;
  for (int i = s.first_operand; i < argc; ++i) filter += (filter.empty() ? "" : " ") + std::string(argv[i]);
  if (!filter.empty()) config.bpf_filter = filter;
  if (!s.read_file.empty() && !s.interfaces.empty())
    throw ConfigError("command line: -r FILE and -i IFACE are two inputs; choose one");
  if (s.local_networks) config.local_networks = *s.local_networks;
  if (!s.record_directories.empty()) config.recorder.directories = s.record_directories;
  if (s.dpi) config.dpi = true;
  if (!s.read_file.empty()) {
    config.read_file = s.read_file;
    config.interfaces.clear();
  }
  if (!s.interfaces.empty()) {
    config.interfaces = s.interfaces;
    config.read_file.clear();
  }
}

// -n HOST:PORT, with -v and -P.
ExporterConfig collectorExporter(const CommandLineSettings& s, const std::string& collector) {
  std::string host, port;
  parseHostPort(collector, host, port, "command line: -n");
  if (s.version == 9) {
    ExporterConfig e = commandLineExporter(ExporterConfig::Type::kNetflow9);
    e.as<NetflowV9Options>().host = host;
    e.as<NetflowV9Options>().port = port;
    return e;
  }
  ExporterConfig e = commandLineExporter(ExporterConfig::Type::kIpfix);
  auto& o = e.as<IpfixOptions>();
  o.transport = s.transport == "tcp" ? IpfixOptions::Transport::kTcp : IpfixOptions::Transport::kUdp;
  o.host = host;
  o.port = port;
  return e;
}

// Exporters given on the command line replace the file's; the exporter
// settings given apply to every exporter.
void applyExporters(const CommandLineSettings& s, Config& config) {
  if (s.version == 9 && s.transport == "tcp")
    throw ConfigError("command line: NetFlow v9 is exported over UDP only (-v 9 with -P tcp)");
  std::vector<ExporterConfig> exporters;
  for (const auto& collector : s.collectors) exporters.push_back(collectorExporter(s, collector));
  exporters.insert(exporters.end(), s.outputs.begin(), s.outputs.end());
  if (!exporters.empty()) config.exporters = exporters;
  for (auto& e : config.exporters)
    for (const auto& [key, value] : s.exporter) applyExporterSetting(e, key, value);
}

}  // namespace

Config parseCommandLine(int argc, char** argv, CommandLine& cl) {
  CommandLineSettings s = readOptions(argc, argv, cl);
  Config config = loadNamedConfig(argc, argv, s, cl);
  applyInput(argc, argv, s, config);
  for (const auto& [setting, value] : s.probe) setting->apply(config, value);
  applyExporters(s, config);
  std::vector<std::string> notes;
  splitAtAccountingIntervals(config, &notes);
  for (const std::string& note : notes) logInfo("%s", note.c_str());
  return config;
}

}  // namespace flowfold
