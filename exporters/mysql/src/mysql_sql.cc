#include "mysql_sql.h"

#include "flowfold/exporters/app_names.h"
#include "flowfold/exporters/civil_date.h"

#include <algorithm>
#include <charconv>
#include <chrono>

namespace flowfold::mysql {

namespace {

void appendDigits(std::string& out, unsigned v, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out.append(buf, static_cast<size_t>(width));
}

constexpr char kHex[] = "0123456789abcdef";

void appendHexLiteral(std::string& out, const uint8_t* p, size_t n) {
  out += "0x";
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
}

void appendEscapedBinary(std::string& out, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    switch (p[i]) {
      case 0: out += "\\0"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      default: out.push_back(static_cast<char>(p[i]));
    }
  }
}

size_t addrLen(const FlowKey& k) { return k.ip_version == 6 ? 16 : 4; }

std::string quoteIdent(const std::string& s) { return "`" + s + "`"; }

// The column list, one place. Order matters: both row encoders follow it.
const char* const kColumnNames[] = {"first_time", "last_time",  "ip_version", "protocol",   "src_ip",    "src_port",
                                    "dest_ip",    "dest_port",  "packets",    "bytes",      "flags",     "tos",
                                    "min_ttl",    "max_ttl",    "vlan",       "inner_vlan", "mpls_label", "src_mac",
                                    "dest_mac",   "ingress_if", "exporter_id", "end_reason",
                                    "flow_id"};

// Writes the fields in kColumnNames order; `binary` and `sep` choose the encoding.
template <typename Binary>
void appendFields(std::string& out, const SpooledFlow& f, char sep, bool quote_times, Binary binary) {
  const FlowRecord& r = f.record;
  const FlowKey& k = r.key;
  if (quote_times) out.push_back('\'');
  appendDatetime(out, r.first_ms);
  if (quote_times) out.push_back('\'');
  out.push_back(sep);
  if (quote_times) out.push_back('\'');
  appendDatetime(out, r.last_ms);
  if (quote_times) out.push_back('\'');
  out.push_back(sep);
  appendNumber(out, unsigned{k.ip_version});
  out.push_back(sep);
  appendNumber(out, unsigned{k.protocol});
  out.push_back(sep);
  binary(out, k.src_addr.data(), addrLen(k));
  out.push_back(sep);
  appendNumber(out, unsigned{k.src_port});
  out.push_back(sep);
  binary(out, k.dst_addr.data(), addrLen(k));
  out.push_back(sep);
  appendNumber(out, unsigned{k.dst_port});
  out.push_back(sep);
  appendNumber(out, r.packets);
  out.push_back(sep);
  appendNumber(out, r.octets);
  out.push_back(sep);
  appendNumber(out, unsigned{r.tcp_flags});
  out.push_back(sep);
  appendNumber(out, unsigned{r.tos});
  out.push_back(sep);
  appendNumber(out, unsigned{r.min_ttl});
  out.push_back(sep);
  appendNumber(out, unsigned{r.max_ttl});
  out.push_back(sep);
  appendNumber(out, unsigned{k.vlan_id});
  out.push_back(sep);
  appendNumber(out, unsigned{k.inner_vlan_id});
  out.push_back(sep);
  appendNumber(out, r.mplsTopLabel());
  out.push_back(sep);
  binary(out, r.src_mac.data(), 6);
  out.push_back(sep);
  binary(out, r.dst_mac.data(), 6);
  out.push_back(sep);
  appendNumber(out, unsigned{k.ingress_if});
  out.push_back(sep);
  appendNumber(out, f.observation_domain);
  out.push_back(sep);
  appendNumber(out, static_cast<unsigned>(r.end_reason));
  out.push_back(sep);
  // 0: a record spooled by a flowfold before flow ids (spool format 1): NULL.
  if (r.flow_id == 0) {
    out += quote_times ? "NULL" : "\\N";
  } else {
    appendNumber(out, r.flow_id);
  }
}

std::string macText(const char* column) {
  // 001122aabbcc -> 00:11:22:aa:bb:cc
  std::string c = quoteIdent(column);
  return "LOWER(INSERT(INSERT(INSERT(INSERT(INSERT(HEX(" + c + "),11,0,':'),9,0,':'),7,0,':'),5,0,':'),3,0,':'))";
}

}  // namespace

void appendDatetime(std::string& out, uint64_t ms) {
  // DATETIME holds 1000-01-01 .. 9999-12-31; flowfold's times start at 1970.
  ms = std::min<uint64_t>(ms, 253402300799999ull);
  const int64_t secs = static_cast<int64_t>(ms / 1000);
  const int64_t day = secs / 86400;
  const unsigned sod = static_cast<unsigned>(secs % 86400);
  const CivilDate date = civilFromDays(day);
  appendDigits(out, static_cast<unsigned>(date.year), 4);
  out.push_back('-');
  appendDigits(out, date.month, 2);
  out.push_back('-');
  appendDigits(out, date.day, 2);
  out.push_back(' ');
  appendDigits(out, sod / 3600, 2);
  out.push_back(':');
  appendDigits(out, sod / 60 % 60, 2);
  out.push_back(':');
  appendDigits(out, sod % 60, 2);
  out.push_back('.');
  appendDigits(out, static_cast<unsigned>(ms % 1000), 3);
}

const std::string& flowColumns(bool with_direction, bool with_applications) {
  static const std::string cols = [] {
    std::string s;
    for (const char* c : kColumnNames) s += (s.empty() ? "" : ",") + quoteIdent(c);
    return s;
  }();
  static const std::string kApp = ",`application`,`category`,`server_name`,`app_guessed`";
  static const std::string with[4] = {cols, cols + ",`direction`", cols + kApp, cols + ",`direction`" + kApp};
  return with[(with_direction ? 1 : 0) + (with_applications ? 2 : 0)];
}

const char* const kApplicationColumnsSql =
    "`application` VARCHAR(64) CHARACTER SET ascii NULL COMMENT 'nDPI: master.app, e.g. TLS.YouTube; NULL: not "
    "labelled (dpi off)', "
    "`category` VARCHAR(32) CHARACTER SET ascii NULL COMMENT 'nDPI category, e.g. Web', "
    "`server_name` VARCHAR(80) CHARACTER SET latin1 NULL COMMENT 'TLS/QUIC SNI, HTTP Host, DNS query name; NULL: none', "
    "`app_guessed` TINYINT UNSIGNED NULL COMMENT '1: the flow ended before nDPI named it: its guess'";

std::string addApplicationColumnsSql(const std::string& table) {
  std::string s = "ALTER TABLE " + quoteIdent(table);
  std::string_view cols = kApplicationColumnsSql;
  // One ADD COLUMN per column definition (they are separated by ", `").
  size_t start = 0;
  while (start < cols.size()) {
    size_t next = cols.find(", `", start);
    if (next == std::string_view::npos) next = cols.size();
    s += std::string(start == 0 ? " ADD COLUMN " : ", ADD COLUMN ") + std::string(cols.substr(start, next - start));
    start = next == cols.size() ? next : next + 2;
  }
  return s;
}

const char* const kDirectionColumnSql =
    "`direction` TINYINT UNSIGNED NULL COMMENT 'flowDirection: 0 ingress, 1 egress; NULL: none (local to local, "
    "remote to remote) or local_networks unset'";

std::string addDirectionColumnSql(const std::string& table) {
  return "ALTER TABLE " + quoteIdent(table) + " ADD COLUMN " + kDirectionColumnSql;
}

const char* const kFlowIdColumnSql =
    "`flow_id` BIGINT UNSIGNED NULL COMMENT 'flowId: the same in every row of one flow; NULL: spooled by a flowfold "
    "before flow ids'";

std::string addFlowIdColumnSql(const std::string& table) {
  return "ALTER TABLE " + quoteIdent(table) + " ADD COLUMN " + kFlowIdColumnSql;
}

namespace {

const char* const kAddressColumnsSql[] = {
    "`src_addr` VARCHAR(39) CHARACTER SET ascii AS (INET6_NTOA(`src_ip`)) VIRTUAL COMMENT 'src_ip as text, "
    "computed when read: WHERE src_addr = ''10.1.2.3'' (or ''2001:db8::1'')'",
    "`dest_addr` VARCHAR(39) CHARACTER SET ascii AS (INET6_NTOA(`dest_ip`)) VIRTUAL COMMENT 'dest_ip as text'",
};

std::string hostIndexColumns(MysqlOptions::Index index) {
  return index == MysqlOptions::Index::kSrcHost ? "(`src_addr`, `first_time`)" : "(`dest_addr`, `first_time`)";
}

}  // namespace

std::string addAddressColumnsSql(const std::string& table) {
  return "ALTER TABLE " + quoteIdent(table) + " ADD COLUMN " + kAddressColumnsSql[0] + ", ADD COLUMN " +
         kAddressColumnsSql[1];
}

const char* hostIndexName(MysqlOptions::Index index) {
  return index == MysqlOptions::Index::kSrcHost ? "idx_src_addr_time" : "idx_dest_addr_time";
}

std::string addHostIndexSql(const std::string& table, MysqlOptions::Index index) {
  return "ALTER TABLE " + quoteIdent(table) + " ADD KEY " + quoteIdent(hostIndexName(index)) + " " +
         hostIndexColumns(index);
}

std::string createCompatViewSql(const MysqlOptions& o) {
  return "CREATE OR REPLACE VIEW " + quoteIdent(o.compat_view) +
         " AS SELECT `src_addr` AS `src_ip`, `src_port`, " + macText("src_mac") +
         " AS `src_mac`,\n"
         "  `dest_addr` AS `dest_ip`, `dest_port`, " + macText("dest_mac") +
         " AS `dest_mac`, `protocol`,\n"
         "  `bytes` AS `length`, `packets`, `flags`, `first_time` AS `timestamp`, `last_time`\n"
         "FROM " + quoteIdent(o.table);
}

std::string createTableSql(const MysqlOptions& o, int64_t today) {
  const bool daily = o.partitioning == MysqlOptions::Partitioning::kDaily;
  std::string s = "CREATE TABLE IF NOT EXISTS " + quoteIdent(o.table) +
                  " (\n"
                  "  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,\n"
                  "  `first_time` DATETIME(3) NOT NULL COMMENT 'flowStartMilliseconds, UTC',\n"
                  "  `last_time` DATETIME(3) NOT NULL COMMENT 'flowEndMilliseconds, UTC',\n"
                  "  `ip_version` TINYINT UNSIGNED NOT NULL,\n"
                  "  `protocol` TINYINT UNSIGNED NOT NULL,\n"
                  "  `src_ip` VARBINARY(16) NOT NULL COMMENT 'INET6_NTOA() reads it: 4 bytes IPv4, 16 bytes IPv6',\n"
                  "  `src_port` SMALLINT UNSIGNED NOT NULL,\n"
                  "  `dest_ip` VARBINARY(16) NOT NULL,\n"
                  "  `dest_port` SMALLINT UNSIGNED NOT NULL COMMENT 'ICMP: type*256+code',\n"
                  "  `packets` BIGINT UNSIGNED NOT NULL,\n"
                  "  `bytes` BIGINT UNSIGNED NOT NULL COMMENT 'sum of IP total lengths',\n"
                  "  `flags` TINYINT UNSIGNED NOT NULL COMMENT 'TCP flags, OR over the packets',\n"
                  "  `tos` TINYINT UNSIGNED NOT NULL COMMENT 'of the first packet',\n"
                  "  `min_ttl` TINYINT UNSIGNED NOT NULL,\n"
                  "  `max_ttl` TINYINT UNSIGNED NOT NULL,\n"
                  "  `vlan` SMALLINT UNSIGNED NOT NULL COMMENT 'outer VLAN id, 0 untagged',\n"
                  "  `inner_vlan` SMALLINT UNSIGNED NOT NULL COMMENT 'QinQ customer VLAN id',\n"
                  "  `mpls_label` MEDIUMINT UNSIGNED NOT NULL COMMENT 'top label, 0 none',\n"
                  "  `src_mac` BINARY(6) NOT NULL,\n"
                  "  `dest_mac` BINARY(6) NOT NULL,\n"
                  "  `ingress_if` INT UNSIGNED NOT NULL,\n"
                  "  `exporter_id` INT UNSIGNED NOT NULL COMMENT 'observation domain id',\n"
                  "  `end_reason` TINYINT UNSIGNED NOT NULL COMMENT '1 idle, 2 active, 3 end of flow, 4 forced, 5 lack "
                  "of resources',\n";
  s += std::string("  ") + kDirectionColumnSql + ",\n";
  // After `direction`: where ALTER TABLE puts it in a table made before it.
  s += std::string("  ") + kFlowIdColumnSql + ",\n";
  // Then the addresses as text, and the DPI label, likewise.
  for (const char* c : kAddressColumnsSql) s += std::string("  ") + c + ",\n";
  s += std::string("  ") + kApplicationColumnsSql + ",\n";
  // A partitioned table needs the partitioning column in every unique key.
  s += daily ? "  PRIMARY KEY (`id`, `first_time`)" : "  PRIMARY KEY (`id`)";
  for (auto idx : o.indexes) {
    switch (idx) {
      case MysqlOptions::Index::kTime: s += ",\n  KEY `idx_first_time` (`first_time`)"; break;
      case MysqlOptions::Index::kSrcHost:
      case MysqlOptions::Index::kDestHost:
        s += ",\n  KEY " + quoteIdent(hostIndexName(idx)) + " " + hostIndexColumns(idx);
        break;
    }
  }
  s += "\n) ENGINE=InnoDB COMMENT='flowfold flow records'";
  if (daily) {
    // The first partition has no lower bound: it also takes older records
    // (a replayed capture); pmax takes anything beyond the prepared days.
    s += "\nPARTITION BY RANGE COLUMNS(`first_time`) (";
    for (int64_t d = today; d <= today + kPartitionDaysAhead; ++d)
      s += "\n  PARTITION " + partitionName(d) + " VALUES LESS THAN ('" + dayDate(d + 1) + "'),";
    s += "\n  PARTITION pmax VALUES LESS THAN (MAXVALUE))";
  }
  return s;
}

std::string createViewSql(const MysqlOptions& o, bool with_direction, bool with_flow_id, bool with_applications) {
  return "CREATE OR REPLACE VIEW " + quoteIdent(o.table + "_view") +
         " AS SELECT `id`, `first_time`, `last_time`, `ip_version`, `protocol`,\n"
         "  `src_addr` AS `src_ip`, `src_port`, `dest_addr` AS `dest_ip`, `dest_port`,\n"
         "  IF(`protocol` IN (1, 58), CONCAT(`dest_port` >> 8, '.', `dest_port` & 255), NULL) AS `icmp_type_code`,\n"
         "  `packets`, `bytes`, `flags`,\n"
         "  CONCAT(IF(`flags` & 128, 'C', '.'), IF(`flags` & 64, 'E', '.'), IF(`flags` & 32, 'U', '.'),\n"
         "         IF(`flags` & 16, 'A', '.'), IF(`flags` & 8, 'P', '.'), IF(`flags` & 4, 'R', '.'),\n"
         "         IF(`flags` & 2, 'S', '.'), IF(`flags` & 1, 'F', '.')) AS `flags_text`,\n"
         "  `tos`, `min_ttl`, `max_ttl`, `vlan`, `inner_vlan`, `mpls_label`,\n"
         "  " + macText("src_mac") + " AS `src_mac`,\n"
         "  " + macText("dest_mac") + " AS `dest_mac`,\n"
         "  `ingress_if`, `exporter_id`,\n"
         "  ELT(`end_reason`, 'idle', 'active', 'end_of_flow', 'forced', 'lack_of_resources') AS `end_reason`" +
         std::string(with_direction ? ",\n  ELT(`direction` + 1, 'ingress', 'egress') AS `direction`" : "") +
         std::string(with_flow_id ? ",\n  `flow_id`" : "") +
         std::string(with_applications ? ",\n  `application`, `category`, `server_name`, `app_guessed`\n" : "\n") +
         "FROM " + quoteIdent(o.table);
}

std::string createBatchesSql() {
  return "CREATE TABLE IF NOT EXISTS `flowfold_batches` (\n"
         "  `spool_id` BIGINT UNSIGNED NOT NULL COMMENT 'id in the spool directory''s spool.state',\n"
         "  `segment` BIGINT UNSIGNED NOT NULL COMMENT 'spool segment file number',\n"
         "  `first_record` BIGINT UNSIGNED NOT NULL COMMENT 'index of the batch''s first record in the segment',\n"
         "  `end_record` BIGINT UNSIGNED NOT NULL COMMENT 'one past its last record',\n"
         "  `row_count` INT UNSIGNED NOT NULL,\n"
         "  `table_name` VARCHAR(64) NOT NULL,\n"
         "  `committed_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) COMMENT 'UTC',\n"
         "  " + std::string(kBatchIdColumnsSql) + ",\n"
         "  PRIMARY KEY (`spool_id`, `segment`, `first_record`)\n"
         ") ENGINE=InnoDB COMMENT='flowfold: batches committed from each spool (exactly-once bookkeeping)'";
}

const char* const kBatchIdColumnsSql =
    "`first_id` BIGINT UNSIGNED NULL COMMENT 'the batch''s rows are ids first_id..last_id of table_name', "
    "`last_id` BIGINT UNSIGNED NULL";

std::string addBatchIdColumnsSql() {
  return "ALTER TABLE `flowfold_batches` ADD COLUMN `first_id` BIGINT UNSIGNED NULL COMMENT 'the batch''s rows are "
         "ids first_id..last_id of table_name', ADD COLUMN `last_id` BIGINT UNSIGNED NULL";
}

std::string createAccountingMarkSql() {
  return "CREATE TABLE IF NOT EXISTS `flowfold_accounting` (\n"
         "  `spool_id` BIGINT UNSIGNED NOT NULL,\n"
         "  `table_name` VARCHAR(64) NOT NULL,\n"
         "  `segment` BIGINT UNSIGNED NOT NULL COMMENT 'the accounting tables hold every record of this spool "
         "before (segment, end_record)',\n"
         "  `end_record` BIGINT UNSIGNED NOT NULL,\n"
         "  `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),\n"
         "  PRIMARY KEY (`spool_id`, `table_name`)\n"
         ") ENGINE=InnoDB COMMENT='flowfold: how far the accounting tables have counted each spool'";
}

namespace {

// The label's four values, each after `sep`: NULL (`null`) when DPI did not
// label the flow, strings through `text` (a hex literal, or escaped bytes).
template <typename Text>
void appendApplication(std::string& out, const AppLabel& app, char sep, std::string_view null, Text text) {
  auto put = [&](std::string_view v, bool present) {
    out.push_back(sep);
    if (present) {
      text(out, reinterpret_cast<const uint8_t*>(v.data()), v.size());
    } else {
      out += null;
    }
  };
  const bool labelled = app.inspected();
  put(applicationName(app), labelled);
  put(categoryName(app), labelled);
  put(app.serverName(), labelled && app.serverNameLength() != 0);
  out.push_back(sep);
  if (labelled) {
    out.push_back(app.guessed() ? '1' : '0');
  } else {
    out += null;
  }
}

// A string as an SQL literal: hex (any bytes go), '' when empty ("0x" alone is no literal).
void appendSqlText(std::string& out, const uint8_t* p, size_t n) {
  if (n == 0) {
    out += "''";
  } else {
    appendHexLiteral(out, p, n);
  }
}

}  // namespace

void appendInsertRow(std::string& out, const SpooledFlow& f, const LocalNetworks* local_networks, bool applications) {
  out.push_back('(');
  appendFields(out, f, ',', true, appendHexLiteral);
  if (local_networks != nullptr) {
    const FlowDirection d = local_networks->direction(f.record.key);
    out += d == FlowDirection::kNone ? ",NULL" : d == FlowDirection::kEgress ? ",1" : ",0";
  }
  if (applications) appendApplication(out, f.record.app, ',', "NULL", appendSqlText);
  out.push_back(')');
}

void appendLoadDataRow(std::string& out, const SpooledFlow& f, const LocalNetworks* local_networks,
                       bool applications) {
  appendFields(out, f, '\t', false, appendEscapedBinary);
  if (local_networks != nullptr) {
    const FlowDirection d = local_networks->direction(f.record.key);
    out += d == FlowDirection::kNone ? "\t\\N" : d == FlowDirection::kEgress ? "\t1" : "\t0";
  }
  if (applications) appendApplication(out, f.record.app, '\t', "\\N", appendEscapedBinary);
  out.push_back('\n');
}

std::string insertPrefix(const std::string& table, bool with_direction, bool with_applications) {
  return "INSERT INTO " + quoteIdent(table) + " (" + flowColumns(with_direction, with_applications) + ") VALUES ";
}

std::string loadDataSql(const std::string& table, bool with_direction, bool with_applications) {
  // The file name is only a label: the sink's local-infile handler serves
  // the batch from memory, so no temporary file is written.
  return "LOAD DATA LOCAL INFILE 'flowfold-batch' INTO TABLE " + quoteIdent(table) +
         " CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (" +
         flowColumns(with_direction, with_applications) + ")";
}

int64_t utcToday() {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return secs / 86400;
}

std::string dayDate(int64_t day) {
  const CivilDate date = civilFromDays(day);
  std::string s;
  appendDigits(s, static_cast<unsigned>(date.year), 4);
  s.push_back('-');
  appendDigits(s, date.month, 2);
  s.push_back('-');
  appendDigits(s, date.day, 2);
  return s;
}

std::string partitionName(int64_t day) {
  std::string date = dayDate(day);
  date.erase(std::remove(date.begin(), date.end(), '-'), date.end());
  return "p" + date;
}

bool parsePartitionName(const std::string& name, int64_t& day) {
  if (name.size() != 9 || name[0] != 'p') return false;
  unsigned v = 0;
  for (size_t i = 1; i < 9; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<unsigned>(name[i] - '0');
  }
  const unsigned y = v / 10000, m = v / 100 % 100, d = v % 100;
  if (m < 1 || m > 12 || d < 1 || d > 31) return false;
  day = daysFromCivil(y, m, d);
  return true;
}

}  // namespace flowfold::mysql
