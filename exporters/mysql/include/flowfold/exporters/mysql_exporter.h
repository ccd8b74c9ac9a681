#pragma once
// MySQL / MariaDB flow sink (MariaDB Connector/C stays behind this header).
//
// Shape: the export thread only appends records to an on-disk spool (a
// write-ahead queue of fixed-size, checksummed records in segment files);
// the sink's own thread reads the spool in order and writes batches to the
// database. A slow or absent server therefore never stalls the export thread,
// and whatever the exporter has accepted survives a database outage and a
// crash of flowfold itself.
//
// Exactly once: each batch is a contiguous record range of one spool segment.
// It is committed in one InnoDB transaction together with a row in
// `flowfold_batches` (spool id, segment, first record, end record; unique).
// After every (re)connect the sink asks that table where its spool stands,
// so a batch whose commit outcome was unknown (connection lost during COMMIT,
// SIGKILL) is never written twice and never skipped.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/local_networks.h"

namespace flowfold {

struct MysqlOptions {
  // ---- server and credentials
  std::string host = "localhost";
  uint16_t port = 3306;
  /// UNIX socket path; when set it is used instead of host/port.
  std::string socket;
  std::string user = "flowfold";
  /// Taken in this order: password, password_file (first line), the
  /// environment variable FLOWFOLD_MYSQL_PASSWORD; none = no password.
  std::string password;
  std::string password_file;
  std::string database = "flowfold";  // identifier: [A-Za-z0-9_]{1,64}, not all digits
  std::string table = "flows";        // identifier, at most 59 characters (room for "_view")

  /// kOff: plain (or whatever the server negotiates); kRequired: fail unless
  /// the connection is encrypted; kVerify: also verify the server certificate
  /// against tls_ca and its name against host.
  enum class Tls { kOff, kRequired, kVerify };
  Tls tls = Tls::kOff;
  std::string tls_ca, tls_cert, tls_key;

  uint32_t connect_timeout_ms = 5000;
  /// Longest a single read or write on the connection may block.
  uint32_t io_timeout_ms = 60000;

  // ---- writing
  /// kLoadData streams a batch as LOAD DATA LOCAL INFILE from memory (about
  /// twice the rate of INSERT here); kInsert uses multi-row INSERTs; kAuto is
  /// LOAD DATA, switching to INSERT when the server refuses local infile
  /// (MySQL 8 defaults to local_infile=OFF).
  enum class Method { kAuto, kLoadData, kInsert };
  Method method = Method::kAuto;
  /// Records per transaction (1..1,000,000).
  size_t batch_size = 10000;
  /// A partial batch is written after waiting this long.
  uint64_t flush_interval_ms = 1000;
  /// Create the flow table, its view and flowfold_batches when missing.
  bool create_table = true;
  /// Set (local_networks, see local_networks.h): rows fill the `direction`
  /// column (0 ingress, 1 egress, NULL for none), computed when the rows are
  /// written. A table without the column gets it (ALTER TABLE ... ADD COLUMN)
  /// when create_table is set; otherwise the sink fails with the ALTER to
  /// run. Empty: the column is not written (tables older than it work).
  LocalNetworks local_networks;
  /// DPI labels (`dpi: true`, set by the probe): each row's `application`,
  /// `category`, `server_name` and `app_guessed` are written (NULL where DPI
  /// did not label the flow). A table without them gets them with
  /// create_table; otherwise the sink fails with the ALTER to run.
  bool applications = false;
  /// Secondary indexes created with the table. kTime: (first_time) for any
  /// time range; kSrcHost / kDestHost: (src_addr|dest_addr, first_time) for
  /// per-host questions, on the addresses as text (the generated columns
  /// src_addr and dest_addr, INET6_NTOA of src_ip and dest_ip), so that
  /// WHERE src_addr = '10.1.2.3' finds its rows through the index. Each costs
  /// insert rate; see exporters/mysql/README.md.
  enum class Index { kTime, kSrcHost, kDestHost };
  std::vector<Index> indexes = {Index::kTime};
  /// kDaily: the table is RANGE-partitioned by UTC day of first_time; the
  /// sink keeps partitions a few days ahead and drops those older than
  /// retention_days (0 = keep everything).
  enum class Partitioning { kNone, kDaily };
  Partitioning partitioning = Partitioning::kNone;
  uint32_t retention_days = 0;
  /// Not empty: a view of this name with the columns of the per-packet IP
  /// accounting table flowfold's users came from (`ipacct`: src_ip, src_port,
  /// src_mac, dest_ip, dest_port, dest_mac, protocol, length, flags,
  /// timestamp), over the flow table, so that their old reports keep running.
  std::string compat_view;
  /// Per-host accounting tables, aggregated by the sink and written in the
  /// same transaction as the flow rows of each batch (exactly once with
  /// them). interval_ms 0: off. The counts of an interval are those of the
  /// packets seen in it: the flow cache splits records at the interval's
  /// boundaries (cache.split_interval, set to the interval when unset), so a
  /// record lies in one interval. Tables (prefix: `table`):
  ///   <table>_acct_host        (interval_start, host, direction in|out)
  ///   <table>_acct_host_daily  (day, host, direction): the same, per UTC day
  ///   <table>_acct_pair        (interval_start, src_host, dest_host)
  ///   <table>_acct_service     (interval_start, protocol, port)
  /// each with packets, bytes, flows. With local_networks, host rows are of
  /// local addresses only (in: the host received, out: it sent); without,
  /// of every address (as source: out, as destination: in).
  struct Accounting {
    uint64_t interval_ms = 0;  // divides a day; whole seconds
    bool by_host = true;       // <table>_acct_host and _acct_host_daily
    bool by_host_pair = false;
    bool by_service = false;
    /// Rows older than this many days are deleted (hourly); 0: kept.
    uint32_t retention_days = 0;
    /// The sums gather in memory this long (or until a million keys) before
    /// they are added to the tables, so that a busy key is one row update per
    /// window, not one per batch: the accounting tables lag the flow table by
    /// up to this much.
    uint64_t flush_ms = 30'000;
    bool enabled() const { return interval_ms != 0; }
  };
  Accounting accounting;
  /// Written to every row's exporter_id (IPFIX observation domain).
  uint32_t observation_domain = 0;

  // ---- spool (the write-ahead queue)
  /// Empty = /var/spool/flowfold/mysql/<host>_<port>_<database>.<table>.
  /// One exporter per directory (a lock file enforces it).
  std::string spool_dir;
  uint64_t spool_max_bytes = uint64_t{1} << 30;
  /// What to sacrifice when the spool is full; either way it is counted
  /// (dropped) and logged as an error.
  enum class SpoolFull { kDropOldest, kDropNewest };
  SpoolFull spool_full = SpoolFull::kDropOldest;
  /// Reconnect backoff: 0.5 s doubling up to this.
  uint64_t retry_max_interval_ms = 30000;
  /// flush() (end of input, shutdown) waits at most this long for the
  /// database; what is not written by then stays in the spool for next time.
  uint64_t shutdown_timeout_ms = 30000;
};

/// Parses `mysql://[USER@]HOST[:PORT]/[DATABASE][?KEY=VALUE&...]`, HOST may be
/// `[v6 address]`; `mysql://USER@/DATABASE?socket=PATH` (or any host with
/// socket=) uses a UNIX socket. Every key accepted by setMysqlOption() may
/// appear in the query (table, socket, spool_dir, batch_size, ...), values
/// percent-decoded. A password in the DSN is rejected: it would show in the
/// process list. Throws std::invalid_argument naming what is wrong.
MysqlOptions parseMysqlDsn(const std::string& dsn);

/// Sets one option from its configuration spelling (the YAML key under
/// `exporters: - type: mysql` and the DSN query key are the same):
///   dsn (merges parseMysqlDsn), host, port, socket, user, password,
///   password_file, database, table, tls (off|required|verify), tls_ca,
///   tls_cert, tls_key, connect_timeout, io_timeout (durations), method
///   (auto|load_data|insert), batch_size, flush_interval (duration),
///   create_table (true|false), indexes (comma list of time, src_ip, dest_ip;
///   or none), partition (none|daily), retention_days, observation_domain,
///   spool_dir, spool_max (bytes: 1073741824, 512M, 1G, 64k), spool_full
///   (drop_oldest|drop_newest), retry_max, shutdown_timeout (durations),
///   accounting_interval (duration, 0 = off), accounting_by (comma list of
///   host, host_pair, service), accounting_retention_days, accounting_flush
///   (duration) (YAML: the map `accounting:` with interval, by,
///   retention_days, flush).
/// Durations are seconds ("15") or carry a unit (500ms, 15s, 2m, 1h, 1d);
/// booleans are true, yes, on, 1 or false, no, off, 0 (option_values.h).
/// Throws std::invalid_argument ("mysql option batch_size: ...").
void setMysqlOption(MysqlOptions& options, std::string_view key, const std::string& value);

/// The keys setMysqlOption() accepts.
const std::vector<std::string_view>& mysqlOptionKeys();

/// Checks identifiers, ranges and combinations; throws std::invalid_argument.
void validateMysqlOptions(const MysqlOptions& options);

/// "mysql://user@host:port/database.table" (never the password), the
/// exporter's name in stats and logs.
std::string mysqlTargetName(const MysqlOptions& options);

/// The spool directory the exporter will use (spool_dir or the default).
std::string mysqlSpoolDir(const MysqlOptions& options);

/// The DDL the sink runs when create_table is set: the flow table, its
/// readable view `<table>_view` and flowfold_batches (for documentation and
/// for creating the schema by hand).
std::string mysqlSchemaSql(const MysqlOptions& options);

/// Creates the sink. Throws (std::invalid_argument / std::runtime_error) for
/// what waiting cannot fix: bad options or identifiers, an unreadable
/// password file, a spool directory that cannot be created or written or is
/// in use by another process. A server that is down, refuses the login or
/// lacks the database is not fatal: the sink logs one clear message, keeps
/// the records in the spool and retries with backoff.
std::unique_ptr<Exporter> makeMysqlExporter(const MysqlOptions& options);

/// Sink state beyond the common counters. Those mean, for this exporter:
/// records = rows committed to the database; messages =
/// transactions; bytes = SQL / LOAD DATA bytes; dropped =
/// records sacrificed by the spool-full policy, found corrupt in the spool,
/// or that could not be spooled; errors = calls whose records could
/// not be spooled. A failed connect or batch is not an export error: nothing
/// is lost, the records wait in the spool (connect_failures, batch_failures).
struct MysqlSinkStats {
  bool connected = false;
  std::string method;               // "load_data" or "insert" (what is in use)
  uint64_t records_spooled = 0;     // appended to the spool by this exporter
  uint64_t spool_records = 0;       // waiting in the spool (not yet committed)
  uint64_t spool_bytes = 0;         // size of the spool's segment files
  uint64_t records_committed = 0;
  uint64_t batches_committed = 0;
  uint64_t records_replayed = 0;    // committed after waiting out an outage or from an earlier run
  uint64_t dropped_oldest = 0;      // spool full, policy drop_oldest
  uint64_t dropped_newest = 0;      // spool full (or not writable), policy drop_newest
  uint64_t dropped_corrupt = 0;     // failed their checksum when read back
  uint64_t segments_quarantined = 0;  // damaged or foreign spool segment files renamed *.bad, not replayed
  uint64_t connect_failures = 0;
  uint64_t batch_failures = 0;
  uint64_t accounting_rows = 0;     // accounting-table rows upserted (one per key and window)
  uint64_t accounting_windows = 0;  // accounting transactions committed
  uint64_t accounting_recounted = 0;  // records counted again from the flow table after a restart or failure
  uint64_t accounting_lost = 0;     // committed records the accounting tables could not count (see the log)
  std::string last_error;           // empty while healthy
};

/// The sink state of a MySQL exporter; nullopt for any other exporter.
std::optional<MysqlSinkStats> mysqlSinkStats(const Exporter& exporter);

}  // namespace flowfold
