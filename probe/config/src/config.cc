#include "flowfold/probe/config.h"

#include "flowfold/probe/accounts.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "flowfold/exporters/host_port.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "flowfold/probe/settings.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>
#include <sstream>
#include <type_traits>
#include <variant>

namespace flowfold {

namespace {

std::string where(const std::string& name, const YAML::Mark& m) {
  // yaml-cpp marks are 0-based; editors count from 1.
  return name + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

[[noreturn]] void fail(const std::string& name, const YAML::Node& node, const std::string& what) {
  throw ConfigError(where(name, node.Mark()) + ": " + what);
}

std::string scalar(const std::string& name, const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) fail(name, node, "'" + key + "' must be a single value");
  return node.Scalar();
}

// A fault of a value (option_values.h) in the file's words, naming the key:
// "'max_flows' = 010 has a leading zero: ...".
std::string fileWording(std::string_view key, const ValueSpec& spec, const ValueError& e) {
  const std::string k = "'" + std::string(key) + "'";
  switch (e.kind) {
    case ValueError::Kind::kExpected:
      if (spec.kind == ValueSpec::Kind::kChoice) {
        std::string list;
        for (std::string_view c : spec.choices) list += (list.empty() ? "" : ", ") + std::string(c);
        return "unknown " + std::string(spec.noun) + " '" + e.text + "' (" + list + ")";
      }
      return k + " must be " + e.detail + ", not '" + e.text + "'";
    case ValueError::Kind::kProblem:
      if (spec.kind == ValueSpec::Kind::kName) return k + " is empty: give a name, or leave the key out";
      return k + " = " + e.text + " " + e.detail;
    case ValueError::Kind::kUnknownUnit:
      return k + " has an unknown unit '" + e.detail + "' (use " +
             (spec.kind == ValueSpec::Kind::kBytes ? "k, M, G or T" : kDurationUnits) + ")";
  }
  return k + ": " + e.what();
}

// The value of `node` as `spec` reads it; a fault names the node's place.
SettingValue readValue(const std::string& name, const YAML::Node& node, std::string_view key, const ValueSpec& spec) {
  const std::string text = scalar(name, node, std::string(key));
  try {
    return parseSettingValue(spec, text);
  } catch (const ValueError& e) {
    fail(name, node, fileWording(key, spec, e));
  }
}

// A file or interface name: "" names nothing, and taken as "not set" it
// silently meant "live capture on the default interface" or "stdout".
std::string nameValue(const std::string& name, const YAML::Node& node, const std::string& key) {
  return readValue(name, node, key, ValueSpec{ValueSpec::Kind::kName}).text;
}

// A mapping key as text. YAML allows a list or a mapping as a key ("? [a]");
// as<std::string>() would throw yaml-cpp's BadConversion, not a ConfigError.
std::string keyName(const std::string& name, const YAML::Node& key, const std::string& what) {
  if (!key.IsScalar()) fail(name, key, "a key in " + what + " must be a name, not a list or a mapping");
  return key.Scalar();
}

// yaml-cpp keeps both values of a key written twice (and node["key"] finds
// the first), so a repeated key would be read twice or half-ignored: two
// `exporters:` lists were merged. YAML forbids it; so does flowfold.
class DuplicateKeys {
 public:
  DuplicateKeys(const std::string& name, const std::string& what) : name_(name), what_(what) {}
  void check(const std::string& key, const YAML::Node& key_node) {
    const auto [it, fresh] = first_.emplace(key, key_node.Mark());
    if (!fresh)
      fail(name_, key_node, "duplicate key '" + key + "' in " + what_ + " (first at line " +
                                std::to_string(it->second.line + 1) + ", column " +
                                std::to_string(it->second.column + 1) + ")");
  }

 private:
  const std::string& name_;
  const std::string what_;
  std::map<std::string, YAML::Mark> first_;
};

// Walks a mapping, hands each known key to its handler and rejects the rest.
using Handlers = std::map<std::string, std::function<void(const YAML::Node&)>>;
void readMap(const std::string& name, const YAML::Node& node, const std::string& what, const Handlers& handlers) {
  if (!node.IsMap()) fail(name, node, "'" + what + "' must be a mapping of key: value");
  DuplicateKeys seen(name, what);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = keyName(name, it->first, what);
    seen.check(key, it->first);
    auto h = handlers.find(key);
    if (h == handlers.end()) {
      std::string known;
      for (const auto& [k, _] : handlers) known += (known.empty() ? "" : ", ") + k;
      fail(name, it->first, "unknown key '" + key + "' in " + what + " (known: " + known + ")");
    }
    h->second(it->second);
  }
}

// One setting of a mysql exporter, with the places of its key and value.
struct MysqlSetting {
  std::string key, value;
  YAML::Mark key_mark, value_mark;
};

[[noreturn]] void failAt(const std::string& name, const YAML::Mark& mark, const std::string& what) {
  throw ConfigError(where(name, mark) + ": " + what);
}

// `accounting:` under a mysql exporter: interval, by (a list or a comma
// list), retention_days, which are the sink's keys accounting_*.
void readMysqlAccounting(const std::string& name, const YAML::Node& node, std::vector<MysqlSetting>& settings) {
  const std::string what = "'accounting' of a mysql exporter";
  if (!node.IsMap()) fail(name, node, what + " must be a mapping (interval, by, retention_days, flush)");
  DuplicateKeys seen(name, what);
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = keyName(name, it->first, what);
    seen.check(key, it->first);
    if (key != "interval" && key != "by" && key != "retention_days" && key != "flush")
      fail(name, it->first, "unknown key '" + key + "' in " + what + " (known: interval, by, retention_days, flush)");
    std::string value;
    if (key == "by" && it->second.IsSequence()) {
      for (const YAML::Node& item : it->second) value += (value.empty() ? "" : ",") + scalar(name, item, "by");
      if (value.empty()) fail(name, it->second, "'by' is empty: name host, host_pair or service");
    } else {
      value = scalar(name, it->second, key);
    }
    settings.push_back(MysqlSetting{"accounting_" + key, value, it->first.Mark(), it->second.Mark()});
  }
}

// A MySQL sink's keys are the sink's own (setMysqlOption()): `dsn` first,
// whatever its place, then the others in order; each value is checked here
// so that a mistake is reported at its line and column.
ExporterConfig readMysqlExporter(const std::string& name, const YAML::Node& node, ExporterConfig e) {
  MysqlOptions& o = e.as<MysqlOptions>();
  DuplicateKeys seen(name, "a mysql exporter");
  std::vector<MysqlSetting> settings;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = keyName(name, it->first, "a mysql exporter");
    seen.check(key, it->first);
    if (key == "type") continue;
    if (key == "accounting") {
      readMysqlAccounting(name, it->second, settings);
      continue;
    }
    const std::string value = scalar(name, it->second, key);
    if (key != "dsn") {
      settings.push_back(MysqlSetting{key, value, it->first.Mark(), it->second.Mark()});
      continue;
    }
    try {
      o = parseMysqlDsn(value);
    } catch (const std::invalid_argument& ex) {
      fail(name, it->second, ex.what());
    }
  }
  const auto& keys = mysqlOptionKeys();
  for (const MysqlSetting& setting : settings) {
    if (std::find(keys.begin(), keys.end(), setting.key) == keys.end()) {
      std::string known = "accounting";
      for (const auto& k : keys)
        if (k.rfind("accounting_", 0) != 0) known += ", " + std::string(k);
      failAt(name, setting.key_mark, "unknown key '" + setting.key + "' in a mysql exporter (known: " + known + ")");
    }
    try {
      setMysqlOption(o, setting.key, setting.value);
    } catch (const std::invalid_argument& ex) {
      failAt(name, setting.value_mark, ex.what());
    }
  }
  try {
    validateMysqlOptions(o);
  } catch (const std::invalid_argument& ex) {
    fail(name, node, ex.what());
  }
  return e;
}

// min_free: "5%" (of the filesystem) or a size ("20G").
void parseMinFree(const std::string& text, recorder::RecorderOptions& o) {
  if (!text.empty() && text.back() == '%') {
    const std::string number = text.substr(0, text.size() - 1);
    char* end = nullptr;
    const double percent = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !(percent >= 0 && percent < 100))
      throw std::invalid_argument("= " + text + " must be a percentage in [0, 100), such as 5%, or a size such as 20G");
    o.min_free_percent = percent;
    o.min_free_bytes = 0;
    return;
  }
  try {
    o.min_free_bytes = parseByteSize(text, 1);
  } catch (const ValueError&) {
    throw std::invalid_argument("= " + text + " must be a percentage such as 5% or a size such as 20G");
  }
}

// rotate / max_files / max_age: for an exporter that writes a file, and the
// caps only with rotate. A max_age shorter than one interval would remove
// each file as soon as it is complete.
void checkRotation(const std::string& name, const YAML::Node& node, const ExporterConfig& e) {
  const RotationOptions* rotation = e.rotation();
  if (!rotation) return;  // a kind without the keys refused them already
  if (rotation->interval_ms == 0) {
    if (rotation->max_files != 0 || rotation->max_age_ms != 0)
      fail(name, node, "'max_files' and 'max_age' cap rotated files: set 'rotate' too (e.g. rotate: 5m)");
    return;
  }
  const std::string path = e.outputPath();
  if (path.empty()) fail(name, node, "'rotate' is for an exporter that writes a file (ipfix with 'path', text, json)");
  if (path == "-") fail(name, node, "'rotate' needs a 'path' (a file in a directory), not standard output");
  if (rotation->max_age_ms != 0 && rotation->max_age_ms < rotation->interval_ms)
    fail(name, node, "'max_age' is shorter than 'rotate': every file would be removed as soon as it is complete");
}

// The settings of `table` under `section`, as handlers that read each value
// and set it in `target`.
template <class Target>
void addSettings(Handlers& handlers, const std::string& name, std::span<const Setting<Target>> table,
                 std::string_view section, Target& target) {
  for (const Setting<Target>& s : table) {
    if (s.section != section) continue;
    handlers[std::string(s.key)] = [&name, &s, &target](const YAML::Node& n) {
      s.apply(target, readValue(name, n, s.key, s.value));
    };
  }
}

const char* kindName(ExporterConfig::Type t) {
  switch (t) {
    case ExporterConfig::Type::kIpfix: return "ipfix";
    case ExporterConfig::Type::kNetflow9: return "netflow9";
    case ExporterConfig::Type::kText: return "text";
    case ExporterConfig::Type::kJson: return "json";
    case ExporterConfig::Type::kMysql: return "mysql";
  }
  return "?";
}

// Where an exporter sends, as its `collector` and `transport` keys say; the
// kinds that have them take them in finishExporter().
struct Destination {
  std::string host, port;
  std::string transport;  // "" = not set
  YAML::Mark transport_mark;
};

// What each kind of exporter needs, and its defaults that depend on others.
void finishExporter(const std::string& name, const YAML::Node& node, ExporterConfig& e, const Destination& d) {
  const bool text_like = e.type == ExporterConfig::Type::kText || e.type == ExporterConfig::Type::kJson;
  if (text_like) {
    if (!d.host.empty()) fail(name, node, "a text/json exporter takes a 'path', not a 'collector'");
    if (!d.transport.empty())
      fail(name, node["transport"], std::string("'transport' is not a setting of a ") + kindName(e.type) +
                                        " exporter (its settings: type, path, rotate, max_files, max_age)");
  } else if (e.type == ExporterConfig::Type::kNetflow9) {
    if (!d.transport.empty() && d.transport != "udp") fail(name, node, "NetFlow v9 is exported over UDP only");
    if (d.host.empty()) fail(name, node, "a netflow9 exporter needs 'collector: HOST:PORT'");
    auto& o = e.as<NetflowV9Options>();
    o.host = d.host;
    o.port = d.port;
  } else {  // ipfix
    auto& o = e.as<IpfixOptions>();
    using Transport = IpfixOptions::Transport;
    o.host = d.host;
    if (!d.port.empty()) o.port = d.port;
    if (d.transport.empty()) o.transport = !o.path.empty() && d.host.empty() ? Transport::kFile : Transport::kUdp;
    else o.transport = d.transport == "tcp" ? Transport::kTcp : d.transport == "file" ? Transport::kFile : Transport::kUdp;
    if (o.transport == Transport::kFile) {
      if (o.path.empty()) fail(name, node, "an IPFIX file exporter needs 'path'");
    } else if (d.host.empty()) {
      fail(name, node, "an IPFIX exporter over udp/tcp needs 'collector: HOST:PORT'");
    }
  }
}

ExporterConfig::Type exporterType(const std::string& name, const YAML::Node& n) {
  const std::string t = scalar(name, n, "type");
  if (t == "ipfix") return ExporterConfig::Type::kIpfix;
  if (t == "netflow9" || t == "v9") return ExporterConfig::Type::kNetflow9;
  if (t == "text") return ExporterConfig::Type::kText;
  if (t == "json") return ExporterConfig::Type::kJson;
  fail(name, n, "unknown exporter type '" + t + "' (ipfix, netflow9, text, json, mysql)");
}

// Every key of the exporters' tables: a key of another kind of exporter is
// refused by name (a key that would do nothing for this kind is a mistake to
// report, not to ignore).
std::vector<std::string_view> allExporterKeys() {
  std::vector<std::string_view> keys;
  auto add = [&](auto table) {
    for (const auto& s : table)
      if (std::find(keys.begin(), keys.end(), s.key) == keys.end()) keys.push_back(s.key);
  };
  add(ipfixSettings());
  add(netflow9Settings());
  add(textSettings());
  return keys;
}

// The settings of `options`' own table as handlers, and the other kinds' keys
// as refusals naming this kind's settings.
template <class Options>
void addExporterSettings(Handlers& handlers, const std::string& name, ExporterConfig::Type type, Options& options,
                         std::string own) {
  for (const Setting<Options>& s : settingsOf(options)) own += ", " + std::string(s.key);
  for (std::string_view key : allExporterKeys())
    handlers[std::string(key)] = [&name, type, key, own](const YAML::Node& n) {
      fail(name, n, "'" + std::string(key) + "' is not a setting of a " + kindName(type) +
                        " exporter (its settings: " + own + ")");
    };
  addSettings(handlers, name, settingsOf(options), "", options);
}

ExporterConfig readExporter(const std::string& name, const YAML::Node& node) {
  if (!node.IsMap() || !node["type"])
    fail(name, node, "each exporter needs a 'type' (ipfix, netflow9, text, json or mysql)");
  const std::string origin = where(name, node.Mark());
  if (node["type"].IsScalar() && node["type"].Scalar() == "mysql")
    return readMysqlExporter(name, node, ExporterConfig::ofType(ExporterConfig::Type::kMysql, origin));
  // The type first: which keys apply depends on it.
  ExporterConfig e = ExporterConfig::ofType(exporterType(name, node["type"]), origin);
  Destination d;
  Handlers h{{"type", [](const YAML::Node&) {}},
             {"collector",
              [&](const YAML::Node& n) { parseHostPort(scalar(name, n, "collector"), d.host, d.port, where(name, n.Mark())); }},
             {"transport", [&](const YAML::Node& n) {
                d.transport = scalar(name, n, "transport");
                if (d.transport != "udp" && d.transport != "tcp" && d.transport != "file")
                  fail(name, n, "unknown transport '" + d.transport + "' (udp, tcp, file)");
              }}};
  const std::string own = e.type == ExporterConfig::Type::kIpfix      ? "type, collector, transport"
                          : e.type == ExporterConfig::Type::kNetflow9 ? "type, collector"
                                                                      : "type";
  std::visit(
      [&](auto& options) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(options)>, MysqlOptions>)
          addExporterSettings(h, name, e.type, options, own);
      },
      e.options);
  readMap(name, node, "exporter", h);
  finishExporter(name, node, e, d);
  checkRotation(name, node, e);
  return e;
}

// The metrics server binds one address and, unless allowed, only loopback
// (MetricsServer refuses the rest). Checked here so that --check-config finds
// it and a run stops before opening any capture, not after.
void checkMetricsListen(const std::string& where_listen, const std::string& listen, bool allow_remote) {
  std::string host, port;
  parseHostPort(listen, host, port, where_listen);
  if (!isAddressLiteral(host))
    throw ConfigError(where_listen + ": metrics.listen needs an IP address such as 127.0.0.1:9108 or [::1]:9108, "
                                     "not the name '" + host + "' (the endpoint binds exactly one address)");
  if (!allow_remote && !isLoopbackAddress(host))
    throw ConfigError(where_listen + ": metrics.listen " + listen +
                      " is not a loopback address: set 'allow_remote: true' under 'metrics:' to serve metrics "
                      "beyond this machine");
}

}  // namespace

ExporterConfig ExporterConfig::ofType(Type type, std::string origin) {
  ExporterConfig e;
  e.type = type;
  e.origin = std::move(origin);
  switch (type) {
    case Type::kIpfix: e.options = IpfixOptions{}; break;
    case Type::kNetflow9: e.options = NetflowV9Options{}; break;
    case Type::kText: e.options = TextOptions{}; break;
    case Type::kJson: {
      TextOptions o;
      o.format = TextOptions::Format::kJson;
      e.options = o;
      break;
    }
    case Type::kMysql: e.options = MysqlOptions{}; break;
  }
  return e;
}

std::string ExporterConfig::describe() const {
  const auto to = [](const std::string& path) { return path == "-" ? std::string("stdout") : path; };
  switch (type) {
    case Type::kText: return "text to " + to(as<TextOptions>().path);
    case Type::kJson: return "json to " + to(as<TextOptions>().path);
    case Type::kNetflow9: {
      const auto& o = as<NetflowV9Options>();
      return "netflow9 udp " + joinHostPort(o.host, o.port);
    }
    case Type::kMysql: return "mysql " + mysqlTargetName(as<MysqlOptions>());
    case Type::kIpfix: {
      const auto& o = as<IpfixOptions>();
      if (o.transport == IpfixOptions::Transport::kFile) return "ipfix file " + o.path;
      return std::string("ipfix ") + (o.transport == IpfixOptions::Transport::kTcp ? "tcp " : "udp ") +
             joinHostPort(o.host, o.port);
    }
  }
  return "?";
}

std::string ExporterConfig::outputPath() const {
  if (const auto* text = std::get_if<TextOptions>(&options)) return text->path;
  if (const auto* ipfix = std::get_if<IpfixOptions>(&options))
    if (ipfix->transport == IpfixOptions::Transport::kFile) return ipfix->path;
  return "";
}

const RotationOptions* ExporterConfig::rotation() const {
  if (const auto* text = std::get_if<TextOptions>(&options)) return &text->rotation;
  if (const auto* ipfix = std::get_if<IpfixOptions>(&options)) return &ipfix->rotation;
  return nullptr;
}

void parseHostPort(const std::string& text, std::string& host, std::string& port, const std::string& origin) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw ConfigError(origin + ": '" + text + "' is not [IPv6]:PORT");
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon)
      throw ConfigError(origin + ": '" + text + "' is not HOST:PORT (write IPv6 as [ADDR]:PORT)");
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  unsigned long v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (h.empty() || ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535)
    throw ConfigError(origin + ": '" + text + "' needs a host and a port between 1 and 65535");
  host = h;
  port = p;
}

namespace {

YAML::Node loadYaml(const std::string& yaml_text, const std::string& name) {
  try {
    return YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(where(name, e.mark) + ": YAML syntax error: " + e.msg);
  }
}

// Reads the document into one Config, a method per top-level mapping; the
// plain settings of each come from the table (settings.h).
class ConfigReader {
 public:
  ConfigReader(const std::string& name, Config& c) : name_(name), c_(c) {}

  void read(const YAML::Node& root) {
    Handlers top{
        {"input", [&](const YAML::Node& n) { input(n); }},
        {"cache", [&](const YAML::Node& n) { section(n, "cache"); }},
        {"decoder", [&](const YAML::Node& n) { section(n, "decoder"); }},
        {"exporters", [&](const YAML::Node& n) { exporters(n); }},
        {"local_networks", [&](const YAML::Node& n) { localNetworks(n); }},
        {"user", [&](const YAML::Node& n) { c_.user = remembered(n, "user", c_.user_origin); }},
        {"group", [&](const YAML::Node& n) { c_.group = remembered(n, "group", c_.group_origin); }},
        {"metrics", [&](const YAML::Node& n) { metrics(n); }},
        {"log", [&](const YAML::Node& n) { section(n, "log"); }},
        {"recorder", [&](const YAML::Node& n) { recorder(n); }},
    };
    addSettings(top, name_, probeSettings(), "", c_);
    readMap(name_, root, "the configuration", top);
  }

 private:
  // A mapping whose keys are all in the table.
  void section(const YAML::Node& n, std::string_view what) {
    Handlers h;
    addSettings(h, name_, probeSettings(), what, c_);
    readMap(name_, n, std::string(what), h);
  }

  void input(const YAML::Node& n) {
    Handlers h{{"interface", [&](const YAML::Node& v) { interfaces(v); }}};
    addSettings(h, name_, probeSettings(), "input", c_);
    readMap(name_, n, "input", h);
  }

  // One name or a list; "default" alone is the system's default interface.
  void interfaces(const YAML::Node& v) {
    c_.interfaces.clear();
    if (v.IsSequence()) {
      for (const auto& i : v) c_.interfaces.push_back(nameValue(name_, i, "interface"));
    } else {
      const std::string one = nameValue(name_, v, "interface");
      if (one != "default") c_.interfaces.push_back(one);
    }
  }

  // One CIDR or a list of them; each bad entry is named at its own place.
  void localNetworks(const YAML::Node& v) {
    c_.local_networks = LocalNetworks{};
    auto one = [&](const YAML::Node& n) {
      const std::string error = c_.local_networks.add(nameValue(name_, n, "local_networks"));
      if (!error.empty()) fail(name_, n, "local_networks: " + error);
    };
    if (v.IsSequence()) {
      for (const auto& n : v) one(n);
    } else {
      one(v);
    }
  }

  // The packet recorder: its directories (one or a list) and min_free (a
  // percentage or a size) have a form of their own; the rest is the table's.
  void recorder(const YAML::Node& n) {
    c_.recorder_origin = where(name_, n.Mark());
    Handlers h{{"directory", [&](const YAML::Node& v) { recorderDirectories(v); }},
               {"min_free", [&](const YAML::Node& v) { minFree(v); }}};
    addSettings(h, name_, probeSettings(), "recorder", c_);
    readMap(name_, n, "recorder", h);
  }

  void recorderDirectories(const YAML::Node& v) {
    c_.recorder.directories.clear();
    if (v.IsSequence()) {
      for (const auto& d : v) c_.recorder.directories.push_back(nameValue(name_, d, "directory"));
    } else {
      c_.recorder.directories.push_back(nameValue(name_, v, "directory"));
    }
  }

  void minFree(const YAML::Node& v) {
    const std::string text = scalar(name_, v, "min_free");
    try {
      parseMinFree(text, c_.recorder);
    } catch (const std::invalid_argument& e) {
      fail(name_, v, std::string("'min_free' ") + e.what());
    }
  }

  void exporters(const YAML::Node& n) {
    if (!n.IsSequence()) fail(name_, n, "'exporters' must be a list (each item starting with '- type: ...')");
    for (const auto& item : n) c_.exporters.push_back(readExporter(name_, item));
  }

  void metrics(const YAML::Node& n) {
    Handlers h{{"listen", [&](const YAML::Node& v) {
                  c_.metrics_listen = remembered(v, "listen", c_.metrics_listen_origin);
                }}};
    addSettings(h, name_, probeSettings(), "metrics", c_);
    readMap(name_, n, "metrics", h);
    // After the whole mapping: allow_remote may come after listen.
    if (!c_.metrics_listen.empty())
      checkMetricsListen(c_.metrics_listen_origin, c_.metrics_listen, c_.metrics_allow_remote);
  }

  // A value whose place later messages name.
  std::string remembered(const YAML::Node& n, const std::string& key, std::string& origin) {
    origin = where(name_, n.Mark());
    return scalar(name_, n, key);
  }

  const std::string& name_;
  Config& c_;
};

}  // namespace

Config parseConfig(const std::string& yaml_text, const std::string& name) {
  const YAML::Node root = loadYaml(yaml_text, name);
  Config c;
  c.config_path = name;
  if (root.IsNull()) return c;  // an empty file is a valid, default configuration
  ConfigReader(name, c).read(root);
  return c;
}

Config loadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read configuration: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return parseConfig(text.str(), path);
}

namespace {

// A password in a configuration file every user can read is everybody's.
std::string worldReadablePasswordWarning(const Config& c) {
  if (c.config_path.empty()) return "";
  const bool holds_password = std::any_of(c.exporters.begin(), c.exporters.end(), [](const ExporterConfig& e) {
    const auto* mysql = std::get_if<MysqlOptions>(&e.options);
    return mysql && !mysql->password.empty();
  });
  struct stat st;
  if (!holds_password || ::stat(c.config_path.c_str(), &st) != 0 || !(st.st_mode & S_IROTH)) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return c.config_path + " holds a MySQL password and every user can read it (mode " + mode +
         "): chmod 640 it (owner root, group flowfold), or give the password with password_file or a systemd "
         "credential (LoadCredential=mysql-password:FILE)";
}

// Two exporters writing one file, or both standard output, would interleave
// their bytes: neither output could be read. A device (/dev/null, /dev/full)
// keeps nothing to read, so it may be shared.
void checkOutputsAreDistinct(const Config& c) {
  std::map<std::string, const ExporterConfig*> writers;
  for (const ExporterConfig& e : c.exporters) {
    const std::string path = e.outputPath();
    if (path.empty()) continue;
    struct stat st;
    if (path != "-" && ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) continue;
    const auto [it, first] = writers.emplace(path, &e);
    if (first) continue;
    const std::string where = path == "-" ? "standard output" : "'" + path + "'";
    throw ConfigError(e.origin + ": exporters '" + it->second->describe() + "' (" + it->second->origin + ") and '" +
                      e.describe() + "' both write to " + where +
                      ": their output would be interleaved; give one of them another path");
  }
}

std::string origin(const std::string& where, const Config& c) {
  return where.empty() ? (c.config_path.empty() ? std::string("configuration") : c.config_path) : where;
}

// What the live run would refuse once its capture is open (main.cc
// dropRootIfNeeded, dropPrivileges), found before anything is opened.
void checkRunAsUser(const Config& c, bool running_as_root) {
  if (!c.user.empty()) {
    const std::optional<UserAccount> account = findUser(c.user);
    if (!account)
      throw ConfigError(origin(c.user_origin, c) + ": 'user' = " + c.user +
                        ": no such user (create it, e.g. useradd --system --no-create-home --shell "
                        "/usr/sbin/nologin " + c.user + ")");
    if (account->uid == 0)
      throw ConfigError(origin(c.user_origin, c) + ": 'user' = " + c.user +
                        " is root (uid 0); flowfold runs as root only when asked: leave 'user' out and set "
                        "'run_as_root: true'");
  }
  if (!c.group.empty() && !findGroup(c.group))
    throw ConfigError(origin(c.group_origin, c) + ": 'group' = " + c.group + ": no such group");
  if (c.live() && running_as_root && c.user.empty() && !c.run_as_root && !findUser("flowfold"))
    throw ConfigError("refusing to keep running as root after opening the capture: create the 'flowfold' "
                      "user, set 'user:' in the configuration, or set 'run_as_root: true'");
}

}  // namespace

namespace {

// The ring must hold more than one segment.
void checkRecorder(const Config& c) {
  const recorder::RecorderOptions& r = c.recorder;
  if (!r.enabled()) return;
  const std::string where = origin(c.recorder_origin, c);
  if (r.max_size != 0 && r.segment_size * 2 > r.max_size)
    throw ConfigError(where + ": recorder.max_size (" + std::to_string(r.max_size) +
                      " bytes) holds fewer than two segments of segment_size (" + std::to_string(r.segment_size) +
                      "): raise max_size or lower segment_size");
}

}  // namespace

namespace {

std::string durationText(uint64_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// The accounting interval of each mysql exporter that has one.
std::vector<std::pair<const ExporterConfig*, uint64_t>> accountingIntervals(const Config& c) {
  std::vector<std::pair<const ExporterConfig*, uint64_t>> out;
  for (const ExporterConfig& e : c.exporters)
    if (const auto* m = std::get_if<MysqlOptions>(&e.options); m && m->accounting.enabled())
      out.emplace_back(&e, m->accounting.interval_ms);
  return out;
}

}  // namespace

void splitAtAccountingIntervals(Config& c, std::vector<std::string>* notes) {
  const auto intervals = accountingIntervals(c);
  if (intervals.empty()) return;
  if (c.cache.split_interval_ms == 0) {
    uint64_t split = 0;
    for (const auto& [e, ms] : intervals) split = std::gcd(split, ms);
    c.cache.split_interval_ms = split;
    if (notes)
      notes->push_back("cache.split_interval set to " + durationText(split) +
                       " for the MySQL accounting tables: no flow record spans an accounting interval");
    return;
  }
  for (const auto& [e, ms] : intervals)
    if (ms % c.cache.split_interval_ms != 0)
      throw ConfigError(e->origin + ": the accounting interval " + durationText(ms) +
                        " is not a multiple of cache.split_interval (" + durationText(c.cache.split_interval_ms) +
                        "): records would span its boundaries and miscount them; leave split_interval unset (the "
                        "accounting interval sets it) or make it divide the interval");
}

std::string accountingSplitMismatch(const Config& fresh, uint64_t running_split_ms) {
  for (const auto& [e, ms] : accountingIntervals(fresh))
    if (running_split_ms == 0 || ms % running_split_ms != 0)
      return e->origin + ": the accounting interval " + durationText(ms) + " needs the flow cache to split records " +
             "at its boundaries, and the running cache " +
             (running_split_ms == 0 ? std::string("does not split them")
                                    : "splits at " + durationText(running_split_ms)) +
             ": that is set at start; restart flowfold";
  return {};
}

bool runningAsRoot() { return geteuid() == 0; }

uint32_t Config::flowCacheCount() const {
  const uint32_t each = std::max<uint32_t>(1, workers);
  if (!live()) return each;
  return each * static_cast<uint32_t>(std::max<size_t>(1, interfaces.size()));
}

uint32_t Config::maxFlowsPerCache() const {
  // Rounded down: together the caches keep at most max_flows.
  return std::max<uint32_t>(1, cache.max_flows / flowCacheCount());
}

uint32_t Config::liveSnaplen() const {
  uint32_t s = recorder.enabled() ? recorder.snaplen : snaplen;
  if (dpi) s = std::max(s, kDpiSnaplen);
  return s;
}

recorder::RecorderOptions Config::recorderOptions() const {
  recorder::RecorderOptions options = recorder;
  options.tunnels = tunnels;
  return options;
}

std::vector<std::string> validateConfig(const Config& c, bool running_as_root) {
  if (!c.read_file.empty() && !c.interfaces.empty())
    throw ConfigError("both a capture file and an interface are set: choose one input");
  if (c.dpi && !c.live() && c.workers > 1)
    throw ConfigError("dpi reads a capture file with one worker: set workers: 1 (live capture takes several)");
  if (c.exporters.empty())
    throw ConfigError("no exporter: give a collector (-n HOST:PORT), --text, --json, --ipfix-file or 'exporters:'");
  if (c.cache.max_flows < c.flowCacheCount())
    throw ConfigError("cache.max_flows = " + std::to_string(c.cache.max_flows) + " cannot be shared among " +
                      std::to_string(c.flowCacheCount()) +
                      " flow caches (one per worker and interface): give at least one flow to each, or fewer "
                      "workers");
  checkRecorder(c);
  checkRunAsUser(c, running_as_root);
  checkOutputsAreDistinct(c);
  std::vector<std::string> warnings;
  if (const std::string w = worldReadablePasswordWarning(c); !w.empty()) warnings.push_back(w);
  // One configuration file often serves both the service and a replay with
  // -r; refusing would force a second file, so this is a warning.
  if (!c.live() && !c.metrics_listen.empty())
    warnings.push_back(origin(c.metrics_listen_origin, c) +
                       ": metrics.listen is ignored when reading a capture file (-r or input.file): the metrics "
                       "endpoint serves live captures only");
  return warnings;
}

}  // namespace flowfold
