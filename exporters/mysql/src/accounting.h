#pragma once
// The accounting tables' rows of a window of records: the records summed per
// (interval, host, direction), per (day, host, direction), per (interval,
// source, destination) and per (interval, protocol, service port), written
// as upserts that add to the rows already there. The sink gathers the
// records of many batches (accounting.flush apart) so that a busy host is
// one row per interval and window, not one per batch; mysql_sink.h says how
// the window is counted exactly once.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "spool_record.h"

namespace flowfold::mysql {

/// The accounting tables' names.
std::string accountingHostTable(const std::string& table);
std::string accountingHostDailyTable(const std::string& table);
std::string accountingPairTable(const std::string& table);
std::string accountingServiceTable(const std::string& table);
/// The tables `options.accounting` asks for, in creation order.
std::vector<std::string> accountingTables(const MysqlOptions& options);
/// CREATE TABLE IF NOT EXISTS of each of them.
std::vector<std::string> createAccountingTablesSql(const MysqlOptions& options);

/// The port a flow's service is known by: for TCP, UDP, SCTP and UDP-Lite the
/// lower of its two ports (a client's port is ephemeral: 32768-60999 on
/// Linux, 49152-65535 elsewhere, above the services' ports); for ICMP the
/// destination port field (type * 256 + code); 0 for other protocols.
uint16_t servicePort(const FlowKey& key);

class AccountingWindow {
 public:
  /// local_networks: nullptr or empty: every address has host rows.
  AccountingWindow(const MysqlOptions::Accounting& options, const LocalNetworks* local_networks);

  void clear();
  void add(const FlowRecord& record);

  /// The upserts (INSERT ... ON DUPLICATE KEY UPDATE adding the counts) of
  /// everything added since clear(), at most rows_per_statement rows each;
  /// none when nothing was added.
  std::vector<std::string> upserts(const std::string& table, size_t rows_per_statement = 1000);

  /// Rows the upserts carry (for the sink's counters).
  uint64_t rows() const { return rows_; }
  /// Records added since clear().
  uint64_t records() const { return records_; }
  /// Rows held now (equal keys are summed from time to time, not at once).
  size_t heldRows() const { return hosts_.size() + host_days_.size() + pairs_.size() + services_.size(); }

 private:
  struct Counts {
    uint64_t packets = 0, bytes = 0, flows = 0;
  };
  struct HostRow {
    uint64_t period_ms;
    std::array<uint8_t, 16> addr;
    uint8_t ip_version;
    uint8_t out;  // 1: the host sent (source), 0: it received
    Counts counts;
  };
  struct PairRow {
    uint64_t period_ms;
    std::array<uint8_t, 16> src, dst;
    uint8_t ip_version;
    Counts counts;
  };
  struct ServiceRow {
    uint64_t period_ms;
    uint8_t protocol;
    uint16_t port;
    Counts counts;
  };

  void hostRows(std::vector<HostRow>& rows, uint64_t period_ms, const FlowRecord& r);
  /// Sums equal keys, so that memory follows the distinct keys, not the records.
  void merge();

  const MysqlOptions::Accounting options_;
  const LocalNetworks* const local_networks_;
  std::vector<HostRow> hosts_, host_days_;
  std::vector<PairRow> pairs_;
  std::vector<ServiceRow> services_;
  uint64_t rows_ = 0;
  uint64_t records_ = 0;
  size_t merge_at_ = kFirstMerge;
  static constexpr size_t kFirstMerge = 1 << 16;
};

}  // namespace flowfold::mysql
