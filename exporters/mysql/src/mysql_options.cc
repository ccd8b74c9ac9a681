// Options of the MySQL sink: the DSN, the one setter shared by the DSN query
// and the YAML keys, validation and the password lookup.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "flowfold/exporters/host_port.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "flowfold/exporters/option_values.h"
#include "mysql_internal.h"

namespace flowfold {

namespace {

[[noreturn]] void bad(std::string_view key, const std::string& what) {
  throw std::invalid_argument("mysql option " + std::string(key) + ": " + what);
}

// A value in the shared grammar (option_values.h), its fault worded for a
// sink option: "mysql option retry_max: 010 has a leading zero ...".
template <class Parse>
auto worded(std::string_view key, Parse parse) {
  try {
    return parse();
  } catch (const ValueError& e) {
    switch (e.kind) {
      case ValueError::Kind::kExpected: bad(key, "expected " + e.detail + ", not '" + e.text + "'");
      case ValueError::Kind::kProblem: bad(key, e.text + " " + e.detail);
      case ValueError::Kind::kUnknownUnit: bad(key, "unknown unit '" + e.detail + "' (use " + kDurationUnits + ")");
    }
    throw;
  }
}

uint64_t unsignedValue(std::string_view key, const std::string& text, uint64_t min, uint64_t max) {
  return worded(key, [&] { return parseWholeNumber(text, min, max); });
}

// `step_ms`: 1000 for the client library's whole-second timeouts.
uint64_t durationMs(std::string_view key, const std::string& text, uint64_t min_ms, uint64_t max_ms,
                    uint64_t step_ms = 1) {
  return worded(key, [&] { return parseDurationMs(text, min_ms, max_ms, step_ms); });
}

// Bytes: a plain number or one with k, M, G, T (option_values.h).
uint64_t bytesValue(std::string_view key, const std::string& text) {
  try {
    return parseByteSize(text);
  } catch (const ValueError& e) {
    if (e.kind == ValueError::Kind::kUnknownUnit) bad(key, "unknown unit in '" + text + "' (use k, M, G or T)");
    if (e.kind == ValueError::Kind::kExpected) bad(key, "expected a size such as 512M or 1G, not '" + text + "'");
    bad(key, "'" + text + "' " + e.detail);
  }
}

bool boolValue(std::string_view key, const std::string& t) {
  return worded(key, [&] { return parseBoolean(t); });
}

// The items of a comma list, blanks around each trimmed ("a, b" is a, b).
std::vector<std::string> commaItems(const std::string& text) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    items.push_back(std::move(item));
    pos = comma + 1;
  }
  return items;
}

std::vector<MysqlOptions::Index> indexList(std::string_view key, const std::string& text) {
  std::vector<MysqlOptions::Index> out;
  if (text == "none" || text.empty()) return out;
  for (const std::string& item : commaItems(text)) {
    MysqlOptions::Index idx;
    if (item == "time" || item == "first_time") idx = MysqlOptions::Index::kTime;
    else if (item == "src_ip" || item == "src_host") idx = MysqlOptions::Index::kSrcHost;
    else if (item == "dest_ip" || item == "dest_host") idx = MysqlOptions::Index::kDestHost;
    else bad(key, "unknown index '" + item + "' (time, src_ip, dest_ip or none)");
    if (std::find(out.begin(), out.end(), idx) == out.end()) out.push_back(idx);
  }
  return out;
}

// accounting_by: "host,host_pair,service" (any of them, at least one).
void accountingBy(MysqlOptions::Accounting& a, std::string_view key, const std::string& text) {
  a.by_host = a.by_host_pair = a.by_service = false;
  for (const std::string& item : commaItems(text)) {
    if (item == "host") a.by_host = true;
    else if (item == "host_pair") a.by_host_pair = true;
    else if (item == "service") a.by_service = true;
    else bad(key, "unknown table '" + item + "' (host, host_pair, service)");
  }
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(const std::string& s, const std::string& dsn) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    const int hi = i + 2 < s.size() ? hexDigit(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? hexDigit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) throw std::invalid_argument("mysql DSN '" + dsn + "': bad %-escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

void applyMysqlDsn(MysqlOptions& o, const std::string& dsn);

using Setter = void (*)(MysqlOptions&, std::string_view, const std::string&);
struct OptionEntry {
  std::string_view key;
  Setter set;
};

// One table for the DSN query and the YAML keys, so the two can never drift.
const OptionEntry kOptions[] = {
    // The DSN fills what it names; the entry's other keys keep their values.
    {"dsn", [](MysqlOptions& o, std::string_view, const std::string& v) { applyMysqlDsn(o, v); }},
    {"host", [](MysqlOptions& o, std::string_view, const std::string& v) { o.host = v; }},
    {"port",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.port = static_cast<uint16_t>(unsignedValue(k, v, 1, 65535));
     }},
    {"socket", [](MysqlOptions& o, std::string_view, const std::string& v) { o.socket = v; }},
    {"user", [](MysqlOptions& o, std::string_view, const std::string& v) { o.user = v; }},
    {"password", [](MysqlOptions& o, std::string_view, const std::string& v) { o.password = v; }},
    {"password_file", [](MysqlOptions& o, std::string_view, const std::string& v) { o.password_file = v; }},
    {"database", [](MysqlOptions& o, std::string_view, const std::string& v) { o.database = v; }},
    {"table", [](MysqlOptions& o, std::string_view, const std::string& v) { o.table = v; }},
    {"compat_view", [](MysqlOptions& o, std::string_view, const std::string& v) { o.compat_view = v; }},
    {"tls",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       if (v == "off" || v == "false" || v == "no") o.tls = MysqlOptions::Tls::kOff;
       else if (v == "required" || v == "on" || v == "true" || v == "yes") o.tls = MysqlOptions::Tls::kRequired;
       else if (v == "verify") o.tls = MysqlOptions::Tls::kVerify;
       else bad(k, "expected off, required or verify, not '" + v + "'");
     }},
    {"tls_ca", [](MysqlOptions& o, std::string_view, const std::string& v) { o.tls_ca = v; }},
    {"tls_cert", [](MysqlOptions& o, std::string_view, const std::string& v) { o.tls_cert = v; }},
    {"tls_key", [](MysqlOptions& o, std::string_view, const std::string& v) { o.tls_key = v; }},
    {"connect_timeout",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       // MYSQL_OPT_CONNECT_TIMEOUT counts whole seconds (mysql_connection.cc).
       o.connect_timeout_ms = static_cast<uint32_t>(durationMs(k, v, 1000, 3'600'000, 1000));
     }},
    {"io_timeout",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       // MYSQL_OPT_READ/WRITE_TIMEOUT count whole seconds (mysql_connection.cc).
       o.io_timeout_ms = static_cast<uint32_t>(durationMs(k, v, 1000, 3'600'000, 1000));
     }},
    {"method",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       if (v == "auto") o.method = MysqlOptions::Method::kAuto;
       else if (v == "load_data") o.method = MysqlOptions::Method::kLoadData;
       else if (v == "insert") o.method = MysqlOptions::Method::kInsert;
       else bad(k, "expected auto, load_data or insert, not '" + v + "'");
     }},
    {"batch_size",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.batch_size = unsignedValue(k, v, 1, 1'000'000);
     }},
    {"flush_interval",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.flush_interval_ms = durationMs(k, v, 10, 3'600'000);
     }},
    {"create_table",
     [](MysqlOptions& o, std::string_view k, const std::string& v) { o.create_table = boolValue(k, v); }},
    {"indexes", [](MysqlOptions& o, std::string_view k, const std::string& v) { o.indexes = indexList(k, v); }},
    {"partition",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       if (v == "none") o.partitioning = MysqlOptions::Partitioning::kNone;
       else if (v == "daily") o.partitioning = MysqlOptions::Partitioning::kDaily;
       else bad(k, "expected none or daily, not '" + v + "'");
     }},
    {"retention_days",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.retention_days = static_cast<uint32_t>(unsignedValue(k, v, 0, 36500));
     }},
    {"accounting_interval",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       if (v == "off" || v == "0") {
         o.accounting.interval_ms = 0;
         return;
       }
       const uint64_t ms = durationMs(k, v, 1000, 86'400'000, 1000);
       // Intervals tile the UTC day, so that the daily table sums whole intervals.
       if (86'400'000 % ms != 0) bad(k, v + " does not divide a day (1m, 5m, 10m, 15m, 30m, 1h, ... do)");
       o.accounting.interval_ms = ms;
     }},
    {"accounting_by",
     [](MysqlOptions& o, std::string_view k, const std::string& v) { accountingBy(o.accounting, k, v); }},
    {"accounting_flush",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.accounting.flush_ms = durationMs(k, v, 100, 3'600'000);
     }},
    {"accounting_retention_days",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.accounting.retention_days = static_cast<uint32_t>(unsignedValue(k, v, 0, 36500));
     }},
    {"observation_domain",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.observation_domain = static_cast<uint32_t>(unsignedValue(k, v, 0, UINT32_MAX));
     }},
    {"spool_dir", [](MysqlOptions& o, std::string_view, const std::string& v) { o.spool_dir = v; }},
    {"spool_max",
     [](MysqlOptions& o, std::string_view k, const std::string& v) { o.spool_max_bytes = bytesValue(k, v); }},
    {"spool_full",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       if (v == "drop_oldest") o.spool_full = MysqlOptions::SpoolFull::kDropOldest;
       else if (v == "drop_newest") o.spool_full = MysqlOptions::SpoolFull::kDropNewest;
       else bad(k, "expected drop_oldest or drop_newest, not '" + v + "'");
     }},
    {"retry_max",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.retry_max_interval_ms = durationMs(k, v, 100, 3'600'000);
     }},
    {"shutdown_timeout",
     [](MysqlOptions& o, std::string_view k, const std::string& v) {
       o.shutdown_timeout_ms = durationMs(k, v, 0, 3'600'000);
     }},
};

bool isIdentifier(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len) return false;
  bool all_digits = true;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
    if (c < '0' || c > '9') all_digits = false;
  }
  return !all_digits;
}

}  // namespace

void setMysqlOption(MysqlOptions& options, std::string_view key, const std::string& value) {
  for (const auto& e : kOptions) {
    if (e.key == key) {
      e.set(options, key, value);
      return;
    }
  }
  std::string known;
  for (const auto& e : kOptions) known += (known.empty() ? "" : ", ") + std::string(e.key);
  throw std::invalid_argument("unknown mysql option '" + std::string(key) + "' (known: " + known + ")");
}

const std::vector<std::string_view>& mysqlOptionKeys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> k;
    for (const auto& e : kOptions) k.push_back(e.key);
    return k;
  }();
  return keys;
}

namespace {
// The DSN as error messages may show it: a password in it is masked.
std::string redactedDsn(const std::string& dsn) {
  const size_t start = dsn.find("://"), at = dsn.find('@');
  if (start == std::string::npos || at == std::string::npos) return dsn;
  const size_t colon = dsn.find(':', start + 3);
  if (colon == std::string::npos || colon > at) return dsn;
  return dsn.substr(0, colon + 1) + "***" + dsn.substr(at);
}

void applyMysqlDsn(MysqlOptions& o, const std::string& dsn) {
  const std::string_view scheme = "mysql://";
  const std::string shown = redactedDsn(dsn);
  auto fail = [&](const std::string& what) -> void {
    throw std::invalid_argument("mysql DSN '" + shown + "': " + what +
                                " (expected mysql://USER@HOST:PORT/DATABASE?table=NAME)");
  };
  if (dsn.compare(0, scheme.size(), scheme) != 0) fail("must start with mysql://");
  std::string rest = dsn.substr(scheme.size());
  std::string query;
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  std::string path;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest.resize(slash);
  }
  std::string authority = rest;
  if (const size_t at = authority.rfind('@'); at != std::string::npos) {
    std::string userinfo = authority.substr(0, at);
    authority.erase(0, at + 1);
    if (userinfo.find(':') != std::string::npos)
      throw std::invalid_argument("mysql DSN '" + shown +
                                  "': a password in the DSN would be visible in the process list; give it with "
                                  "password_file or the FLOWFOLD_MYSQL_PASSWORD environment variable");
    if (userinfo.empty()) fail("empty user name before '@'");
    o.user = percentDecode(userinfo, shown);
  }
  if (!authority.empty()) {
    std::string port_text;
    if (authority.front() == '[') {
      const size_t close = authority.find(']');
      if (close == std::string::npos) fail("unclosed '[' in the host");
      o.host = authority.substr(1, close - 1);
      const std::string after = authority.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') fail("unexpected text after ']'");
        port_text = after.substr(1);
      }
    } else if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
      o.host = authority.substr(0, colon);
      port_text = authority.substr(colon + 1);
    } else {
      o.host = authority;
    }
    if (o.host.empty()) fail("empty host");
    if (!port_text.empty() || authority.back() == ':') {
      try {
        setMysqlOption(o, "port", port_text);
      } catch (const std::invalid_argument&) {
        fail("bad port '" + port_text + "'");
      }
    }
  }
  if (path.find('/') != std::string::npos) fail("the path must be just the database name");
  if (!path.empty()) o.database = percentDecode(path, shown);
  std::vector<std::string> query_keys;  // a key given twice is a mistake, not "the last one wins"
  size_t pos = 0;
  while (!query.empty() && pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    const std::string item = query.substr(pos, amp - pos);
    pos = amp + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) fail("query item '" + item + "' needs KEY=VALUE");
    const std::string key = percentDecode(item.substr(0, eq), shown);
    if (key == "dsn" || key == "password") fail("'" + key + "' cannot be given in the DSN");
    if (std::find(query_keys.begin(), query_keys.end(), key) != query_keys.end())
      fail("'" + key + "' is given twice");
    query_keys.push_back(key);
    try {
      setMysqlOption(o, key, percentDecode(item.substr(eq + 1), shown));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("mysql DSN '" + shown + "': " + e.what());
    }
  }
  if (authority.empty() && o.socket.empty()) fail("needs a host or ?socket=PATH");
}
}  // namespace

MysqlOptions parseMysqlDsn(const std::string& dsn) {
  MysqlOptions o;
  applyMysqlDsn(o, dsn);
  return o;
}

void validateMysqlOptions(const MysqlOptions& o) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("mysql exporter: " + what); };
  if (!isIdentifier(o.database, 64))
    fail("database name '" + o.database +
         "' is not a plain identifier (letters, digits, _; at most 64; not all digits)");
  if (!isIdentifier(o.table, 59))
    fail("table name '" + o.table + "' is not a plain identifier (letters, digits, _; at most 59; not all digits)");
  if (o.table == "flowfold_batches") fail("table name flowfold_batches is reserved for the sink's own bookkeeping");
  if (!o.compat_view.empty()) {
    if (!isIdentifier(o.compat_view, 64))
      fail("compat_view name '" + o.compat_view +
           "' is not a plain identifier (letters, digits, _; at most 64; not all digits)");
    if (o.compat_view == o.table || o.compat_view == o.table + "_view" || o.compat_view == "flowfold_batches")
      fail("compat_view '" + o.compat_view + "' would replace a table or view of the sink's own");
  }
  if (o.accounting.enabled() && o.table.size() > 64 - kLongestAccountingSuffix.size())
    fail("table name '" + o.table + "' leaves no room for the accounting tables' names (" + o.table +
         std::string(kLongestAccountingSuffix) + "): at most " +
         std::to_string(64 - kLongestAccountingSuffix.size()) + " characters with accounting");
  if (!o.accounting.enabled() && o.accounting.retention_days > 0)
    fail("accounting retention_days is set but accounting has no interval");
  if (o.user.empty() || o.user.size() > 128) fail("user name must be 1..128 characters");
  if (o.socket.empty() && o.host.empty()) fail("needs a host or a socket");
  if (o.batch_size < 1 || o.batch_size > 1'000'000) fail("batch_size must be 1..1000000");
  if (o.flush_interval_ms < 10) fail("flush_interval must be at least 10 ms");
  if (o.spool_max_bytes < (uint64_t{1} << 20)) fail("spool_max must be at least 1M");
  if (o.retention_days > 0 && o.partitioning != MysqlOptions::Partitioning::kDaily)
    fail("retention_days needs partition: daily (without partitions, expire old rows with DELETE as "
         "exporters/mysql/README.md shows)");
  if (o.tls == MysqlOptions::Tls::kVerify && o.tls_ca.empty())
    fail("tls: verify needs tls_ca (the CA certificate that signed the server's certificate)");
  if (o.tls_cert.empty() != o.tls_key.empty()) fail("tls_cert and tls_key go together");
  if (o.tls == MysqlOptions::Tls::kOff && (!o.tls_ca.empty() || !o.tls_cert.empty()))
    fail("tls_ca / tls_cert are set but tls is off (use tls: required or verify)");
}

std::string mysqlTargetName(const MysqlOptions& o) {
  std::string where;
  if (!o.socket.empty()) where = "localhost";
  else if (o.host.find(':') != std::string::npos) where = "[" + o.host + "]:" + std::to_string(o.port);
  else where = joinHostPort(o.host, std::to_string(o.port));
  std::string name = "mysql://" + o.user + "@" + where + "/" + o.database + "." + o.table;
  if (!o.socket.empty()) name += "?socket=" + o.socket;
  return name;
}

std::string mysqlSpoolDir(const MysqlOptions& o) {
  if (!o.spool_dir.empty()) return o.spool_dir;
  // One directory per target by default, so two sinks never share a spool.
  std::string host = o.socket.empty() ? o.host + "_" + std::to_string(o.port) : "socket";
  for (char& c : host)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      c = '_';
  return "/var/spool/flowfold/mysql/" + host + "_" + o.database + "." + o.table;
}

namespace {
// The first line of a file holding a password, without its line end.
std::string firstLine(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("mysql exporter: cannot read " + std::string(what) + " " + path + ": " +
                                    std::strerror(errno));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}
}  // namespace

std::string resolveMysqlPassword(const MysqlOptions& o) {
  if (!o.password.empty()) return o.password;
  if (!o.password_file.empty()) {
    const std::string line = firstLine(o.password_file, "password_file");
    struct stat st{};
    if (::stat(o.password_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH))
      logWarn("mysql exporter: password_file %s is readable by every user; chmod 600 it", o.password_file.c_str());
    return line;
  }
  // A systemd credential (LoadCredential=mysql-password:FILE in the unit):
  // systemd hands the service a copy only it can read, in a directory of its own.
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
    const std::string credential = std::string(dir) + "/" + kMysqlPasswordCredential;
    if (::access(credential.c_str(), F_OK) == 0) return firstLine(credential, "systemd credential");
  }
  if (const char* env = std::getenv("FLOWFOLD_MYSQL_PASSWORD")) return env;
  return {};
}

}  // namespace flowfold
