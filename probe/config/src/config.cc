#include "flowfold/probe/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "flowfold/exporters/host_port.h"
#include "flowfold/exporters/mysql_exporter.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <sstream>

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

// "010", "00": digits after a leading 0.
bool hasLeadingZero(std::string_view digits) { return digits.size() > 1 && digits[0] == '0'; }

uint64_t unsignedValue(const std::string& name, const YAML::Node& node, const std::string& key, uint64_t min,
                       uint64_t max) {
  const std::string text = scalar(name, node, key);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    fail(name, node, "'" + key + "' must be a whole number, not '" + text + "'");
  // YAML 1.1 readers (and people) take 010 for octal 8; from_chars takes 10.
  if (hasLeadingZero(text))
    fail(name, node, "'" + key + "' = " + text + " has a leading zero: write the decimal number without it");
  if (v < min || v > max)
    fail(name, node, "'" + key + "' = " + text + " is out of range [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
  return v;
}

// A file or interface name: "" names nothing, and taken as "not set" it
// silently meant "live capture on the default interface" or "stdout".
std::string nameValue(const std::string& name, const YAML::Node& node, const std::string& key) {
  std::string text = scalar(name, node, key);
  if (text.empty()) fail(name, node, "'" + key + "' is empty: give a name, or leave the key out");
  return text;
}

bool boolValue(const std::string& name, const YAML::Node& node, const std::string& key) {
  const std::string t = scalar(name, node, key);
  if (t == "true" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "no" || t == "off") return false;
  fail(name, node, "'" + key + "' must be true or false, not '" + t + "'");
}

// Durations: a decimal number of seconds ("15", "0.5") or one with a unit
// ("500ms", "15s", "2m", "1h"). Read exactly, digit by digit: strtod would
// also take "0x10" (16), "1e3", "inf" and " 15". `step_ms` is the finest
// value the setting can hold (1000 where only whole seconds count): anything
// finer would be cut off silently, so it is an error.
uint64_t durationMs(const std::string& name, const YAML::Node& node, const std::string& key, uint64_t min_ms,
                    uint64_t max_ms, uint64_t step_ms = 1) {
  const std::string t = scalar(name, node, key);
  const auto bad = [&] {
    fail(name, node, "'" + key + "' must be a duration such as 15, 15s, 500ms or 2m, not '" + t + "'");
  };
  size_t i = 0;
  uint64_t whole = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
    whole = whole * 10 + static_cast<uint64_t>(t[i++] - '0');
    // Bounded so that whole * 86'400'000 (days) cannot wrap around.
    if (whole > 100'000'000'000ull) fail(name, node, "'" + key + "' = " + t + " is far too long");
  }
  if (i == 0) bad();
  if (hasLeadingZero(std::string_view(t).substr(0, i)))
    fail(name, node, "'" + key + "' = " + t + " has a leading zero: write the decimal number without it");
  uint64_t fraction = 0, fraction_scale = 1;
  if (i < t.size() && t[i] == '.') {
    const size_t fraction_start = ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (i - fraction_start >= 9) fail(name, node, "'" + key + "' = " + t + " has more decimals than it can mean");
      fraction = fraction * 10 + static_cast<uint64_t>(t[i++] - '0');
      fraction_scale *= 10;
    }
    if (i == fraction_start) bad();
  }
  const std::string unit = t.substr(i);
  uint64_t factor = 1000;
  if (unit == "ms") factor = 1;
  else if (unit == "s" || unit.empty()) factor = 1000;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit == "d") factor = 86'400'000;
  else if (unit.find_first_of("0123456789") != std::string::npos) bad();  // 0x10, 1e3: not decimal
  else fail(name, node, "'" + key + "' has an unknown unit '" + unit + "' (use ms, s, m, h or d)");
  const uint64_t fraction_ms_scaled = fraction * factor;  // < 10^9 * 8.64e7: fits
  if (fraction_ms_scaled % fraction_scale != 0)
    fail(name, node, "'" + key + "' = " + t + " is finer than a millisecond");
  const uint64_t ms = whole * factor + fraction_ms_scaled / fraction_scale;  // whole <= 10^11: fits
  if (ms < min_ms || ms > max_ms)
    fail(name, node, "'" + key + "' = " + t + " is out of range [" + std::to_string(min_ms) + " ms, " +
                         std::to_string(max_ms / 1000) + " s]");
  if (ms % step_ms != 0)
    fail(name, node, "'" + key + "' = " + t + " is not a whole number of seconds, and only whole seconds count here");
  return ms;
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

// A MySQL sink's keys are the sink's own (mysqlOptionKeys()); each value is
// checked here so a mistake is reported at its line and column.
ExporterConfig readMysqlExporter(const std::string& name, const YAML::Node& node, ExporterConfig e) {
  e.type = ExporterConfig::Type::kMysql;
  MysqlOptions scratch;
  DuplicateKeys seen(name, "a mysql exporter");
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = keyName(name, it->first, "a mysql exporter");
    seen.check(key, it->first);
    if (key == "type") continue;
    const std::string value = scalar(name, it->second, key);
    try {
      if (key == "dsn") {
        scratch = parseMysqlDsn(value);
        e.mysql_dsn = value;
        continue;
      }
      const auto& keys = mysqlOptionKeys();
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
        std::string known = "dsn";
        for (const auto& k : keys) known += ", " + std::string(k);
        fail(name, it->first, "unknown key '" + key + "' in a mysql exporter (known: " + known + ")");
      }
      setMysqlOption(scratch, key, value);
      e.mysql_settings.emplace_back(key, value);
    } catch (const std::invalid_argument& ex) {
      fail(name, it->second, ex.what());
    }
  }
  try {
    validateMysqlOptions(scratch);
  } catch (const std::invalid_argument& ex) {
    fail(name, node, ex.what());
  }
  return e;
}

// rotate / max_files / max_age: for an exporter that writes a file, and the
// caps only with rotate. A max_age shorter than one interval would remove
// each file as soon as it is complete.
void checkRotation(const std::string& name, const YAML::Node& node, const ExporterConfig& e) {
  const bool text_like = e.type == ExporterConfig::Type::kText || e.type == ExporterConfig::Type::kJson;
  const bool ipfix_file = e.type == ExporterConfig::Type::kIpfix &&
                          (e.transport == ExporterConfig::Transport::kFile || (!e.path.empty() && e.host.empty()));
  const bool writes_file = text_like || ipfix_file;
  if (e.rotate_ms == 0) {
    if (e.max_files != 0 || e.max_age_ms != 0)
      fail(name, node, "'max_files' and 'max_age' cap rotated files: set 'rotate' too (e.g. rotate: 5m)");
    return;
  }
  if (!writes_file) fail(name, node, "'rotate' is for an exporter that writes a file (ipfix with 'path', text, json)");
  if (e.path.empty() || e.path == "-") fail(name, node, "'rotate' needs a 'path' (a file in a directory), not standard output");
  if (e.max_age_ms != 0 && e.max_age_ms < e.rotate_ms)
    fail(name, node, "'max_age' is shorter than 'rotate': every file would be removed as soon as it is complete");
}

ExporterConfig readExporter(const std::string& name, const YAML::Node& node) {
  ExporterConfig e;
  e.origin = where(name, node.Mark());
  if (!node.IsMap() || !node["type"])
    fail(name, node, "each exporter needs a 'type' (ipfix, netflow9, text, json or mysql)");
  if (node["type"].IsScalar() && node["type"].Scalar() == "mysql") return readMysqlExporter(name, node, e);
  bool transport_set = false;
  Handlers h{
      {"type",
       [&](const YAML::Node& n) {
         const std::string t = scalar(name, n, "type");
         if (t == "ipfix") e.type = ExporterConfig::Type::kIpfix;
         else if (t == "netflow9" || t == "v9") e.type = ExporterConfig::Type::kNetflow9;
         else if (t == "text") e.type = ExporterConfig::Type::kText;
         else if (t == "json") e.type = ExporterConfig::Type::kJson;
         else fail(name, n, "unknown exporter type '" + t + "' (ipfix, netflow9, text, json, mysql)");
       }},
      {"collector",
       [&](const YAML::Node& n) { parseHostPort(scalar(name, n, "collector"), e.host, e.port, where(name, n.Mark())); }},
      {"transport",
       [&](const YAML::Node& n) {
         const std::string t = scalar(name, n, "transport");
         transport_set = true;
         if (t == "udp") e.transport = ExporterConfig::Transport::kUdp;
         else if (t == "tcp") e.transport = ExporterConfig::Transport::kTcp;
         else if (t == "file") e.transport = ExporterConfig::Transport::kFile;
         else fail(name, n, "unknown transport '" + t + "' (udp, tcp, file)");
       }},
      {"path", [&](const YAML::Node& n) { e.path = nameValue(name, n, "path"); }},
      {"observation_domain",
       [&](const YAML::Node& n) {
         e.observation_domain = static_cast<uint32_t>(unsignedValue(name, n, "observation_domain", 0, UINT32_MAX));
       }},
      {"mtu", [&](const YAML::Node& n) { e.mtu = static_cast<uint32_t>(unsignedValue(name, n, "mtu", 256, 65'000)); }},
      {"template_refresh",
       [&](const YAML::Node& n) {
         e.template_refresh_ms = durationMs(name, n, "template_refresh", 1'000, 86'400'000);
       }},
      {"template_refresh_packets",
       [&](const YAML::Node& n) {
         e.template_refresh_packets =
             static_cast<uint32_t>(unsignedValue(name, n, "template_refresh_packets", 1, 1'000'000));
       }},
      {"encoder",
       [&](const YAML::Node& n) {
         const std::string t = scalar(name, n, "encoder");
         if (t == "libfixbuf") e.ipfix_encoder = ExporterConfig::IpfixEncoder::kLibfixbuf;
         else if (t == "direct") e.ipfix_encoder = ExporterConfig::IpfixEncoder::kDirect;
         else fail(name, n, "unknown IPFIX encoder '" + t + "' (libfixbuf, direct)");
       }},
      {"rate_limit",
       [&](const YAML::Node& n) { e.rate_limit = unsignedValue(name, n, "rate_limit", 0, 100'000'000); }},
      {"tcp_buffer_mb",
       [&](const YAML::Node& n) {
         e.tcp_buffer_mb = static_cast<uint32_t>(unsignedValue(name, n, "tcp_buffer_mb", 1, 65'536));
       }},
      {"rotate", [&](const YAML::Node& n) { e.rotate_ms = durationMs(name, n, "rotate", 1'000, 86'400'000, 1'000); }},
      {"max_files",
       [&](const YAML::Node& n) {
         e.max_files = static_cast<uint32_t>(unsignedValue(name, n, "max_files", 1, 10'000'000));
       }},
      {"max_age",
       [&](const YAML::Node& n) { e.max_age_ms = durationMs(name, n, "max_age", 1'000, 36'500 * 86'400'000ull); }},
  };
  readMap(name, node, "exporter", h);
  checkRotation(name, node, e);
  const bool text_like = e.type == ExporterConfig::Type::kText || e.type == ExporterConfig::Type::kJson;
  if (text_like) {
    if (e.path.empty()) e.path = "-";
    if (!e.host.empty()) fail(name, node, "a text/json exporter takes a 'path', not a 'collector'");
  } else if (e.type == ExporterConfig::Type::kNetflow9) {
    if (transport_set && e.transport != ExporterConfig::Transport::kUdp)
      fail(name, node, "NetFlow v9 is exported over UDP only");
    if (e.host.empty()) fail(name, node, "a netflow9 exporter needs 'collector: HOST:PORT'");
  } else {  // ipfix
    if (!transport_set && !e.path.empty() && e.host.empty()) e.transport = ExporterConfig::Transport::kFile;
    if (e.transport == ExporterConfig::Transport::kFile) {
      if (e.path.empty()) fail(name, node, "an IPFIX file exporter needs 'path'");
    } else if (e.host.empty()) {
      fail(name, node, "an IPFIX exporter over udp/tcp needs 'collector: HOST:PORT'");
    }
  }
  return e;
}

// 127.0.0.0/8, ::1, and IPv4-mapped ::ffff:127.x.y.z (the same host written
// in IPv6), for an address literal; false for a name or anything else.
bool isLoopbackAddress(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
}

bool isAddressLiteral(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
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

std::string ExporterConfig::describe() const {
  switch (type) {
    case Type::kText: return "text to " + (path == "-" ? std::string("stdout") : path);
    case Type::kJson: return "json to " + (path == "-" ? std::string("stdout") : path);
    case Type::kNetflow9: return "netflow9 udp " + joinHostPort(host, port);
    case Type::kMysql: return "mysql " + (mysql_dsn.empty() ? std::string("(settings)") : mysql_dsn);
    case Type::kIpfix:
      if (transport == Transport::kFile) return "ipfix file " + path;
      return std::string("ipfix ") + (transport == Transport::kTcp ? "tcp " : "udp ") + joinHostPort(host, port);
  }
  return "?";
}

uint32_t ExporterConfig::effectiveMtu() const {
  if (mtu != 0) return mtu;
  const bool loopback = host == "localhost" || host == "ip6-localhost" || isLoopbackAddress(host);
  return loopback ? kLoopbackMtu : kDefaultMtu;
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

Config parseConfig(const std::string& yaml_text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(where(name, e.mark) + ": YAML syntax error: " + e.msg);
  }
  Config c;
  c.config_path = name;
  if (root.IsNull()) return c;  // an empty file is a valid, default configuration
  Handlers top{
      {"input",
       [&](const YAML::Node& n) {
         readMap(name, n, "input",
                 {
                     {"file", [&](const YAML::Node& v) { c.read_file = nameValue(name, v, "file"); }},
                     {"interface",
                      [&](const YAML::Node& v) {
                        c.interfaces.clear();
                        if (v.IsSequence()) {
                          for (const auto& i : v) c.interfaces.push_back(nameValue(name, i, "interface"));
                        } else {
                          const std::string one = nameValue(name, v, "interface");
                          if (one != "default") c.interfaces.push_back(one);
                        }
                      }},
                     {"filter", [&](const YAML::Node& v) { c.bpf_filter = scalar(name, v, "filter"); }},
                     {"snaplen",
                      [&](const YAML::Node& v) {
                        c.snaplen = static_cast<uint32_t>(unsignedValue(name, v, "snaplen", 64, 262'144));
                      }},
                     {"promiscuous", [&](const YAML::Node& v) { c.promiscuous = boolValue(name, v, "promiscuous"); }},
                     {"buffer_size",
                      [&](const YAML::Node& v) {
                        c.buffer_size = unsignedValue(name, v, "buffer_size", 1 << 20, 4ull << 30);
                      }},
                 });
       }},
      {"cache",
       [&](const YAML::Node& n) {
         readMap(name, n, "cache",
                 {
                     {"max_flows",
                      [&](const YAML::Node& v) {
                        c.cache.max_flows = static_cast<uint32_t>(unsignedValue(name, v, "max_flows", 1, 1u << 30));
                      }},
                     {"active_timeout",
                      [&](const YAML::Node& v) {
                        c.cache.active_timeout_ms = durationMs(name, v, "active_timeout", 1, 7 * 86'400'000ull);
                      }},
                     {"workers",
                      [&](const YAML::Node& v) {
                        c.workers = static_cast<uint32_t>(unsignedValue(name, v, "workers", 1, 64));
                      }},
                     {"idle_timeout",
                      [&](const YAML::Node& v) {
                        c.cache.idle_timeout_ms = durationMs(name, v, "idle_timeout", 1, 7 * 86'400'000ull);
                      }},
                     {"stop_timeout",
                      [&](const YAML::Node& v) {
                        c.stop_timeout_ms = durationMs(name, v, "stop_timeout", 1, 3'600'000);
                      }},
                 });
       }},
      {"decoder",
       [&](const YAML::Node& n) {
         readMap(name, n, "decoder",
                 {
                     {"tunnels",
                      [&](const YAML::Node& v) {
                        const std::string t = scalar(name, v, "tunnels");
                        if (!probe::parseTunnelMode(t, c.tunnels))
                          fail(name, v, "unknown tunnels mode '" + t + "' (outer, inner, both)");
                      }},
                 });
       }},
      {"exporters",
       [&](const YAML::Node& n) {
         if (!n.IsSequence()) fail(name, n, "'exporters' must be a list (each item starting with '- type: ...')");
         for (const auto& item : n) c.exporters.push_back(readExporter(name, item));
       }},
      {"user",
       [&](const YAML::Node& n) {
         c.user = scalar(name, n, "user");
         c.user_origin = where(name, n.Mark());
       }},
      {"group",
       [&](const YAML::Node& n) {
         c.group = scalar(name, n, "group");
         c.group_origin = where(name, n.Mark());
       }},
      {"run_as_root", [&](const YAML::Node& n) { c.run_as_root = boolValue(name, n, "run_as_root"); }},
      {"metrics",
       [&](const YAML::Node& n) {
         readMap(name, n, "metrics",
                 {
                     {"listen",
                      [&](const YAML::Node& v) {
                        c.metrics_listen = scalar(name, v, "listen");
                        c.metrics_listen_origin = where(name, v.Mark());
                      }},
                     {"allow_remote",
                      [&](const YAML::Node& v) { c.metrics_allow_remote = boolValue(name, v, "allow_remote"); }},
                 });
         // After the whole mapping: allow_remote may come after listen.
         if (!c.metrics_listen.empty())
           checkMetricsListen(c.metrics_listen_origin, c.metrics_listen, c.metrics_allow_remote);
       }},
      {"log",
       [&](const YAML::Node& n) {
         readMap(name, n, "log",
                 {
                     {"level",
                      [&](const YAML::Node& v) {
                        c.log_level = scalar(name, v, "level");
                        static const char* kLevels[] = {"error", "warn", "info", "debug"};
                        if (std::none_of(std::begin(kLevels), std::end(kLevels),
                                         [&](const char* l) { return c.log_level == l; }))
                          fail(name, v, "unknown log level '" + c.log_level + "' (error, warn, info, debug)");
                      }},
                     {"syslog", [&](const YAML::Node& v) { c.log_syslog = boolValue(name, v, "syslog"); }},
                     {"stats_interval",
                      [&](const YAML::Node& v) {
                        c.stats_interval_s = durationMs(name, v, "stats_interval", 0, 86'400'000, 1000) / 1000;
                      }},
                 });
       }},
  };
  readMap(name, root, "the configuration", top);
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
    return std::any_of(e.mysql_settings.begin(), e.mysql_settings.end(),
                       [](const auto& kv) { return kv.first == "password" && !kv.second.empty(); });
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
    const bool writes_path = e.type == ExporterConfig::Type::kText || e.type == ExporterConfig::Type::kJson ||
                             (e.type == ExporterConfig::Type::kIpfix && e.transport == ExporterConfig::Transport::kFile);
    if (!writes_path) continue;
    struct stat st;
    if (e.path != "-" && ::stat(e.path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) continue;
    const auto [it, first] = writers.emplace(e.path, &e);
    if (first) continue;
    const std::string where = e.path == "-" ? "standard output" : "'" + e.path + "'";
    throw ConfigError(e.origin + ": exporters '" + it->second->describe() + "' (" + it->second->origin + ") and '" +
                      e.describe() + "' both write to " + where +
                      ": their output would be interleaved; give one of them another path");
  }
}

std::optional<uid_t> userId(const std::string& user) {
  std::vector<char> buf(16384);
  for (;;) {
    passwd pw;
    passwd* result = nullptr;
    const int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &result);
    if (rc == ERANGE) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || !result) return std::nullopt;
    return pw.pw_uid;
  }
}

bool groupExists(const std::string& group) {
  std::vector<char> buf(16384);
  for (;;) {
    struct group gr;
    struct group* result = nullptr;
    const int rc = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &result);
    if (rc == ERANGE) {
      buf.resize(buf.size() * 2);
      continue;
    }
    return rc == 0 && result != nullptr;
  }
}

std::string origin(const std::string& where, const Config& c) {
  return where.empty() ? (c.config_path.empty() ? std::string("configuration") : c.config_path) : where;
}

// What the live run would refuse once its capture is open (main.cc
// dropRootIfNeeded, dropPrivileges), found before anything is opened.
void checkRunAsUser(const Config& c, bool running_as_root) {
  if (!c.user.empty()) {
    const std::optional<uid_t> uid = userId(c.user);
    if (!uid)
      throw ConfigError(origin(c.user_origin, c) + ": 'user' = " + c.user +
                        ": no such user (create it, e.g. useradd --system --no-create-home --shell "
                        "/usr/sbin/nologin " + c.user + ")");
    if (*uid == 0)
      throw ConfigError(origin(c.user_origin, c) + ": 'user' = " + c.user +
                        " is root (uid 0); flowfold runs as root only when asked: leave 'user' out and set "
                        "'run_as_root: true'");
  }
  if (!c.group.empty() && !groupExists(c.group))
    throw ConfigError(origin(c.group_origin, c) + ": 'group' = " + c.group + ": no such group");
  if (c.live() && running_as_root && c.user.empty() && !c.run_as_root && !userId("flowfold"))
    throw ConfigError("refusing to keep running as root after opening the capture: create the 'flowfold' "
                      "user, set 'user:' in the configuration, or set 'run_as_root: true'");
}

}  // namespace

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

std::vector<std::string> validateConfig(const Config& c, bool running_as_root) {
  if (!c.read_file.empty() && !c.interfaces.empty())
    throw ConfigError("both a capture file and an interface are set: choose one input");
  if (c.exporters.empty())
    throw ConfigError("no exporter: give a collector (-n HOST:PORT), --text, --json, --ipfix-file or 'exporters:'");
  if (c.cache.max_flows < c.flowCacheCount())
    throw ConfigError("cache.max_flows = " + std::to_string(c.cache.max_flows) + " cannot be shared among " +
                      std::to_string(c.flowCacheCount()) +
                      " flow caches (one per worker and interface): give at least one flow to each, or fewer "
                      "workers");
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
