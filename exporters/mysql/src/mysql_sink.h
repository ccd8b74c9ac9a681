#pragma once
// The sink thread: connects (with backoff), learns from flowfold_batches how
// far its spool is committed, and writes the spool to the database batch by
// batch, each batch in one transaction with its bookkeeping row.
//
// Accounting (options.accounting): the records of committed batches are
// summed in memory for a window (accounting.flush) and then added to the
// accounting tables in one transaction that also moves this spool's mark in
// flowfold_accounting to the window's end. Each batch's bookkeeping row
// holds the ids of its rows in the flow table, so after a restart, a SIGKILL
// or a failed accounting transaction the records between the mark and the
// last committed batch are read back from the flow table and counted again:
// the accounting tables count every committed record exactly once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "accounting.h"
#include "mysql_connection.h"
#include "spool.h"

namespace flowfold::mysql {

class Sink {
 public:
  /// `spool` is null when another exporter of this process still holds the
  /// directory (SIGHUP reload): the thread then waits for it and opens it.
  Sink(const MysqlOptions& options, std::string password, std::string name, std::string spool_dir,
       Spool::Limits limits, std::unique_ptr<Spool> spool, ExporterCounters& counters);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  /// The spool for the export thread to append to; waits up to `wait` while
  /// a deferred spool is being opened. Null if it could not be opened.
  Spool* spool(std::chrono::milliseconds wait);

  /// Asks the thread to write everything spooled now and waits until it is
  /// committed (true), the database fails twice in a row (false: the records
  /// stay spooled) or timeout_ms passes.
  bool flush(uint64_t timeout_ms);

  MysqlSinkStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;

  void run();
  bool openDeferredSpool();
  bool connect();
  /// The text address columns (src_addr, dest_addr) and the per-host
  /// indexes on them: added to a table made before them when create_table
  /// is set, else said once with the ALTER to run (rows are written either
  /// way: only queries need them). False: a statement failed.
  bool ensureTextAddresses();
  /// A column of the flow table that came later than the table (an older
  /// table lacks it), with what the messages say of it.
  struct LaterColumn {
    std::string column;      // the one looked for ("application": the first of its group)
    std::string what;        // "the column `direction`", for the log and the errors
    std::string add_sql;     // the ALTER TABLE that adds it
    std::string needed_by;   // ", which local_networks needs" (or "")
    std::string remedy;      // ", or unset local_networks" (or "")
    std::string added_note;  // " (local_networks is set)" (or "")
  };
  /// `needed` (something writes it): added with create_table, else the sink
  /// refuses to write (the records wait in the spool), naming the ALTER to
  /// run. `has`: the table has it now. False: refused or a statement failed
  /// (said, counted, the connection closed).
  bool ensureLaterColumn(const LaterColumn& column, bool needed, bool& has);
  /// True when the flow table has this column / this index.
  bool hasColumn(const std::string& column, bool& has, const std::string& table = {});
  bool hasIndex(const std::string& index, bool& has);
  /// The accounting tables: created with create_table, else required (the
  /// sink says which are missing and where their DDL is). False: not ready.
  bool ensureAccountingTables();
  /// flowfold_batches' first_id/last_id: added with create_table; without
  /// them (create_table off) accounting cannot start. False: not ready.
  bool ensureBatchIds();
  /// After a connect: the accounting window starts at this spool's mark; the
  /// records committed after it (up to `committed`) are read back from the
  /// flow table and written. False: a statement failed.
  bool recoverAccounting(std::optional<SpoolPosition> committed);
  /// Reads back the flow rows with ids [first_id, last_id] into the window.
  bool recount(uint64_t first_id, uint64_t last_id, uint64_t& rows);
  /// The window is old or large enough; or, `drained` (nothing left to
  /// write), a flush waits for it.
  bool accountingDue(bool drained);
  /// Adds the window to the accounting tables and moves the mark, in one
  /// transaction. False: it failed (the next connect counts it again).
  bool flushAccounting();
  /// Sets this spool's mark to `end` (first: only if it has none).
  std::string accountingMarkSql(const SpoolPosition& end, bool first) const;
  /// This spool's mark (nullopt: none yet), locked for the transaction when `for_update`.
  bool readAccountingMark(bool for_update, std::optional<SpoolPosition>& mark);
  /// A server-side error in accounting: logged; flows go on; the sums are
  /// counted again from the flow table a minute later. Returns true.
  bool parkAccounting(const std::string& what, unsigned errnum, const std::string& error);
  /// Hourly: accounting rows older than accounting.retention_days.
  void expireAccounting();
  bool waitForWork();
  bool drain(bool force_partial);
  bool writeBatch(const SpoolBatch& batch);
  /// ids: the flow table ids of the rows written (first, last); 0, 0 for none.
  bool writeRows(const SpoolBatch& batch, bool load_data, uint64_t& rows, uint64_t& bytes, uint64_t& first_id,
                 uint64_t& last_id);
  void account(const SpoolBatch& batch, uint64_t bytes);
  /// Hourly upkeep (partitions, retention), when any is configured.
  bool hasMaintenance() const;
  void maintain();
  void maintainPartitions();
  void pruneBatchRows();
  void failure(const std::string& what, unsigned errnum, const std::string& message);
  void backoff();
  void wake();
  void logMethodOnce();

  const MysqlOptions options_;
  const std::string password_;
  const std::string name_;
  const std::string spool_dir_;
  const Spool::Limits limits_;
  ExporterCounters& counters_;
  // options_.local_networks when set (rows get `direction`), else nullptr.
  const LocalNetworks* const local_networks_;
  const bool with_direction_;
  const bool with_applications_;  // options_.applications: the DPI label's columns

  Connection conn_;
  // Accounting: the sums of the records of the batches committed since the
  // mark, [accounted_, window_end_) of the spool.
  AccountingWindow accounting_;
  SpoolPosition accounted_;
  SpoolPosition window_end_;
  Clock::time_point window_started_{};
  bool batch_ids_ = false;  // flowfold_batches has first_id/last_id
  bool accounting_parked_ = false;  // parkAccounting(): counted again from the flow table at accounting_retry_at_
  Clock::time_point accounting_retry_at_{};
  uint64_t autoinc_step_ = 1;       // @@auto_increment_increment of the session

  mutable std::mutex mu_;
  std::condition_variable cv_;        // wakes the sink thread
  std::condition_variable waiters_;   // wakes flush() and spool() callers
  std::unique_ptr<Spool> spool_;      // set once (constructor or thread), under mu_
  bool spool_failed_ = false;
  bool exited_ = false;
  uint64_t flush_requested_ = 0, flush_done_ = 0, flush_failed_ = 0;
  unsigned flush_attempts_failed_ = 0;  // failures since the pending flush request
  std::atomic<bool> stop_{false};

  // Sink thread state.
  Clock::time_point last_write_ = Clock::now();
  Clock::time_point next_maintenance_ = Clock::now();
  uint64_t backoff_ms_ = 0;
  bool outage_ = false;          // a connect or batch failed since the last good connect
  bool ever_connected_ = false;
  bool use_insert_ = false;      // kInsert, or kAuto after the server refused LOAD DATA LOCAL
  bool partition_warned_ = false;
  bool text_address_warned_ = false;  // said once: the table lacks src_addr (create_table: false)
  uint64_t pruned_below_ = 0;    // flowfold_batches rows of segments before this are deleted
  SpoolPosition replay_mark_;    // records before it waited out an outage / a restart
  bool replaying_ = false;
  std::optional<SpoolBatch> uncertain_;  // failed batch whose COMMIT may have happened
  SpoolBatch batch_;
  std::string sql_;
  std::string last_logged_;
  Clock::time_point last_logged_at_{};

  mutable std::mutex stats_mu_;
  MysqlSinkStats stats_;

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace flowfold::mysql
