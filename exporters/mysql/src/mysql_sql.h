#pragma once
// The SQL the sink speaks: schema DDL, the row encodings for multi-row
// INSERT and for LOAD DATA, and the UTC day arithmetic of daily partitions.

#include <charconv>
#include <cstdint>
#include <string>

#include "flowfold/exporters/mysql_exporter.h"
#include "spool_record.h"

namespace flowfold::mysql {

/// How many day partitions are kept ready beyond today.
inline constexpr int kPartitionDaysAhead = 3;

/// Column list of the flow table in the order the row encoders write them
/// (`flow_id` after `end_reason`); with_direction: `direction` last.
/// with_applications: then `application`, `category`, `server_name`, `app_guessed`.
const std::string& flowColumns(bool with_direction = false, bool with_applications = false);
/// The DPI label's columns (CREATE TABLE, and the ALTER for an older table).
extern const char* const kApplicationColumnsSql;
std::string addApplicationColumnsSql(const std::string& table);
/// The `direction` column's definition, for CREATE TABLE and the ALTER TABLE
/// that adds it to an older table.
extern const char* const kDirectionColumnSql;
std::string addDirectionColumnSql(const std::string& table);
/// The `flow_id` column's, likewise (every row writes it).
extern const char* const kFlowIdColumnSql;
std::string addFlowIdColumnSql(const std::string& table);
/// The addresses as text (generated, not stored: INET6_NTOA of src_ip and
/// dest_ip), which an index on them lets `WHERE src_addr = '10.1.2.3'` find
/// fast; a table made before them gets them with this ALTER.
std::string addAddressColumnsSql(const std::string& table);
/// The per-host index of `index` (kSrcHost or kDestHost): its name, and the
/// ALTER that adds it to a table made without it.
const char* hostIndexName(MysqlOptions::Index index);
std::string addHostIndexSql(const std::string& table, MysqlOptions::Index index);
/// The view named compat_view (MysqlOptions::compat_view).
std::string createCompatViewSql(const MysqlOptions& o);

std::string createTableSql(const MysqlOptions& o, int64_t today);
/// with_direction: the view shows `direction` as text (the table has the
/// column); with_flow_id, `flow_id`.
/// with_applications: the label's columns.
std::string createViewSql(const MysqlOptions& o, bool with_direction = true, bool with_flow_id = true,
                          bool with_applications = true);
std::string createBatchesSql();
/// flowfold_batches' `first_id`, `last_id` (the flow table ids of a batch's
/// rows, from which the accounting sums of a batch can be counted again),
/// and the ALTER that adds them to a table made before them.
extern const char* const kBatchIdColumnsSql;
std::string addBatchIdColumnsSql();
/// flowfold_accounting: per spool and table, the spool position up to which
/// the accounting tables have counted the records.
std::string createAccountingMarkSql();

/// Appends "(v1,v2,...)" for a multi-row INSERT (binary columns as 0x... literals).
/// local_networks (nullptr: no direction column) appends the direction.
/// applications: the label's four values after it.
void appendInsertRow(std::string& out, const SpooledFlow& f, const LocalNetworks* local_networks = nullptr,
                     bool applications = false);
/// Appends one tab-separated line for LOAD DATA ... CHARACTER SET binary
/// (binary columns raw, with \0 \t \n \\ escaped).
void appendLoadDataRow(std::string& out, const SpooledFlow& f, const LocalNetworks* local_networks = nullptr,
                       bool applications = false);
std::string insertPrefix(const std::string& table, bool with_direction = false, bool with_applications = false);
std::string loadDataSql(const std::string& table, bool with_direction = false, bool with_applications = false);

/// Days since 1970-01-01 (UTC) of the system clock.
int64_t utcToday();
/// "YYYY-MM-DD" of a day number.
std::string dayDate(int64_t day);
/// Partition holding day `day`: "pYYYYMMDD".
std::string partitionName(int64_t day);
/// Inverse of partitionName(); false for other names (pmax).
bool parsePartitionName(const std::string& name, int64_t& day);

/// Appends an integer in decimal.
template <typename T>
void appendNumber(std::string& out, T v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  out.append(buf, end);
}

/// "2026-11-26 10:00:00.123" (UTC), clamped to DATETIME's range.
void appendDatetime(std::string& out, uint64_t epoch_ms);

}  // namespace flowfold::mysql
