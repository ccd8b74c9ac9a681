#include "mysql_sink.h"

#include <pthread.h>

#include <algorithm>
#include <cinttypes>
#include <set>

#include "flowfold/exporters/thread_signals.h"
#include "flowfold/log.h"
#include "mysql_sql.h"

namespace flowfold::mysql {

namespace {

// Rows per INSERT statement: ~220 bytes each keeps a statement near 256 KiB,
// far below max_allowed_packet (16 MiB MariaDB, 64 MiB MySQL 8); larger
// statements were no faster in bench/mysql_bench.
constexpr size_t kRowsPerInsert = 1000;
constexpr uint64_t kFirstBackoffMs = 500;
constexpr auto kRepeatLogInterval = std::chrono::minutes(5);
constexpr auto kMaintenanceInterval = std::chrono::hours(1);
// An accounting window is written early when it holds this many rows (56 to
// 72 bytes each: at most about 140 MB).
constexpr size_t kMaxAccountingRows = 2'000'000;

// An error the server answered with (1000-1999: a refused statement), not
// one of the connection (2000-2999, the client library's).
bool isServerError(unsigned errnum) { return errnum >= 1000 && errnum < 2000; }

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// Records of [first, end) in `segment` that lie before `mark`.
uint64_t countBefore(uint64_t segment, uint64_t first, uint64_t end, const SpoolPosition& mark) {
  if (segment < mark.segment) return end - first;
  if (segment > mark.segment) return 0;
  return mark.record > first ? std::min(end, mark.record) - first : 0;
}

}  // namespace

Sink::Sink(const MysqlOptions& options, std::string password, std::string name, std::string spool_dir,
           Spool::Limits limits, std::unique_ptr<Spool> spool, ExporterCounters& counters)
    : options_(options),
      password_(std::move(password)),
      name_(std::move(name)),
      spool_dir_(std::move(spool_dir)),
      limits_(limits),
      counters_(counters),
      local_networks_(options_.local_networks.empty() ? nullptr : &options_.local_networks),
      with_direction_(local_networks_ != nullptr),
      with_applications_(options_.applications),
      accounting_(options_.accounting, local_networks_),
      spool_(std::move(spool)),
      use_insert_(options.method == MysqlOptions::Method::kInsert) {
  if (spool_) {
    spool_->setAppendListener([this] { wake(); });
    // Whatever is on disk before this run appends is a replay (how much of
    // it the database already has, only the first connect will tell).
    replay_mark_ = spool_->writePosition();
    replaying_ = spool_->pendingRecords() > 0;
  }
  stats_.method = use_insert_ ? "insert" : "load_data";
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "ff-mysql");  // for top -H, perf and /proc/PID/task
}

Sink::~Sink() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  {
    // A statement in flight gets a moment to finish; then the socket is cut.
    // Either way its batch stays in the spool until the database has it.
    std::unique_lock lock(mu_);
    if (!waiters_.wait_for(lock, std::chrono::seconds(2), [&] { return exited_; })) conn_.interrupt();
  }
  thread_.join();
  if (spool_) {
    const SpoolState st = spool_->state();
    if (st.pending_records > 0)
      logWarn("%s: %" PRIu64 " records (%s) are not in the database yet; they stay in the spool %s and are "
              "written when flowfold next runs with this spool",
              name_.c_str(), st.pending_records, mib(st.pending_records * kSpoolRecordSize).c_str(),
              spool_dir_.c_str());
  }
}

void Sink::wake() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

Spool* Sink::spool(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  waiters_.wait_for(lock, wait, [&] { return spool_ || spool_failed_ || exited_; });
  return spool_.get();
}

bool Sink::flush(uint64_t timeout_ms) {
  std::unique_lock lock(mu_);
  // A deferred spool (reload) may still be opening.
  waiters_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return spool_ || spool_failed_ || exited_; });
  if (!spool_ || exited_) return false;
  const uint64_t seq = ++flush_requested_;
  flush_attempts_failed_ = 0;
  cv_.notify_all();
  waiters_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return flush_done_ >= seq || flush_failed_ >= seq || exited_; });
  return flush_done_ >= seq;
}

MysqlSinkStats Sink::stats() const {
  MysqlSinkStats s;
  {
    std::lock_guard lock(stats_mu_);
    s = stats_;
  }
  Spool* spool = nullptr;
  {
    std::lock_guard lock(mu_);
    spool = spool_.get();
  }
  if (spool) {
    const SpoolState st = spool->state();
    s.records_spooled = st.records_spooled;
    s.spool_records = st.pending_records;
    s.spool_bytes = st.bytes;
    s.dropped_oldest = st.dropped_oldest;
    s.dropped_newest = st.dropped_newest;
    s.segments_quarantined = st.segments_quarantined;
  }
  return s;
}

// ---------------------------------------------------------------- the thread

void Sink::run() {
  leaveProcessSignalsToOtherThreads();
  if (openDeferredSpool()) {
    while (!stop_) {
      if (!conn_.connected() && !connect()) {
        backoff();
        continue;
      }
      const bool force = waitForWork();
      if (stop_) break;
      if (!drain(force) || (accountingDue(true) && !flushAccounting())) {
        conn_.close();
        backoff();
        continue;
      }
      backoff_ms_ = 0;  // only a working connection resets the backoff, not a mere login
      maintain();
      std::lock_guard lock(mu_);
      // A parked accounting window does not hold a flush up: the flow rows
      // are in, and its sums are counted from them later.
      if (flush_requested_ > flush_done_ && spool_->pendingRecords() == 0 &&
          (accounting_parked_ || !(accounted_ < window_end_)))
        flush_done_ = flush_requested_;
      waiters_.notify_all();
    }
  }
  conn_.close();
  {
    std::lock_guard lock(stats_mu_);
    stats_.connected = false;
  }
  std::lock_guard lock(mu_);
  exited_ = true;
  waiters_.notify_all();
}

bool Sink::openDeferredSpool() {
  {
    std::lock_guard lock(mu_);
    if (spool_) return true;
  }
  // A reload: the previous exporter for this directory is shutting down.
  auto claim = SpoolDirClaim::acquire(spool_dir_, stop_);
  if (!claim) return false;
  try {
    auto spool = std::make_unique<Spool>(spool_dir_, limits_, std::move(claim));
    spool->setAppendListener([this] { wake(); });
    replay_mark_ = spool->writePosition();
    replaying_ = spool->pendingRecords() > 0;
    std::lock_guard lock(mu_);
    spool_ = std::move(spool);
  } catch (const std::exception& e) {
    logError("%s: cannot open the spool: %s; records handed to this exporter are lost", name_.c_str(), e.what());
    std::lock_guard lock(mu_);
    spool_failed_ = true;
  }
  waiters_.notify_all();
  return spool_ != nullptr;
}

bool Sink::connect() {
  if (!conn_.connect(options_, password_)) {
    failure("cannot connect", conn_.errnum(), conn_.error());
    std::lock_guard lock(stats_mu_);
    ++stats_.connect_failures;
    return false;
  }
  auto fail = [&](const std::string& what) {
    failure(what, conn_.errnum(), conn_.error());
    conn_.close();
    std::lock_guard lock(stats_mu_);
    ++stats_.connect_failures;
    return false;
  };
  // Times are written as UTC text; keep the server's own NOW() and
  // CURRENT_TIMESTAMP in the same zone for this session.
  if (!conn_.exec("SET time_zone = '+00:00'")) return fail("session setup failed");
  {
    std::vector<std::vector<std::optional<std::string>>> step;
    if (!conn_.query("SELECT @@auto_increment_increment", step)) return fail("session setup failed");
    autoinc_step_ = !step.empty() && step[0][0] ? std::stoull(*step[0][0]) : 1;
  }
  if (options_.create_table) {
    if (!conn_.exec(createBatchesSql())) return fail("cannot create table flowfold_batches");
    if (!conn_.exec(createTableSql(options_, utcToday()))) return fail("cannot create table " + options_.table);
  }
  // Columns that came later than the table: an older table lacks them.
  // `direction` is needed with local_networks, `flow_id` always (every row
  // writes it), the DPI label's with dpi on; the views show what is present.
  bool has_direction = true, has_flow_id = true, has_applications = true;
  if (!ensureLaterColumn({"direction", "the column `direction`", addDirectionColumnSql(options_.table),
                          ", which local_networks needs", ", or unset local_networks", " (local_networks is set)"},
                         with_direction_, has_direction) ||
      !ensureLaterColumn({"flow_id", "the column `flow_id`", addFlowIdColumnSql(options_.table), "", "", ""}, true,
                         has_flow_id) ||
      !ensureLaterColumn({"application", "the columns `application`, `category`, `server_name`, `app_guessed`",
                          addApplicationColumnsSql(options_.table), ", which dpi needs", ", or set dpi: false",
                          " (dpi is on)"},
                         with_applications_, has_applications))
    return false;
  if (!ensureTextAddresses()) return fail("cannot add the text address columns or their indexes to " + options_.table);
  if (!ensureBatchIds() || !ensureAccountingTables()) {
    conn_.close();
    std::lock_guard lock(stats_mu_);
    ++stats_.connect_failures;
    return false;
  }
  if (options_.create_table && !conn_.exec(createViewSql(options_, has_direction, true, has_applications)))
    logWarn("%s: cannot create the view %s_view (%s); the flow table works without it", name_.c_str(),
            options_.table.c_str(), conn_.error().c_str());
  if (options_.create_table && !options_.compat_view.empty() && !conn_.exec(createCompatViewSql(options_)))
    logWarn("%s: cannot create the view %s (%s); the flow table works without it", name_.c_str(),
            options_.compat_view.c_str(), conn_.error().c_str());
  // Where does this spool stand? Everything up to the last committed batch
  // is in the database, whatever happened to the previous connection.
  std::vector<std::vector<std::optional<std::string>>> rows;
  const std::string where = "WHERE `spool_id` = " + std::to_string(spool_->id());
  if (!conn_.query("SELECT `segment`, `end_record` FROM `flowfold_batches` " + where +
                       " ORDER BY `segment` DESC, `first_record` DESC LIMIT 1",
                   rows))
    return fail("cannot read flowfold_batches");
  std::optional<SpoolPosition> committed;
  if (!rows.empty() && rows[0][0] && rows[0][1])
    committed = SpoolPosition{std::stoull(*rows[0][0]), std::stoull(*rows[0][1])};
  spool_->resumeAt(committed);
  if (uncertain_) {
    // The connection died around a COMMIT: the database says whether it happened.
    const SpoolPosition now = spool_->readPosition();
    if (now >= SpoolPosition{uncertain_->segment, uncertain_->end}) account(*uncertain_, 0);
    uncertain_.reset();
  }
  if (options_.accounting.enabled() && !recoverAccounting(committed)) {  // it said why
    conn_.close();
    std::lock_guard lock(stats_mu_);
    ++stats_.connect_failures;
    return false;
  }
  pruned_below_ = 0;
  pruneBatchRows();

  const uint64_t pending = spool_->pendingRecords();
  if (outage_ || !ever_connected_) {
    if (outage_) {
      replay_mark_ = std::max(replay_mark_, spool_->writePosition());
      replaying_ = replaying_ || pending > 0;
    }
    logInfo("%s: connected (server %s, %s); %" PRIu64 " spooled records to write", name_.c_str(),
            conn_.serverInfo().c_str(), use_insert_ ? "multi-row INSERT" : "LOAD DATA LOCAL", pending);
  }
  outage_ = false;
  ever_connected_ = true;
  last_logged_.clear();
  next_maintenance_ = Clock::now();
  {
    std::lock_guard lock(stats_mu_);
    stats_.connected = true;
    stats_.last_error.clear();
  }
  return true;
}

bool Sink::ensureLaterColumn(const LaterColumn& c, bool needed, bool& has) {
  auto failed = [&](const std::string& what, int errnum, const std::string& error) {
    failure(what, errnum, error);
    conn_.close();
    std::lock_guard lock(stats_mu_);
    ++stats_.connect_failures;
    return false;
  };
  has = true;
  if (!options_.create_table && !needed) return true;  // not looked at: nothing writes it
  if (!hasColumn(c.column, has))
    return failed("cannot read the columns of " + options_.table, conn_.errnum(), conn_.error());
  if (has || !needed) return true;
  if (!options_.create_table)
    return failed("table " + options_.table + " has no `" + c.column + "` column" + c.needed_by + ": run " + c.add_sql +
                      " (see exporters/mysql/README.md)" + c.remedy,
                  0, "");
  if (!conn_.exec(c.add_sql))
    return failed("cannot add " + c.what + " to " + options_.table, conn_.errnum(), conn_.error());
  logInfo("%s: added %s to %s%s", name_.c_str(), c.what.c_str(), options_.table.c_str(), c.added_note.c_str());
  has = true;
  return true;
}

bool Sink::hasColumn(const std::string& column, bool& has, const std::string& table) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (!conn_.query("SELECT 1 FROM information_schema.`COLUMNS` WHERE `TABLE_SCHEMA` = DATABASE() AND `TABLE_NAME` = '" +
                       (table.empty() ? options_.table : table) + "' AND `COLUMN_NAME` = '" + column + "'",
                   rows))
    return false;
  has = !rows.empty();
  return true;
}

bool Sink::hasIndex(const std::string& index, bool& has) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (!conn_.query("SELECT 1 FROM information_schema.`STATISTICS` WHERE `TABLE_SCHEMA` = DATABASE() AND "
                   "`TABLE_NAME` = '" + options_.table + "' AND `INDEX_NAME` = '" + index + "' LIMIT 1",
                   rows))
    return false;
  has = !rows.empty();
  return true;
}

bool Sink::ensureTextAddresses() {
  bool has = false;
  if (!hasColumn("src_addr", has)) return false;
  if (!has) {
    if (!options_.create_table) {
      if (!text_address_warned_)
        logWarn("%s: table %s has no text address columns (src_addr, dest_addr): rows are written, but "
                "WHERE src_addr = '10.1.2.3' needs them: run %s",
                name_.c_str(), options_.table.c_str(), addAddressColumnsSql(options_.table).c_str());
      text_address_warned_ = true;
      return true;
    }
    if (!conn_.exec(addAddressColumnsSql(options_.table))) return false;
    logInfo("%s: added the text address columns src_addr and dest_addr to %s (generated, not stored)", name_.c_str(),
            options_.table.c_str());
  }
  if (!options_.create_table) return true;
  for (const MysqlOptions::Index index : options_.indexes) {
    if (index == MysqlOptions::Index::kTime) continue;
    if (!hasIndex(hostIndexName(index), has)) return false;
    if (has) continue;
    logInfo("%s: adding the index %s to %s (it reads every row once: a large table takes a while)", name_.c_str(),
            hostIndexName(index), options_.table.c_str());
    if (!conn_.exec(addHostIndexSql(options_.table, index))) return false;
  }
  return true;
}

bool Sink::ensureAccountingTables() {
  if (!options_.accounting.enabled()) return true;
  if (options_.create_table) {
    if (!conn_.exec(createAccountingMarkSql())) {
      failure("cannot create table flowfold_accounting", conn_.errnum(), conn_.error());
      return false;
    }
    for (const std::string& sql : createAccountingTablesSql(options_))
      if (!conn_.exec(sql)) {
        failure("cannot create the accounting tables", conn_.errnum(), conn_.error());
        return false;
      }
    return true;
  }
  std::string missing;
  std::vector<std::string> tables = accountingTables(options_);
  tables.push_back("flowfold_accounting");
  for (const std::string& t : tables) {
    std::vector<std::vector<std::optional<std::string>>> rows;
    if (!conn_.query("SELECT 1 FROM information_schema.`TABLES` WHERE `TABLE_SCHEMA` = DATABASE() AND `TABLE_NAME` = '" +
                         t + "'",
                     rows)) {
      failure("cannot list the tables", conn_.errnum(), conn_.error());
      return false;
    }
    if (rows.empty()) missing += (missing.empty() ? "" : ", ") + t;
  }
  if (missing.empty()) return true;
  failure("accounting is on but create_table is off and the tables " + missing +
              " are missing: create them (their DDL is in exporters/mysql/README.md), or set create_table",
          0, "");
  return false;
}

bool Sink::ensureBatchIds() {
  bool has = false;
  if (!hasColumn("first_id", has, "flowfold_batches")) {
    failure("cannot read the columns of flowfold_batches", conn_.errnum(), conn_.error());
    return false;
  }
  batch_ids_ = has;
  if (has) return true;
  if (options_.create_table) {
    if (!conn_.exec(addBatchIdColumnsSql())) {
      failure("cannot add the columns first_id, last_id to flowfold_batches", conn_.errnum(), conn_.error());
      return false;
    }
    batch_ids_ = true;
    return true;
  }
  if (!options_.accounting.enabled()) return true;  // written without them
  failure("accounting needs the columns first_id and last_id in flowfold_batches: run " + addBatchIdColumnsSql() +
              " (or set create_table)",
          0, "");
  return false;
}

std::string Sink::accountingMarkSql(const SpoolPosition& end, bool first) const {
  // The first mark needs only the INSERT grant (INSERT IGNORE), so that a
  // missing UPDATE grant (parked accounting) still leaves where to count from.
  const std::string values = "(`spool_id`, `table_name`, `segment`, `end_record`) VALUES (" +
                             std::to_string(spool_->id()) + ", '" + options_.table + "', " +
                             std::to_string(end.segment) + ", " + std::to_string(end.record) + ")";
  if (first) return "INSERT IGNORE INTO `flowfold_accounting` " + values;
  return "INSERT INTO `flowfold_accounting` " + values +
         " ON DUPLICATE KEY UPDATE `segment` = VALUES(`segment`), `end_record` = VALUES(`end_record`)";
}

bool Sink::readAccountingMark(bool for_update, std::optional<SpoolPosition>& mark) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (!conn_.query("SELECT `segment`, `end_record` FROM `flowfold_accounting` WHERE `spool_id` = " +
                       std::to_string(spool_->id()) + " AND `table_name` = '" + options_.table + "'" +
                       (for_update ? " FOR UPDATE" : ""),
                   rows))
    return false;
  mark.reset();
  if (!rows.empty() && rows[0][0] && rows[0][1]) mark = SpoolPosition{std::stoull(*rows[0][0]), std::stoull(*rows[0][1])};
  return true;
}

bool Sink::recoverAccounting(std::optional<SpoolPosition> committed) {
  // Whatever the window held may or may not be in the tables (a failed
  // COMMIT): the mark says, and the flow table has the records after it.
  accounting_.clear();
  accounting_parked_ = false;
  auto fail = [&] {
    const unsigned errnum = conn_.errnum();
    if (isServerError(errnum)) return parkAccounting("cannot count the accounting tables up", errnum, conn_.error());
    failure("cannot bring the accounting tables up to date", errnum, conn_.error());
    return false;
  };
  const SpoolPosition flows_end = committed.value_or(SpoolPosition{});
  const std::string spool_id = std::to_string(spool_->id());
  std::optional<SpoolPosition> stored;
  if (!readAccountingMark(false, stored)) return fail();
  window_started_ = Clock::now();
  if (!stored) {
    // Accounting starts here: the records already in the flow table were
    // written before it was on.
    accounted_ = window_end_ = flows_end;
    if (!conn_.exec(accountingMarkSql(flows_end, true))) return fail();
    if (committed)
      logInfo("%s: accounting starts now: the rows already in %s (written while it was off) are not counted in the "
              "accounting tables",
              name_.c_str(), options_.table.c_str());
    return true;
  }
  const SpoolPosition mark = *stored;
  accounted_ = window_end_ = mark;
  if (!(mark < flows_end)) {
    if (flows_end < mark)
      logError("%s: flowfold_accounting says the accounting tables counted this spool up to segment %" PRIu64
               " record %" PRIu64 ", beyond what flowfold_batches says was written; counting from there on",
               name_.c_str(), mark.segment, mark.record);
    return true;
  }
  // The batches committed after the mark, in spool order.
  std::vector<std::vector<std::optional<std::string>>> rows;
  const std::string after = "(`segment` > " + std::to_string(mark.segment) + " OR (`segment` = " +
                            std::to_string(mark.segment) + " AND `first_record` >= " + std::to_string(mark.record) + "))";
  if (!conn_.query("SELECT `segment`, `first_record`, `end_record`, `row_count`, `first_id`, `last_id`, "
                   "`table_name` FROM `flowfold_batches` WHERE `spool_id` = " + spool_id + " AND " + after +
                       " ORDER BY `segment`, `first_record`",
                   rows))
    return fail();
  uint64_t recounted = 0, lost = 0;
  SpoolPosition expected = mark;
  for (const auto& r : rows) {
    if (!r[0] || !r[1] || !r[2] || !r[3]) continue;
    const SpoolPosition start{std::stoull(*r[0]), std::stoull(*r[1])};
    const SpoolPosition end{std::stoull(*r[0]), std::stoull(*r[2])};
    const uint64_t row_count = std::stoull(*r[3]);
    // A batch continues the previous one, or starts a later segment at its
    // beginning; anything else is a batch whose bookkeeping row is gone.
    if (start != expected && !(start.segment > expected.segment && start.record == 0))
      logWarn("%s: the bookkeeping of records between segment %" PRIu64 " record %" PRIu64 " and segment %" PRIu64
              " record %" PRIu64 " is gone; the accounting tables miss them",
              name_.c_str(), expected.segment, expected.record, start.segment, start.record);
    expected = end;
    // A spool that once wrote another table: those records are not this one's.
    if (row_count == 0 || !r[6] || *r[6] != options_.table) continue;
    if (!r[4] || !r[5]) {
      lost += row_count;
      continue;
    }
    uint64_t found = 0;
    if (!recount(std::stoull(*r[4]), std::stoull(*r[5]), found)) return fail();
    if (found > row_count)
      logWarn("%s: the ids recorded for a batch of %" PRIu64 " rows of %s hold %" PRIu64 " rows; another writer's "
              "rows are counted with them (see \"One writer per flow table\" in exporters/mysql/README.md)",
              name_.c_str(), row_count, options_.table.c_str(), found);
    recounted += found;
    lost += row_count > found ? row_count - found : 0;
  }
  window_end_ = flows_end;
  if (lost > 0)
    logWarn("%s: %" PRIu64 " records in %s cannot be counted in the accounting tables (written by a flowfold that "
            "did not record their ids, or deleted since)",
            name_.c_str(), lost, options_.table.c_str());
  {
    std::lock_guard lock(stats_mu_);
    stats_.accounting_recounted += recounted;
    stats_.accounting_lost += lost;
  }
  if (recounted > 0)
    logInfo("%s: counting %" PRIu64 " records in the accounting tables that were written to %s before the last "
            "stop or failure",
            name_.c_str(), recounted, options_.table.c_str());
  return flushAccounting();
}

bool Sink::recount(uint64_t first_id, uint64_t last_id, uint64_t& found) {
  constexpr uint64_t kSlice = 50'000;
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (uint64_t from = first_id; from <= last_id; from += kSlice) {
    const uint64_t to = std::min(last_id, from + kSlice - 1);
    rows.clear();
    if (!conn_.query("SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', `first_time`) DIV 1000, `ip_version`, "
                     "`protocol`, `src_ip`, `src_port`, `dest_ip`, `dest_port`, `packets`, `bytes` FROM `" +
                         options_.table + "` WHERE `id` BETWEEN " + std::to_string(from) + " AND " +
                         std::to_string(to),
                     rows))
      return false;
    for (const auto& r : rows) {
      if (std::any_of(r.begin(), r.end(), [](const auto& c) { return !c; })) continue;
      FlowRecord f;
      f.first_ms = f.last_ms = std::stoull(*r[0]);
      f.key.ip_version = static_cast<uint8_t>(std::stoul(*r[1]));
      f.key.protocol = static_cast<uint8_t>(std::stoul(*r[2]));
      std::copy_n(r[3]->begin(), std::min<size_t>(16, r[3]->size()), f.key.src_addr.begin());
      f.key.src_port = static_cast<uint16_t>(std::stoul(*r[4]));
      std::copy_n(r[5]->begin(), std::min<size_t>(16, r[5]->size()), f.key.dst_addr.begin());
      f.key.dst_port = static_cast<uint16_t>(std::stoul(*r[6]));
      f.packets = std::stoull(*r[7]);
      f.octets = std::stoull(*r[8]);
      accounting_.add(f);
      ++found;
    }
  }
  return true;
}

bool Sink::accountingDue(bool drained) {
  if (!options_.accounting.enabled()) return false;
  if (accounting_parked_) return Clock::now() >= accounting_retry_at_;
  if (!(accounted_ < window_end_)) return false;
  if (Clock::now() - window_started_ >= std::chrono::milliseconds(options_.accounting.flush_ms)) return true;
  if (accounting_.heldRows() >= kMaxAccountingRows) return true;
  if (!drained) return false;  // a flush (shutdown) writes the window once the spool is drained, not per batch
  std::lock_guard lock(mu_);
  return flush_requested_ > flush_done_;
}

bool Sink::flushAccounting() {
  if (accounting_parked_) return recoverAccounting(spool_->readPosition());
  if (!(accounted_ < window_end_)) return true;
  auto fail = [&](const std::string& what, bool rollback) {
    const unsigned errnum = conn_.errnum();
    const std::string error = conn_.error();
    if (rollback) conn_.exec("ROLLBACK");
    {
      std::lock_guard lock(stats_mu_);
      ++stats_.batch_failures;
    }
    if (isServerError(errnum)) return parkAccounting(what, errnum, error);
    failure(what, errnum, error);  // the connection: reconnect, then count again
    return false;
  };
  const std::vector<std::string> upserts = accounting_.upserts(options_.table);
  if (!conn_.exec("START TRANSACTION")) return fail("cannot start an accounting transaction", false);
  // The mark, locked: a transaction of an earlier session whose COMMIT this
  // sink gave up on may still have moved it; then this window is counted
  // already, and the next connect counts again from where the mark is.
  std::optional<SpoolPosition> mark;
  if (!readAccountingMark(true, mark)) return fail("cannot read the accounting mark", true);
  if (mark != accounted_) {
    conn_.exec("ROLLBACK");
    failure("the accounting mark moved under this sink (a transaction of an earlier session committed late); "
            "counting again from it",
            0, "");
    return false;
  }
  for (const std::string& sql : upserts)
    if (!conn_.exec(sql)) return fail("cannot add to the accounting tables", true);
  if (!conn_.exec(accountingMarkSql(window_end_, false))) return fail("cannot move the accounting mark", true);
  if (!conn_.exec("COMMIT")) return fail("accounting COMMIT failed", false);
  accounted_ = window_end_;
  {
    std::lock_guard lock(stats_mu_);
    stats_.accounting_rows += accounting_.rows();
    stats_.accounting_windows += 1;
  }
  accounting_.clear();
  window_started_ = Clock::now();
  return true;
}

// The server refused an accounting statement (a missing UPDATE grant, a
// table changed by hand, a deadlock with a report): the flow rows go on;
// the sums wait, and in a while are counted again from the flow table (the
// mark has not moved, and the batch rows after it are kept).
bool Sink::parkAccounting(const std::string& what, unsigned errnum, const std::string& error) {
  constexpr auto kRetry = std::chrono::seconds(60);
  logWarn("%s: %s: %s (error %u); the flow rows go on being written, the accounting tables are brought up to date "
          "from them in %lld s",
          name_.c_str(), what.c_str(), error.c_str(), errnum, static_cast<long long>(kRetry.count()));
  accounting_.clear();
  accounting_parked_ = true;
  accounting_retry_at_ = Clock::now() + kRetry;
  return true;
}

bool Sink::waitForWork() {
  std::unique_lock lock(mu_);
  Clock::time_point deadline = last_write_ + std::chrono::milliseconds(options_.flush_interval_ms);
  if (hasMaintenance()) deadline = std::min(deadline, next_maintenance_);
  if (accounting_parked_) deadline = std::min(deadline, accounting_retry_at_);
  else if (accounted_ < window_end_)
    deadline = std::min(deadline, window_started_ + std::chrono::milliseconds(options_.accounting.flush_ms));
  cv_.wait_until(lock, deadline, [&] {
    return stop_ || flush_requested_ > flush_done_ || spool_->pendingRecords() >= options_.batch_size;
  });
  const auto now = Clock::now();
  const bool due = now >= last_write_ + std::chrono::milliseconds(options_.flush_interval_ms);
  if (due) last_write_ = now;  // the interval restarts even when nothing was waiting
  return due || flush_requested_ > flush_done_;
}

bool Sink::drain(bool force_partial) {
  while (!stop_) {
    const uint64_t pending = spool_->pendingRecords();
    if (pending == 0 || (pending < options_.batch_size && !force_partial)) return true;
    std::string error;
    if (!spool_->readBatch(options_.batch_size, batch_, error)) {
      if (!error.empty()) {
        failure("cannot read the spool", 0, error);
        return false;
      }
      // Records counted as waiting (checked above) that no read returns: a
      // spool whose numbering disagrees with the database's. Returning "done"
      // would wake this thread again at once and spin; back off and say so.
      failure("the spool counts " + std::to_string(pending) +
                  " records waiting but none can be read; stop flowfold and check the spool directory",
              0, "");
      return false;
    }
    if (!writeBatch(batch_)) {
      spool_->release(batch_);
      return false;
    }
    spool_->commit(batch_);
    pruneBatchRows();
    if (accountingDue(false) && !flushAccounting()) return false;
  }
  return true;
}

// Rows of segments gone from disk can never be needed again (those records
// cannot be replayed); deleting them keeps flowfold_batches to a few rows.
// The unlinks are made durable first: a segment that came back after a power
// cut while its rows were gone would be written twice.
void Sink::pruneBatchRows() {
  // With accounting, the rows after the mark are how the records not yet in
  // the accounting tables are found again (recoverAccounting).
  const uint64_t oldest = options_.accounting.enabled() ? std::min(spool_->oldestSegment(), accounted_.segment)
                                                        : spool_->oldestSegment();
  if (oldest <= pruned_below_) return;
  spool_->syncDirectory();
  if (conn_.exec("DELETE FROM `flowfold_batches` WHERE `spool_id` = " + std::to_string(spool_->id()) +
                 " AND `segment` < " + std::to_string(oldest)))
    pruned_below_ = oldest;
}

bool Sink::writeBatch(const SpoolBatch& b) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Takes the error before ROLLBACK can overwrite it.
    auto fail = [&](const std::string& what, bool rollback) {
      const unsigned errnum = conn_.errnum();
      const std::string error = conn_.error();
      if (rollback) conn_.exec("ROLLBACK");
      failure(what, errnum, error);
      // A failure after COMMIT was sent leaves the outcome open; the next
      // connect reads flowfold_batches to settle it.
      uncertain_ = SpoolBatch{b.segment, b.first, b.end, {}, b.corrupt};
      uncertain_->flows.resize(b.flows.size());
      // Not an export error in the common counters: nothing is lost, the
      // batch is retried (errors the sink recovers from are its own counter).
      std::lock_guard lock(stats_mu_);
      ++stats_.batch_failures;
      return false;
    };
    if (!conn_.exec("START TRANSACTION")) return fail("cannot start a transaction", false);
    uint64_t rows = 0, bytes = 0, first_id = 0, last_id = 0;
    const bool load_data = !use_insert_;
    if (!writeRows(b, load_data, rows, bytes, first_id, last_id)) {
      if (load_data && options_.method == MysqlOptions::Method::kAuto && isLocalInfileRefused(conn_.errnum())) {
        logInfo("%s: the server refuses LOAD DATA LOCAL (%s); using multi-row INSERT instead", name_.c_str(),
                conn_.error().c_str());
        conn_.exec("ROLLBACK");
        use_insert_ = true;
        std::lock_guard lock(stats_mu_);
        stats_.method = "insert";
        continue;
      }
      return fail(load_data ? "LOAD DATA failed" : "INSERT failed", true);
    }
    if (rows != b.flows.size()) {
      return fail("the server stored " + std::to_string(rows) + " rows of a batch of " +
                      std::to_string(b.flows.size()) + " (rolled back)",
                  true);
    }
    char row[320];
    std::snprintf(row, sizeof row,
                  "INSERT INTO `flowfold_batches` (`spool_id`, `segment`, `first_record`, `end_record`, `row_count`, "
                  "%s`table_name`) VALUES (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %zu, ",
                  batch_ids_ ? "`first_id`, `last_id`, " : "", spool_->id(), b.segment, b.first, b.end,
                  b.flows.size());
    std::string bookkeeping = row;
    if (batch_ids_)
      bookkeeping += first_id == 0 ? "NULL, NULL, " : std::to_string(first_id) + ", " + std::to_string(last_id) + ", ";
    if (!conn_.exec(bookkeeping + "'" + options_.table + "')")) return fail("cannot record the batch", true);
    if (!conn_.exec("COMMIT")) return fail("COMMIT failed", false);
    account(b, bytes);
    // The sums (parked: counted later from the flow table; a batch before
    // the mark: counted already).
    if (options_.accounting.enabled() && !accounting_parked_ && accounted_ < SpoolPosition{b.segment, b.end}) {
      if (!(accounted_ < window_end_)) window_started_ = Clock::now();
      for (const auto& f : b.flows) accounting_.add(f.record);
      window_end_ = SpoolPosition{b.segment, b.end};
    }
    return true;
  }
  return false;
}

// One statement's AUTO_INCREMENT ids are consecutive (InnoDB gives a
// statement whose row count is known, and LOAD DATA under the default
// innodb_autoinc_lock_mode 1, one run of ids), so a batch's rows are
// first_id..last_id. Not with auto_increment_increment above 1 (Galera,
// group replication) or when another writer took ids between two INSERTs
// of a batch: then no ids are recorded (such a batch cannot be counted
// again after a failure: accounting_lost, logged).
bool Sink::writeRows(const SpoolBatch& b, bool load_data, uint64_t& rows, uint64_t& bytes, uint64_t& first_id,
                     uint64_t& last_id) {
  rows = 0;
  bytes = 0;
  first_id = last_id = 0;
  if (b.flows.empty()) return true;
  if (load_data) {
    sql_.clear();
    for (const auto& f : b.flows) appendLoadDataRow(sql_, f, local_networks_, with_applications_);
    bytes = sql_.size();
    if (!conn_.loadDataLocal(loadDataSql(options_.table, with_direction_, with_applications_), sql_)) return false;
    rows = conn_.affectedRows();
    if (rows > 0 && autoinc_step_ == 1) {
      // The client library reports no insert id for LOAD DATA; the server knows it.
      std::vector<std::vector<std::optional<std::string>>> id;
      if (!conn_.query("SELECT LAST_INSERT_ID()", id)) return false;
      if (!id.empty() && id[0][0]) first_id = std::stoull(*id[0][0]);
      if (first_id != 0) last_id = first_id + rows - 1;
    }
    return true;
  }
  const std::string prefix = insertPrefix(options_.table, with_direction_, with_applications_);
  bool consecutive = true;
  for (size_t i = 0; i < b.flows.size(); i += kRowsPerInsert) {
    sql_ = prefix;
    const size_t end = std::min(b.flows.size(), i + kRowsPerInsert);
    for (size_t k = i; k < end; ++k) {
      if (k != i) sql_.push_back(',');
      appendInsertRow(sql_, b.flows[k], local_networks_, with_applications_);
    }
    bytes += sql_.size();
    if (!conn_.exec(sql_)) return false;
    rows += conn_.affectedRows();
    if (conn_.affectedRows() > 0 && consecutive) {
      // Each statement's ids follow the previous one's, or the batch's rows
      // are not one range (another writer took ids in between): none recorded.
      if (first_id != 0 && conn_.insertId() != last_id + 1) consecutive = false;
      if (first_id == 0) first_id = conn_.insertId();
      last_id = conn_.insertId() + conn_.affectedRows() - 1;
    }
  }
  if (!consecutive || autoinc_step_ != 1) first_id = last_id = 0;
  return true;
}

void Sink::account(const SpoolBatch& b, uint64_t bytes) {
  const uint64_t n = b.flows.size();
  counters_.records.fetch_add(n, std::memory_order_relaxed);
  counters_.messages.fetch_add(1, std::memory_order_relaxed);
  counters_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (b.corrupt) {
    counters_.dropped.fetch_add(b.corrupt, std::memory_order_relaxed);
    logError("%s: %" PRIu64 " spooled records of segment %" PRIu64 " failed their checksum and were skipped",
             name_.c_str(), b.corrupt, b.segment);
  }
  const uint64_t replayed = std::min(n, countBefore(b.segment, b.first, b.end, replay_mark_));
  {
    std::lock_guard lock(stats_mu_);
    stats_.records_committed += n;
    stats_.batches_committed += 1;
    stats_.records_replayed += replayed;
    stats_.dropped_corrupt += b.corrupt;
  }
  if (replaying_ && SpoolPosition{b.segment, b.end} >= replay_mark_) {
    replaying_ = false;
    std::lock_guard lock(stats_mu_);
    logInfo("%s: the spooled records are written (%" PRIu64 " replayed so far)", name_.c_str(),
            stats_.records_replayed);
  }
}

void Sink::failure(const std::string& what, unsigned errnum, const std::string& message) {
  outage_ = true;
  std::string text = message.empty() ? what : what + ": " + message;
  if (errnum) text += " (error " + std::to_string(errnum) + ")";
  {
    std::lock_guard lock(stats_mu_);
    stats_.connected = false;
    stats_.last_error = text;
  }
  // One clear line per distinct problem, a reminder every few minutes.
  const auto now = Clock::now();
  const bool repeat = text == last_logged_;
  if (!repeat || now - last_logged_at_ >= kRepeatLogInterval) {
    const std::string hint = errorHint(errnum, options_);
    const uint64_t pending = spool_->pendingRecords();
    const std::string held = pending ? std::to_string(pending) + " records are" : "records are";
    logWarn("%s: %s%s%s. %s kept in the spool %s; retrying with backoff%s", name_.c_str(), text.c_str(),
            hint.empty() ? "" : "; ", hint.c_str(), held.c_str(), spool_dir_.c_str(), repeat ? " (still failing)" : "");
    last_logged_ = text;
    last_logged_at_ = now;
  }
  // A flush (shutdown) tries twice, so a server that is restarting right
  // then does not strand the records; a server that is really away does not
  // hold up the shutdown for long.
  std::lock_guard lock(mu_);
  if (flush_requested_ > flush_failed_ && ++flush_attempts_failed_ >= 2) {
    flush_failed_ = flush_requested_;
    waiters_.notify_all();
  }
}

void Sink::backoff() {
  backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(backoff_ms_ * 2, options_.retry_max_interval_ms);
  std::unique_lock lock(mu_);
  // While a flush still waits, retry soon; a new flush request (shutdown)
  // cuts any wait short.
  const uint64_t seen = flush_requested_;
  const uint64_t wait = flush_requested_ > flush_failed_ ? kFirstBackoffMs : backoff_ms_;
  cv_.wait_for(lock, std::chrono::milliseconds(wait), [&] { return stop_ || flush_requested_ > seen; });
}

bool Sink::hasMaintenance() const {
  return options_.partitioning == MysqlOptions::Partitioning::kDaily || options_.accounting.retention_days > 0;
}

void Sink::maintain() {
  if (!hasMaintenance() || Clock::now() < next_maintenance_) return;
  next_maintenance_ = Clock::now() + kMaintenanceInterval;
  conn_.exec("SET SESSION lock_wait_timeout = 30");  // never wait forever behind a long report query
  if (options_.partitioning == MysqlOptions::Partitioning::kDaily) maintainPartitions();
  if (options_.accounting.retention_days > 0) expireAccounting();
}

// Accounting rows are few (per host, not per flow) and kept longer than the
// flows, so they are not partitioned: old rows go by primary-key range, in
// slices that never hold locks long against the upserts of this sink.
void Sink::expireAccounting() {
  constexpr uint64_t kSlice = 10'000;
  const int64_t first_kept = utcToday() - static_cast<int64_t>(options_.accounting.retention_days);
  const std::string cutoff = "'" + dayDate(first_kept) + "'";
  uint64_t deleted = 0;
  for (const std::string& table : accountingTables(options_)) {
    const std::string column = table == accountingHostDailyTable(options_.table) ? "`day`" : "`interval_start`";
    for (;;) {
      if (!conn_.exec("DELETE FROM `" + table + "` WHERE " + column + " < " + cutoff + " ORDER BY " + column +
                      " LIMIT " + std::to_string(kSlice))) {
        logWarn("%s: cannot expire old accounting rows of %s: %s", name_.c_str(), table.c_str(),
                conn_.error().c_str());
        break;
      }
      const uint64_t n = conn_.affectedRows();
      deleted += n;
      if (n < kSlice) break;
    }
  }
  if (deleted > 0)
    logInfo("%s: deleted %" PRIu64 " accounting rows before %s (accounting retention %u days)", name_.c_str(),
            deleted, dayDate(first_kept).c_str(), options_.accounting.retention_days);
}

// Daily partitions: keep kPartitionDaysAhead days ready (so pmax stays empty
// and REORGANIZE is cheap) and drop days past the retention.
void Sink::maintainPartitions() {
  std::vector<std::vector<std::optional<std::string>>> rows;
  if (!conn_.query("SELECT `PARTITION_NAME` FROM information_schema.`PARTITIONS` WHERE `TABLE_SCHEMA` = DATABASE() "
                   "AND `TABLE_NAME` = '" + options_.table + "'",
                   rows)) {
    logWarn("%s: cannot list partitions: %s", name_.c_str(), conn_.error().c_str());
    return;
  }
  std::set<int64_t> days;
  bool has_pmax = false, partitioned = false;
  for (const auto& r : rows) {
    if (!r[0]) continue;
    partitioned = true;
    int64_t d = 0;
    if (*r[0] == "pmax") has_pmax = true;
    else if (parsePartitionName(*r[0], d)) days.insert(d);
  }
  if (!partitioned || days.empty()) {
    if (!partition_warned_)
      logWarn("%s: partition: daily, but table %s is not partitioned by day (it existed before); partitions and "
              "retention are not managed",
              name_.c_str(), options_.table.c_str());
    partition_warned_ = true;
    return;
  }
  const int64_t today = utcToday();
  const int64_t from = std::max(*days.rbegin() + 1, today), to = today + kPartitionDaysAhead;
  if (from <= to) {
    std::string parts;
    for (int64_t d = from; d <= to; ++d)
      parts += (parts.empty() ? "" : ", ") + std::string("PARTITION ") + partitionName(d) + " VALUES LESS THAN ('" +
               dayDate(d + 1) + "')";
    const std::string sql = "ALTER TABLE `" + options_.table + "` " +
                            (has_pmax ? "REORGANIZE PARTITION pmax INTO (" + parts +
                                            ", PARTITION pmax VALUES LESS THAN (MAXVALUE))"
                                      : "ADD PARTITION (" + parts + ")");
    if (conn_.exec(sql))
      logInfo("%s: added partitions %s..%s", name_.c_str(), partitionName(from).c_str(), partitionName(to).c_str());
    else
      logWarn("%s: cannot add partitions: %s", name_.c_str(), conn_.error().c_str());
  }
  if (options_.retention_days > 0) {
    // A day's partition goes once all of it is older than retention_days.
    std::string drop;
    for (int64_t d : days)
      if (d + 1 <= today - static_cast<int64_t>(options_.retention_days))
        drop += (drop.empty() ? "" : ",") + partitionName(d);
    if (!drop.empty()) {
      if (conn_.exec("ALTER TABLE `" + options_.table + "` DROP PARTITION " + drop))
        logInfo("%s: dropped partitions %s (retention %u days)", name_.c_str(), drop.c_str(), options_.retention_days);
      else
        logWarn("%s: cannot drop expired partitions: %s", name_.c_str(), conn_.error().c_str());
    }
  }
}

}  // namespace flowfold::mysql
