// The Exporter face of the MySQL sink: the export thread's whole job is to
// append to the spool; the Sink's thread does the database work.

#include "flowfold/exporters/mysql_exporter.h"

#include <cinttypes>
#include <stdexcept>

#include "flowfold/log.h"
#include "accounting.h"
#include "mysql_internal.h"
#include "mysql_sink.h"
#include "mysql_sql.h"

namespace flowfold {

namespace {

// How long doExport waits for a spool that a previous exporter of this
// process (SIGHUP reload) is still releasing.
constexpr auto kSpoolWait = std::chrono::seconds(30);

mysql::Spool::Limits spoolLimits(const MysqlOptions& o) {
  mysql::Spool::Limits l;
  l.max_bytes = o.spool_max_bytes;
  // Small segments free space soon after the database catches up; at most
  // 16 MiB (~155k records), at least 1/16 of the spool so drop_oldest frees
  // space in useful steps.
  l.segment_bytes = std::clamp<uint64_t>(o.spool_max_bytes / 16, 64 << 10, 16 << 20);
  l.drop_oldest = o.spool_full == MysqlOptions::SpoolFull::kDropOldest;
  return l;
}

class MysqlExporter final : public Exporter {
 public:
  MysqlExporter(const MysqlOptions& o, std::string password, std::string spool_dir,
                std::unique_ptr<mysql::Spool> spool)
      : Exporter(mysqlTargetName(o)), options_(o) {
    sink_ = std::make_unique<mysql::Sink>(o, std::move(password), name(), spool_dir, spoolLimits(o), std::move(spool),
                                          mutableCounters());
  }

  ~MysqlExporter() override {
    // The export stage flushes before it lets an exporter go; anyone else
    // gets the same chance to reach the database before the sink stops.
    if (!flushed_) sink_->flush(options_.shutdown_timeout_ms);
  }

  MysqlSinkStats sinkStats() const { return sink_->stats(); }

  std::vector<ExporterExtraCounter> extraCounters() const override {
    const MysqlSinkStats st = sink_->stats();
    return {
        {"spool_records", "Records waiting in the MySQL spool (not yet committed).", st.spool_records, true},
        {"spool_bytes", "Size of the MySQL spool's segment files.", st.spool_bytes, true},
        {"records_replayed", "Records committed after waiting out an outage or from an earlier run.",
         st.records_replayed, false},
        {"connect_failures", "Failed connects to the database (the records wait in the spool).",
         st.connect_failures, false},
        {"batch_failures", "Failed transactions (retried; the records wait in the spool).", st.batch_failures, false},
        {"dropped_corrupt", "Spooled records that failed their checksum when read back.", st.dropped_corrupt, false},
        {"segments_quarantined", "Damaged or foreign spool segment files set aside as *.bad.",
         st.segments_quarantined, false},
        {"accounting_rows", "Accounting-table rows upserted (one per key and window).", st.accounting_rows, false},
        {"accounting_windows", "Accounting transactions committed.", st.accounting_windows, false},
        {"accounting_recounted", "Records counted again from the flow table after a restart or failure.",
         st.accounting_recounted, false},
        {"accounting_lost", "Committed records the accounting tables could not count.", st.accounting_lost, false},
    };
  }

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    flushed_ = false;
    auto& c = mutableCounters();
    mysql::Spool* spool = sink_->spool(kSpoolWait);
    if (!spool) {
      c.dropped.fetch_add(records.size(), std::memory_order_relaxed);
      c.errors.fetch_add(1, std::memory_order_relaxed);
      unsigned long long suppressed = 0;
      if (drop_log_.allow(suppressed))
        logError("%s: no spool to write to; %zu records lost (%llu similar messages suppressed)", name().c_str(),
                 records.size(), suppressed);
      return;
    }
    const mysql::SpoolAppendResult r = spool->append(records, options_.observation_domain);
    const uint64_t dropped = r.dropped_oldest + r.dropped_newest;
    if (dropped == 0) return;
    c.dropped.fetch_add(dropped, std::memory_order_relaxed);
    if (!r.error.empty()) c.errors.fetch_add(1, std::memory_order_relaxed);
    dropped_total_ += dropped;
    unsigned long long suppressed = 0;
    if (!drop_log_.allow(suppressed)) return;
    const mysql::SpoolState st = spool->state();
    if (!r.error.empty())
      logError("%s: SPOOL WRITE FAILED (%s): %zu records lost, %" PRIu64 " in total", name().c_str(), r.error.c_str(),
               r.dropped_newest, dropped_total_);
    else
      logError("%s: SPOOL FULL (%" PRIu64 " of %" PRIu64
               " bytes in %s, the database is not keeping up): dropped %" PRIu64 " %s records, %" PRIu64
               " in total (spool_full: %s)%s",
               name().c_str(), st.bytes, options_.spool_max_bytes, spool->dir().c_str(), dropped,
               r.dropped_oldest ? "oldest" : "newest", dropped_total_,
               options_.spool_full == MysqlOptions::SpoolFull::kDropOldest ? "drop_oldest" : "drop_newest",
               suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
  }

  void doFlush(uint64_t) override {
    sink_->flush(options_.shutdown_timeout_ms);
    flushed_ = true;
  }

 private:
  MysqlOptions options_;
  std::unique_ptr<mysql::Sink> sink_;
  bool flushed_ = true;
  uint64_t dropped_total_ = 0;
  LogRateLimiter drop_log_{5, 60};
};

}  // namespace

std::unique_ptr<Exporter> makeMysqlExporter(const MysqlOptions& options) {
  validateMysqlOptions(options);
  std::string password = resolveMysqlPassword(options);
  const std::string dir = mysql::prepareSpoolDir(mysqlSpoolDir(options));
  std::unique_ptr<mysql::Spool> spool;
  if (auto claim = mysql::SpoolDirClaim::tryAcquire(dir))
    spool = std::make_unique<mysql::Spool>(dir, spoolLimits(options), std::move(claim));
  // else: another exporter of this process still has it (reload); the sink opens it when that one is gone.
  return std::make_unique<MysqlExporter>(options, std::move(password), dir, std::move(spool));
}

std::optional<MysqlSinkStats> mysqlSinkStats(const Exporter& exporter) {
  if (const auto* m = dynamic_cast<const MysqlExporter*>(&exporter)) return m->sinkStats();
  return std::nullopt;
}

std::string mysqlSchemaSql(const MysqlOptions& options) {
  std::string sql = mysql::createTableSql(options, mysql::utcToday()) + ";\n\n" + mysql::createViewSql(options) +
                    ";\n\n" + mysql::createBatchesSql() + ";\n";
  for (const std::string& table : mysql::createAccountingTablesSql(options)) sql += "\n" + table + ";\n";
  return sql;
}

}  // namespace flowfold
