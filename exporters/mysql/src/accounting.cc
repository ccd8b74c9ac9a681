#include "accounting.h"

#include <arpa/inet.h>

#include <algorithm>
#include <tuple>

#include "mysql_sql.h"

namespace flowfold::mysql {

namespace {

constexpr uint64_t kDayMs = 86'400'000;

std::string quoteIdent(const std::string& s) { return "`" + s + "`"; }

// '10.1.2.3' / '2001:db8::1', as INET6_NTOA() writes them (both follow
// RFC 5952 and BIND's inet_ntop, IPv4-mapped addresses included).
void appendAddress(std::string& out, const std::array<uint8_t, 16>& addr, uint8_t ip_version) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(ip_version == 6 ? AF_INET6 : AF_INET, addr.data(), text, sizeof text);
  out.push_back('\'');
  out += text;
  out.push_back('\'');
}

// 'YYYY-MM-DD hh:mm:ss' (whole seconds: the column has no fraction).
void appendSeconds(std::string& out, uint64_t ms) {
  out.push_back('\'');
  appendDatetime(out, ms);
  out.resize(out.size() - 4);  // ".mmm"
  out.push_back('\'');
}

void appendCounts(std::string& out, uint64_t packets, uint64_t bytes, uint64_t flows) {
  out.push_back(',');
  appendNumber(out, packets);
  out.push_back(',');
  appendNumber(out, bytes);
  out.push_back(',');
  appendNumber(out, flows);
  out.push_back(')');
}

constexpr const char* kCountColumnsSql =
    "  `packets` BIGINT UNSIGNED NOT NULL,\n"
    "  `bytes` BIGINT UNSIGNED NOT NULL COMMENT 'sum of IP total lengths',\n"
    "  `flows` BIGINT UNSIGNED NOT NULL COMMENT 'flow records (a flow in three intervals counts in each)',\n";

constexpr const char* kAddUpCountsSql =
    " ON DUPLICATE KEY UPDATE `packets` = `packets` + VALUES(`packets`), `bytes` = `bytes` + VALUES(`bytes`), "
    "`flows` = `flows` + VALUES(`flows`)";

// Sorts rows by key and sums the counts of equal keys into the first of them.
template <typename Row, typename Key>
void mergeRows(std::vector<Row>& rows, Key key) {
  std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) { return key(a) < key(b); });
  size_t out = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (out > 0 && key(rows[out - 1]) == key(rows[i])) {
      rows[out - 1].counts.packets += rows[i].counts.packets;
      rows[out - 1].counts.bytes += rows[i].counts.bytes;
      rows[out - 1].counts.flows += rows[i].counts.flows;
    } else {
      rows[out++] = rows[i];
    }
  }
  rows.resize(out);
}

// Cuts `rows` into INSERT ... ON DUPLICATE KEY UPDATE statements.
template <typename Row, typename Append>
void appendUpserts(std::vector<std::string>& out, const std::string& prefix, const std::vector<Row>& rows,
                   size_t per_statement, Append append_row) {
  for (size_t i = 0; i < rows.size(); i += per_statement) {
    std::string sql = prefix;
    const size_t end = std::min(rows.size(), i + per_statement);
    for (size_t k = i; k < end; ++k) {
      if (k != i) sql.push_back(',');
      append_row(sql, rows[k]);
    }
    sql += kAddUpCountsSql;
    out.push_back(std::move(sql));
  }
}

}  // namespace

std::string accountingHostTable(const std::string& t) { return t + "_acct_host"; }
std::string accountingHostDailyTable(const std::string& t) { return t + "_acct_host_daily"; }
std::string accountingPairTable(const std::string& t) { return t + "_acct_pair"; }
std::string accountingServiceTable(const std::string& t) { return t + "_acct_service"; }

std::vector<std::string> accountingTables(const MysqlOptions& o) {
  std::vector<std::string> out;
  if (!o.accounting.enabled()) return out;
  if (o.accounting.by_host) {
    out.push_back(accountingHostTable(o.table));
    out.push_back(accountingHostDailyTable(o.table));
  }
  if (o.accounting.by_host_pair) out.push_back(accountingPairTable(o.table));
  if (o.accounting.by_service) out.push_back(accountingServiceTable(o.table));
  return out;
}

std::vector<std::string> createAccountingTablesSql(const MysqlOptions& o) {
  std::vector<std::string> out;
  if (!o.accounting.enabled()) return out;
  // Text addresses (INET6_NTOA's form): WHERE host = '10.1.2.3' reads them
  // through the index as written, on MariaDB and MySQL alike.
  const std::string host_column = " VARCHAR(39) CHARACTER SET ascii NOT NULL";
  const std::string interval = "  `interval_start` DATETIME NOT NULL COMMENT 'UTC; the interval is " +
                               std::to_string(o.accounting.interval_ms / 1000) + " s',\n";
  if (o.accounting.by_host) {
    const std::string who = "  `host`" + host_column + ",\n"
                            "  `direction` ENUM('in','out') NOT NULL COMMENT 'in: the host received, out: it sent',\n";
    out.push_back("CREATE TABLE IF NOT EXISTS " + quoteIdent(accountingHostTable(o.table)) + " (\n" + interval + who +
                  kCountColumnsSql +
                  "  PRIMARY KEY (`interval_start`, `host`, `direction`),\n"
                  // Covering (with the primary key's `direction` that every
                  // secondary entry holds): one host over a month reads
                  // 17,000 index entries, not as many rows of a big table.
                  "  KEY `idx_host_time` (`host`, `interval_start`, `bytes`, `packets`, `flows`)\n"
                  ") ENGINE=InnoDB COMMENT='flowfold accounting: per host and interval'");
    out.push_back("CREATE TABLE IF NOT EXISTS " + quoteIdent(accountingHostDailyTable(o.table)) +
                  " (\n  `day` DATE NOT NULL COMMENT 'UTC',\n" + who + kCountColumnsSql +
                  "  PRIMARY KEY (`day`, `host`, `direction`),\n"
                  "  KEY `idx_host_day` (`host`, `day`)\n"
                  ") ENGINE=InnoDB COMMENT='flowfold accounting: per host and UTC day'");
  }
  if (o.accounting.by_host_pair)
    out.push_back("CREATE TABLE IF NOT EXISTS " + quoteIdent(accountingPairTable(o.table)) + " (\n" + interval +
                  "  `src_host`" + host_column + ",\n  `dest_host`" + host_column + ",\n" + kCountColumnsSql +
                  "  PRIMARY KEY (`interval_start`, `src_host`, `dest_host`),\n"
                  "  KEY `idx_pair_time` (`src_host`, `dest_host`, `interval_start`)\n"
                  ") ENGINE=InnoDB COMMENT='flowfold accounting: per source, destination and interval'");
  if (o.accounting.by_service)
    out.push_back("CREATE TABLE IF NOT EXISTS " + quoteIdent(accountingServiceTable(o.table)) + " (\n" + interval +
                  "  `protocol` TINYINT UNSIGNED NOT NULL,\n"
                  "  `port` SMALLINT UNSIGNED NOT NULL COMMENT 'TCP/UDP: the lower port; ICMP: type*256+code',\n" +
                  kCountColumnsSql +
                  "  PRIMARY KEY (`interval_start`, `protocol`, `port`),\n"
                  "  KEY `idx_service_time` (`protocol`, `port`, `interval_start`)\n"
                  ") ENGINE=InnoDB COMMENT='flowfold accounting: per protocol, service port and interval'");
  return out;
}

uint16_t servicePort(const FlowKey& k) {
  switch (k.protocol) {
    case 6:    // TCP
    case 17:   // UDP
    case 132:  // SCTP
    case 136:  // UDP-Lite
      return std::min(k.src_port, k.dst_port);
    case 1:
    case 58: return k.dst_port;  // ICMP, ICMPv6: type * 256 + code
    default: return 0;
  }
}

AccountingWindow::AccountingWindow(const MysqlOptions::Accounting& options, const LocalNetworks* local_networks)
    : options_(options), local_networks_(local_networks && !local_networks->empty() ? local_networks : nullptr) {}

void AccountingWindow::clear() {
  hosts_.clear();
  host_days_.clear();
  pairs_.clear();
  services_.clear();
  rows_ = 0;
  records_ = 0;
  merge_at_ = kFirstMerge;
}

void AccountingWindow::merge() {
  auto host_key = [](const HostRow& h) { return std::tie(h.period_ms, h.ip_version, h.addr, h.out); };
  mergeRows(hosts_, host_key);
  mergeRows(host_days_, host_key);
  mergeRows(pairs_, [](const PairRow& p) { return std::tie(p.period_ms, p.ip_version, p.src, p.dst); });
  mergeRows(services_, [](const ServiceRow& s) { return std::tie(s.period_ms, s.protocol, s.port); });
}

void AccountingWindow::hostRows(std::vector<HostRow>& rows, uint64_t period_ms, const FlowRecord& r) {
  const FlowKey& k = r.key;
  const Counts c{r.packets, r.octets, 1};
  if (!local_networks_ || local_networks_->contains(k.src_addr, k.ip_version))
    rows.push_back(HostRow{period_ms, k.src_addr, k.ip_version, 1, c});
  if (!local_networks_ || local_networks_->contains(k.dst_addr, k.ip_version))
    rows.push_back(HostRow{period_ms, k.dst_addr, k.ip_version, 0, c});
}

void AccountingWindow::add(const FlowRecord& r) {
  // The record lies in one interval (the cache splits at its boundaries):
  // its first packet's interval is its last's.
  const uint64_t interval_ms = r.first_ms - r.first_ms % options_.interval_ms;
  const Counts c{r.packets, r.octets, 1};
  if (options_.by_host) {
    hostRows(hosts_, interval_ms, r);
    hostRows(host_days_, r.first_ms - r.first_ms % kDayMs, r);
  }
  if (options_.by_host_pair)
    pairs_.push_back(PairRow{interval_ms, r.key.src_addr, r.key.dst_addr, r.key.ip_version, c});
  if (options_.by_service) services_.push_back(ServiceRow{interval_ms, r.key.protocol, servicePort(r.key), c});
  ++records_;
  if (heldRows() >= merge_at_) {
    merge();
    merge_at_ = std::max(kFirstMerge, 2 * heldRows());
  }
}

std::vector<std::string> AccountingWindow::upserts(const std::string& table, size_t per_statement) {
  merge();
  rows_ = heldRows();

  std::vector<std::string> out;
  const std::string counts = "`packets`, `bytes`, `flows`) VALUES ";
  appendUpserts(out, "INSERT INTO " + quoteIdent(accountingHostTable(table)) +
                         " (`interval_start`, `host`, `direction`, " + counts,
                hosts_, per_statement, [](std::string& s, const HostRow& h) {
                  s.push_back('(');
                  appendSeconds(s, h.period_ms);
                  s.push_back(',');
                  appendAddress(s, h.addr, h.ip_version);
                  s += h.out ? ",'out'" : ",'in'";
                  appendCounts(s, h.counts.packets, h.counts.bytes, h.counts.flows);
                });
  appendUpserts(out, "INSERT INTO " + quoteIdent(accountingHostDailyTable(table)) +
                         " (`day`, `host`, `direction`, " + counts,
                host_days_, per_statement, [](std::string& s, const HostRow& h) {
                  s += "('" + dayDate(static_cast<int64_t>(h.period_ms / kDayMs)) + "',";
                  appendAddress(s, h.addr, h.ip_version);
                  s += h.out ? ",'out'" : ",'in'";
                  appendCounts(s, h.counts.packets, h.counts.bytes, h.counts.flows);
                });
  appendUpserts(out, "INSERT INTO " + quoteIdent(accountingPairTable(table)) +
                         " (`interval_start`, `src_host`, `dest_host`, " + counts,
                pairs_, per_statement, [](std::string& s, const PairRow& p) {
                  s.push_back('(');
                  appendSeconds(s, p.period_ms);
                  s.push_back(',');
                  appendAddress(s, p.src, p.ip_version);
                  s.push_back(',');
                  appendAddress(s, p.dst, p.ip_version);
                  appendCounts(s, p.counts.packets, p.counts.bytes, p.counts.flows);
                });
  appendUpserts(out, "INSERT INTO " + quoteIdent(accountingServiceTable(table)) +
                         " (`interval_start`, `protocol`, `port`, " + counts,
                services_, per_statement, [](std::string& s, const ServiceRow& v) {
                  s.push_back('(');
                  appendSeconds(s, v.period_ms);
                  s.push_back(',');
                  appendNumber(s, unsigned{v.protocol});
                  s.push_back(',');
                  appendNumber(s, unsigned{v.port});
                  appendCounts(s, v.counts.packets, v.counts.bytes, v.counts.flows);
                });
  return out;
}

}  // namespace flowfold::mysql
