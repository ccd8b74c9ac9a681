// The MySQL sink against a real MariaDB server. The server comes from the
// harness: run through `python3 tests/integration/mariadb.py -- mysql_test`
// (ctest does, as mysql_test.db); without it these tests are skipped.
//
// Every check is exact: per flow key, SUM(packets) and SUM(bytes) in the
// table equal what was handed to the exporter, and COUNT(*) equals the
// number of records (a duplicate would show there even when sums hide it).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "flowfold/exporters/mysql_exporter.h"
#include "mysql_connection.h"
#include "mysql_sql.h"
#include "flowfold/exporters/app_names.h"
#include "mysql_test_util.h"

namespace flowfold {
namespace {

using Rows = std::vector<std::vector<std::optional<std::string>>>;
using Clock = std::chrono::steady_clock;

// (ip_version, src hex, src_port, dest hex, dest_port, protocol, vlan) -> (packets, bytes, rows)
using Key = std::tuple<int, std::string, int, std::string, int, int, int>;
using Sums = std::map<Key, std::tuple<uint64_t, uint64_t, uint64_t>>;

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

Sums truthOf(const std::vector<FlowRecord>& flows) {
  Sums s;
  for (const auto& r : flows) {
    const auto& k = r.key;
    const size_t n = k.ip_version == 6 ? 16 : 4;
    auto& [p, b, c] = s[Key{k.ip_version, hex(k.src_addr.data(), n), k.src_port, hex(k.dst_addr.data(), n),
                            k.dst_port, k.protocol, k.vlan_id}];
    p += r.packets;
    b += r.octets;
    c += 1;
  }
  return s;
}

class MysqlDb : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* socket = std::getenv("FLOWFOLD_TEST_MYSQL_SOCKET");
    const char* port = std::getenv("FLOWFOLD_TEST_MYSQL_PORT");
    if (!socket || !port)
      GTEST_SKIP() << "no MariaDB server: run through tests/integration/mariadb.py (ctest runs mysql_test.db)";
    socket_ = socket;
    port_ = static_cast<uint16_t>(std::atoi(port));
    db_ = "t_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    db_.resize(std::min<size_t>(db_.size(), 64));
    sql("DROP DATABASE IF EXISTS " + db_);
    sql("CREATE DATABASE " + db_);
  }

  MysqlOptions options(const std::string& table = "flows") {
    MysqlOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.user = "root";
    o.database = db_;
    o.table = table;
    o.spool_dir = tmp_.path("spool-" + table);
    o.flush_interval_ms = 50;
    o.retry_max_interval_ms = 200;
    o.connect_timeout_ms = 2000;
    o.io_timeout_ms = 5000;
    o.shutdown_timeout_ms = 60000;
    return o;
  }

  // "flow_id|application|category|server_name|app_guessed" of every row of
  // `table`, NULL as "NULL".
  std::multiset<std::string> labelsIn(const std::string& table) {
    std::multiset<std::string> got;
    for (const auto& r : sql("SELECT flow_id, IFNULL(application, 'NULL'), IFNULL(category, 'NULL'), "
                             "IFNULL(CAST(server_name AS BINARY), 'NULL'), IFNULL(app_guessed, 'NULL') FROM " +
                             db_ + "." + table))
      got.insert(*r[0] + "|" + *r[1] + "|" + *r[2] + "|" + *r[3] + "|" + *r[4]);
    return got;
  }

  // Runs SQL as root over the socket; reconnects after a server restart.
  Rows sql(const std::string& q) {
    Rows rows;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!admin_.connected()) {
        MysqlOptions o;
        o.socket = socket_;
        o.user = "root";
        o.database = "mysql";
        if (!admin_.connect(o, "")) {
          ADD_FAILURE() << "admin connect: " << admin_.error();
          return rows;
        }
        admin_.exec("SET time_zone = '+00:00'");
      }
      if (admin_.query(q, rows)) return rows;
      admin_.close();
    }
    ADD_FAILURE() << q << ": " << admin_.error();
    return rows;
  }
  uint64_t count(const std::string& table = "flows") {
    const Rows r = sql("SELECT COUNT(*) FROM " + db_ + "." + table);
    return r.empty() || !r[0][0] ? 0 : std::stoull(*r[0][0]);
  }
  // COUNT(*) while the sink may not have created the table yet (then 0).
  uint64_t rowsSoFar() {
    const Rows r = sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + db_ +
                       "' AND TABLE_NAME = 'flows'");
    return r.empty() ? 0 : count();
  }
  Sums sumsInDb(const std::string& table = "flows") {
    Sums s;
    for (const auto& r : sql("SELECT ip_version, HEX(src_ip), src_port, HEX(dest_ip), dest_port, protocol, vlan, "
                             "SUM(packets), SUM(bytes), COUNT(*) FROM " + db_ + "." + table +
                             " GROUP BY 1, 2, 3, 4, 5, 6, 7"))
      s[Key{std::stoi(*r[0]), *r[1], std::stoi(*r[2]), *r[3], std::stoi(*r[4]), std::stoi(*r[5]), std::stoi(*r[6])}] =
          {std::stoull(*r[7]), std::stoull(*r[8]), std::stoull(*r[9])};
    return s;
  }
  void expectExactly(const std::vector<FlowRecord>& flows, const std::string& table = "flows") {
    EXPECT_EQ(count(table), flows.size());
    EXPECT_TRUE(sumsInDb(table) == truthOf(flows)) << "per-key sums differ";
  }

  // Asks the harness to act on the server (stop, start, kill, pause, resume).
  void server(const std::string& action) {
    const char* ctl = std::getenv("FLOWFOLD_TEST_MYSQL_CTL");
    ASSERT_NE(ctl, nullptr);
    admin_.close();
    ASSERT_EQ(std::system(("python3 " + std::string(ctl) + " ctl " + action).c_str()), 0) << action;
  }

  template <typename Pred>
  bool waitFor(Pred pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  // flush() gives up when the database fails twice in a row (it is a
  // shutdown step); right after a restart the tests insist until it is empty.
  void flushUntilEmpty(Exporter& e) {
    ASSERT_TRUE(waitFor([&] {
      e.flush(0);
      return mysqlSinkStats(e)->spool_records == 0;
    })) << mysqlSinkStats(e)->last_error;
  }

  // Waits until the server has no session of ours left but the admin one
  // (a killed client's last COMMIT is then either done or never happens).
  void waitForOtherSessionsToEnd() {
    ASSERT_TRUE(waitFor([&] {
      return *sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '" + db_ +
                  "' AND ID <> CONNECTION_ID()")[0][0] == "0";
    }));
  }

  static void exportAll(Exporter& e, const std::vector<FlowRecord>& flows, size_t chunk = 1000) {
    for (size_t i = 0; i < flows.size(); i += chunk)
      e.exportBatch(std::span(flows).subspan(i, std::min(chunk, flows.size() - i)), 0);
  }

  test::TempDir tmp_;
  std::string socket_, db_;
  uint16_t port_ = 0;
  mysql::Connection admin_;
};

TEST_F(MysqlDb, WritesExactSumsPerKeyWithLoadData) {
  const auto flows = test::sampleFlows(25000);
  auto o = options();
  o.method = MysqlOptions::Method::kLoadData;
  auto e = makeMysqlExporter(o);
  exportAll(*e, flows);
  e->flush(0);
  expectExactly(flows);
  EXPECT_EQ(e->counters().records.load(), flows.size());
  EXPECT_EQ(e->counters().dropped.load(), 0u);
  const auto st = *mysqlSinkStats(*e);
  EXPECT_EQ(st.method, "load_data");
  EXPECT_EQ(st.spool_records, 0u);
  EXPECT_TRUE(st.connected);
}

TEST_F(MysqlDb, InsertStoresTheSameRowsAsLoadData) {
  const auto flows = test::sampleFlows(3000, 5);
  auto a = options("by_load");
  a.method = MysqlOptions::Method::kLoadData;
  auto b = options("by_insert");
  b.method = MysqlOptions::Method::kInsert;
  for (const auto& o : {a, b}) {
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows, 700);
    e->flush(0);
    EXPECT_EQ(mysqlSinkStats(*e)->method, o.method == MysqlOptions::Method::kInsert ? "insert" : "load_data");
  }
  const std::string cols = "id, first_time, last_time, ip_version, protocol, HEX(src_ip), src_port, HEX(dest_ip), "
                           "dest_port, packets, bytes, flags, tos, min_ttl, max_ttl, vlan, inner_vlan, mpls_label, "
                           "HEX(src_mac), HEX(dest_mac), ingress_if, exporter_id, end_reason";
  const Rows x = sql("SELECT " + cols + " FROM " + db_ + ".by_load ORDER BY id");
  const Rows y = sql("SELECT " + cols + " FROM " + db_ + ".by_insert ORDER BY id");
  ASSERT_EQ(x.size(), flows.size());
  EXPECT_TRUE(x == y);
  expectExactly(flows, "by_insert");
}

TEST_F(MysqlDb, ViewShowsReadableAddressesMacsFlagsAndReasons) {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.src_addr = {10, 0, 9, 10};
  r.key.dst_addr = {192, 168, 92, 1};
  r.key.src_port = 51514;
  r.key.dst_port = 443;
  r.key.protocol = 6;
  r.key.vlan_id = 42;
  r.packets = 10;
  r.octets = 5120;
  r.first_ms = 1764000000123;
  r.last_ms = 1764000061000;
  r.src_mac = {0x00, 0x1b, 0x21, 0x0a, 0x5c, 0xff};
  r.tcp_flags = 0x1b;  // FIN SYN PSH ACK
  r.end_reason = FlowEndReason::kEndOfFlow;
  FlowRecord icmp6 = r;
  icmp6.key.ip_version = 6;
  icmp6.key.protocol = 58;
  icmp6.key.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  icmp6.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a};
  icmp6.key.src_port = 0;
  icmp6.key.dst_port = 128 * 256;  // echo request
  icmp6.tcp_flags = 0;
  icmp6.end_reason = FlowEndReason::kIdleTimeout;
  auto o = options();
  o.observation_domain = 77;
  auto e = makeMysqlExporter(o);
  const std::vector<FlowRecord> flows{r, icmp6};
  e->exportBatch(flows, 0);
  e->flush(0);
  const Rows v = sql("SELECT src_ip, dest_ip, src_port, dest_port, icmp_type_code, src_mac, flags_text, end_reason, "
                     "first_time, last_time, exporter_id, vlan FROM " + db_ + ".flows_view ORDER BY id");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(*v[0][0], "10.0.9.10");
  EXPECT_EQ(*v[0][1], "192.168.92.1");
  EXPECT_EQ(*v[0][2], "51514");
  EXPECT_FALSE(v[0][4].has_value());
  EXPECT_EQ(*v[0][5], "00:1b:21:0a:5c:ff");
  EXPECT_EQ(*v[0][6], "...AP.SF");
  EXPECT_EQ(*v[0][7], "end_of_flow");
  EXPECT_EQ(*v[0][8], "2025-11-24 16:00:00.123");
  EXPECT_EQ(*v[0][9], "2025-11-24 16:01:01.000");
  EXPECT_EQ(*v[0][10], "77");
  EXPECT_EQ(*v[0][11], "42");
  EXPECT_EQ(*v[1][0], "2001:db8::1");
  EXPECT_EQ(*v[1][1], "2001:db8::a");
  EXPECT_EQ(*v[1][4], "128.0");
  EXPECT_EQ(*v[1][7], "idle");
  // The stored address lengths: INET6_ATON of the text gives the stored bytes back.
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".flows WHERE src_ip = INET6_ATON('10.0.9.10')")[0][0], "1");
  EXPECT_EQ(*sql("SELECT LENGTH(src_ip) FROM " + db_ + ".flows ORDER BY id")[1][0], "16");
  // And as text, both families: what a user types.
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".flows WHERE src_addr = '10.0.9.10'")[0][0], "1");
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".flows WHERE dest_addr = '2001:db8::a'")[0][0], "1");
}

TEST_F(MysqlDb, FallsBackToInsertWhenTheServerRefusesLocalInfile) {
  sql("SET GLOBAL local_infile = 0");
  const auto flows = test::sampleFlows(2500);
  {
    auto e = makeMysqlExporter(options());
    exportAll(*e, flows);
    e->flush(0);
    EXPECT_EQ(mysqlSinkStats(*e)->method, "insert");
  }
  sql("SET GLOBAL local_infile = 1");
  expectExactly(flows);
}

TEST_F(MysqlDb, RecordsStillInTheSpoolButCommittedAreNotWrittenAgain) {
  // The crash window the batch bookkeeping exists for: rows committed, the
  // spool on disk unchanged. The spool keeps no cursor of its own, so every
  // start is in that window: the writer's last segment stays on disk after
  // its records are committed, and only flowfold_batches says so.
  const auto flows = test::sampleFlows(12000);
  auto o = options();
  o.batch_size = 1000;
  {
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
    e->flush(0);
    EXPECT_EQ(e->counters().records.load(), flows.size());
  }
  expectExactly(flows);
  size_t segment_bytes = 0;
  for (const auto& f : std::filesystem::directory_iterator(o.spool_dir))
    if (f.path().filename().string().rfind("seg-", 0) == 0) segment_bytes += f.file_size();
  EXPECT_GT(segment_bytes, 12000u * 100);  // every record is still on disk
  EXPECT_EQ(*sql("SELECT SUM(row_count) FROM " + db_ + ".flowfold_batches")[0][0], "12000");
  {
    auto e = makeMysqlExporter(o);
    e->flush(0);
    EXPECT_EQ(e->counters().records.load(), 0u);
    EXPECT_EQ(mysqlSinkStats(*e)->spool_records, 0u);
  }
  expectExactly(flows);
}

TEST_F(MysqlDb, RecordsSpooledWhileTheServerWasDownAreReplayedOnce) {
  const auto flows = test::sampleFlows(12000, 2);
  auto o = options();
  o.batch_size = 1000;
  {
    auto down = o;
    down.port = test::closedTcpPort();
    down.shutdown_timeout_ms = 0;
    auto e = makeMysqlExporter(down);
    exportAll(*e, flows);
  }
  {
    auto e = makeMysqlExporter(o);
    e->flush(0);
    EXPECT_EQ(mysqlSinkStats(*e)->records_replayed, flows.size());
  }
  {
    auto e = makeMysqlExporter(o);
    e->flush(0);
    EXPECT_EQ(e->counters().records.load(), 0u);
  }
  expectExactly(flows);
}

TEST_F(MysqlDb, ServerStoppedMidRunAndRestartedGetsEveryFlowOnce) {
  const auto flows = test::sampleFlows(30000, 3);
  auto o = options();
  o.batch_size = 2000;
  auto e = makeMysqlExporter(o);
  exportAll(*e, std::vector<FlowRecord>(flows.begin(), flows.begin() + 10000));
  ASSERT_TRUE(waitFor([&] { return rowsSoFar() > 0; }));
  server("stop");
  // The export thread goes on while the server is away.
  exportAll(*e, std::vector<FlowRecord>(flows.begin() + 10000, flows.end()));
  ASSERT_TRUE(waitFor([&] { return !mysqlSinkStats(*e)->connected; }));
  server("start");
  flushUntilEmpty(*e);
  expectExactly(flows);
  const auto st = *mysqlSinkStats(*e);
  EXPECT_GT(st.records_replayed, 0u);
  EXPECT_GT(st.connect_failures + st.batch_failures, 0u);
  EXPECT_EQ(e->counters().records.load(), flows.size());
}

TEST_F(MysqlDb, ServerCrashInTheMiddleOfBatchesGetsEveryFlowOnce) {
  const auto flows = test::sampleFlows(200000, 4);
  auto o = options();
  o.batch_size = 5000;
  auto e = makeMysqlExporter(o);
  exportAll(*e, flows, 10000);
  ASSERT_TRUE(waitFor([&] { return rowsSoFar() > 0; }));
  server("kill");  // SIGKILL: InnoDB rolls back the open transaction on restart
  server("start");
  flushUntilEmpty(*e);
  expectExactly(flows);
  EXPECT_EQ(e->counters().records.load(), flows.size());
}

TEST_F(MysqlDb, FlowfoldKilledDuringABatchAndRestartedWritesEachFlowOnce) {
  const auto flows = test::sampleFlows(300000, 6);
  auto o = options();
  o.batch_size = 3000;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    // The "flowfold" that gets killed: spools everything, then writes batches.
    ::close(ready[0]);
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows, 10000);
    (void)!::write(ready[1], "s", 1);
    e->flush(0);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_TRUE(waitFor([&] { return rowsSoFar() >= 3000; }));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  waitForOtherSessionsToEnd();
  const uint64_t at_kill = count();
  ASSERT_LT(at_kill, flows.size()) << "the child finished before it was killed; nothing was tested";
  auto e = makeMysqlExporter(o);  // same spool: the lock died with the child
  e->flush(0);
  expectExactly(flows);
  EXPECT_EQ(e->counters().records.load(), flows.size() - at_kill);
}

class MysqlDbFaults : public MysqlDb {
 protected:
  // Exports into a sink that cannot log in, waits for a few retries, and
  // returns what it logged; the records must still be in the spool.
  std::string failingRun(MysqlOptions o, const std::vector<FlowRecord>& flows, MysqlSinkStats& st) {
    o.retry_max_interval_ms = 100;
    o.shutdown_timeout_ms = 5000;
    ::testing::internal::CaptureStderr();
    {
      auto e = makeMysqlExporter(o);
      exportAll(*e, flows);
      waitFor([&] { return mysqlSinkStats(*e)->connect_failures >= 4; });
      e->flush(0);  // one more attempt, still failing: returns without waiting out the timeout
      st = *mysqlSinkStats(*e);
      EXPECT_EQ(e->counters().records.load(), 0u);
    }
    return ::testing::internal::GetCapturedStderr();
  }
  static size_t lines(const std::string& log, const std::string& needle) {
    size_t n = 0;
    for (size_t p = log.find(needle); p != std::string::npos; p = log.find(needle, p + 1)) ++n;
    return n;
  }
  // After fixing the configuration, the same spool delivers everything.
  void recover(const std::vector<FlowRecord>& flows) {
    auto e = makeMysqlExporter(options());
    e->flush(0);
    expectExactly(flows);
  }
};

TEST_F(MysqlDbFaults, WrongPasswordSaysSoOnceAndKeepsTheSpool) {
  sql("CREATE USER IF NOT EXISTS 'ff'@'127.0.0.1' IDENTIFIED BY 'right'");
  sql("GRANT ALL ON " + db_ + ".* TO 'ff'@'127.0.0.1'");
  const auto flows = test::sampleFlows(800);
  auto o = options();
  o.user = "ff";
  o.password = "wrong";
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_EQ(lines(log, "Access denied"), 1u) << log;
  EXPECT_EQ(lines(log, "FLOWFOLD_MYSQL_PASSWORD"), 1u) << log;
  EXPECT_NE(log.find("records are kept in the spool " + o.spool_dir), std::string::npos) << log;
  EXPECT_NE(log.find("stay in the spool"), std::string::npos) << log;
  EXPECT_NE(st.last_error.find("1045"), std::string::npos) << st.last_error;
  EXPECT_EQ(st.spool_records, 800u);
  o.password = "right";
  auto e = makeMysqlExporter(o);
  e->flush(0);
  expectExactly(flows);
}

TEST_F(MysqlDbFaults, UnknownDatabaseSaysSoOnceAndKeepsTheSpool) {
  const auto flows = test::sampleFlows(600);
  auto o = options();
  o.database = "no_such_db";
  o.spool_dir = options().spool_dir;
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_EQ(lines(log, "Unknown database 'no_such_db'"), 1u) << log;
  EXPECT_EQ(lines(log, "CREATE DATABASE no_such_db"), 1u) << log;
  EXPECT_EQ(st.spool_records, 600u);
  recover(flows);
}

TEST_F(MysqlDbFaults, UnreachableHostSaysSoOnceAndKeepsTheSpool) {
  const auto flows = test::sampleFlows(700);
  auto o = options();
  o.port = test::closedTcpPort();
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_EQ(lines(log, "cannot connect"), 1u) << log;
  EXPECT_EQ(lines(log, "check that the server is running"), 1u) << log;
  EXPECT_EQ(st.spool_records, 700u);
  recover(flows);
}

TEST_F(MysqlDb, SpoolFullDropsOldestWhileTheServerIsAway) {
  auto o = options();
  o.spool_max_bytes = 1 << 20;  // 64 KiB segments, ~9,700 records in all
  o.port = test::closedTcpPort();
  o.shutdown_timeout_ms = 0;
  const auto flows = test::sampleFlows(20000, 8);
  uint64_t dropped = 0;
  ::testing::internal::CaptureStderr();
  {
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
    dropped = e->counters().dropped.load();
    EXPECT_EQ(mysqlSinkStats(*e)->dropped_oldest, dropped);
    EXPECT_LE(mysqlSinkStats(*e)->spool_bytes, o.spool_max_bytes);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("SPOOL FULL"), std::string::npos) << log;
  ASSERT_GT(dropped, 10000u);
  auto e = makeMysqlExporter(options());
  e->flush(0);
  // What survived is exactly the newest records.
  expectExactly(std::vector<FlowRecord>(flows.begin() + static_cast<long>(dropped), flows.end()));
}

TEST_F(MysqlDb, SpoolFullDropsNewestByPolicy) {
  auto o = options();
  o.spool_max_bytes = 1 << 20;
  o.spool_full = MysqlOptions::SpoolFull::kDropNewest;
  o.port = test::closedTcpPort();
  o.shutdown_timeout_ms = 0;
  const auto flows = test::sampleFlows(20000, 9);
  uint64_t dropped = 0;
  ::testing::internal::CaptureStderr();
  {
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
    dropped = e->counters().dropped.load();
    EXPECT_EQ(mysqlSinkStats(*e)->dropped_newest, dropped);
  }
  ::testing::internal::GetCapturedStderr();
  auto e = makeMysqlExporter(options());
  e->flush(0);
  expectExactly(std::vector<FlowRecord>(flows.begin(), flows.end() - static_cast<long>(dropped)));
}

TEST_F(MysqlDb, AHungServerNeverBlocksTheExportThread) {
  auto o = options();
  o.io_timeout_ms = 10000;
  auto e = makeMysqlExporter(o);
  const auto flows = test::sampleFlows(60000, 10);
  exportAll(*e, std::vector<FlowRecord>(flows.begin(), flows.begin() + 1000));
  e->flush(0);
  server("pause");  // SIGSTOP: connections stay open, nothing answers
  const auto t0 = Clock::now();
  exportAll(*e, std::vector<FlowRecord>(flows.begin() + 1000, flows.end()));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  // 59,000 records appended to the spool; the server answers nothing. The
  // bound is generous for a loaded machine; blocking would take io_timeout
  // (10 s) at the first batch already.
  EXPECT_LT(secs, 5.0);
  // The sink gives up on the hung statement after io_timeout and keeps the batch.
  ASSERT_TRUE(waitFor([&] { return mysqlSinkStats(*e)->batch_failures > 0; }));
  server("resume");
  flushUntilEmpty(*e);
  expectExactly(flows);
}

TEST_F(MysqlDb, DestroyingWithoutFlushStillWritesEverything) {
  const auto flows = test::sampleFlows(5000, 11);
  {
    auto o = options();
    o.flush_interval_ms = 60000;
    o.batch_size = 100000;  // nothing is due by size or time: only the shutdown writes
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
  }
  expectExactly(flows);
}

TEST_F(MysqlDb, DailyPartitionsAreKeptAheadAndExpiredByRetention) {
  const int64_t today = mysql::utcToday();
  auto o = options();
  o.partitioning = MysqlOptions::Partitioning::kDaily;
  // A table made ten days ago: its partitions run from then to seven days ago.
  sql("USE " + db_);
  sql(mysql::createTableSql(o, today - 10));
  auto flows = test::sampleFlows(3000, 12);
  const uint64_t now_ms = static_cast<uint64_t>(today) * 86400000ull + 3600000;
  for (size_t i = 0; i < flows.size(); ++i)  // a third ten days old, the rest today
    flows[i].first_ms = flows[i].last_ms = i % 3 ? now_ms : now_ms - 10 * 86400000ull;
  {
    auto e = makeMysqlExporter(o);  // no retention yet: only adds the days ahead
    exportAll(*e, flows);
    e->flush(0);
  }
  expectExactly(flows);
  auto partitions = [&] {
    std::vector<std::string> names;
    for (const auto& r : sql("SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = '" + db_ +
                             "' AND TABLE_NAME = 'flows' ORDER BY PARTITION_ORDINAL_POSITION"))
      names.push_back(*r[0]);
    return names;
  };
  auto names = partitions();
  ASSERT_GE(names.size(), 9u);
  EXPECT_EQ(names.front(), mysql::partitionName(today - 10));
  EXPECT_EQ(names[names.size() - 2], mysql::partitionName(today + mysql::kPartitionDaysAhead));
  EXPECT_EQ(names.back(), "pmax");
  EXPECT_EQ(*sql("SELECT TABLE_ROWS >= 0 FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = '" + db_ +
                 "' AND PARTITION_NAME = '" + mysql::partitionName(today) + "'")[0][0],
            "1");
  // Keep five days: the next start drops the day partitions before that.
  o.retention_days = 5;
  {
    auto e = makeMysqlExporter(o);
    e->flush(0);
  }
  names = partitions();
  EXPECT_EQ(names.front(), mysql::partitionName(today));
  EXPECT_EQ(names.size(), static_cast<size_t>(mysql::kPartitionDaysAhead) + 2);
  std::vector<FlowRecord> kept;
  for (size_t i = 0; i < flows.size(); ++i)
    if (i % 3) kept.push_back(flows[i]);
  expectExactly(kept);  // the ten-day-old third went with its partition
}

// local_networks: the `direction` column. sampleFlows: IPv4 10.x -> 192.168.x,
// IPv6 2001:db8:: -> fe80::. With 10.0.0.0/8 and fe80::/10 local, IPv4 flows
// are egress, IPv6 ones ingress; 192.168.0.0/16 makes some IPv4 ones local
// to local (NULL).
LocalNetworks sampleNetworks(bool with_both_ends) {
  LocalNetworks n;
  EXPECT_EQ(n.add("10.0.0.0/8"), "");
  EXPECT_EQ(n.add("fe80::/10"), "");
  if (with_both_ends) {
    EXPECT_EQ(n.add("192.168.0.0/17"), "");
  }
  return n;
}

// (direction or -1 for NULL) -> rows, from the flows and from the table.
std::map<int, uint64_t> directionsOf(const std::vector<FlowRecord>& flows, const LocalNetworks& n) {
  std::map<int, uint64_t> m;
  for (const auto& r : flows) {
    const FlowDirection d = n.direction(r.key);
    ++m[d == FlowDirection::kNone ? -1 : static_cast<int>(d)];
  }
  return m;
}

TEST_F(MysqlDbFaults, LocalNetworksOnATableWithoutTheDirectionColumn) {
  // An older table: as flowfold created it before the column existed.
  {
    auto e = makeMysqlExporter(options());
    e->flush(0);
  }
  sql("ALTER TABLE " + db_ + ".flows DROP COLUMN direction");
  const auto flows = test::sampleFlows(3000);
  // Without create_table the sink refuses, naming the ALTER to run; the
  // records wait in the spool.
  auto o = options();
  o.create_table = false;
  o.local_networks = sampleNetworks(true);
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_NE(st.last_error.find("has no `direction` column, which local_networks needs: run ALTER TABLE `flows` "
                               "ADD COLUMN `direction` TINYINT UNSIGNED NULL"),
            std::string::npos)
      << st.last_error;
  EXPECT_EQ(lines(log, "ALTER TABLE `flows` ADD COLUMN"), 1u) << log;
  EXPECT_EQ(st.spool_records, flows.size());
  // With create_table (the default) the sink adds the column itself and
  // writes the spooled records with their direction.
  o.create_table = true;
  {
    auto e = makeMysqlExporter(o);
    flushUntilEmpty(*e);
  }
  expectExactly(flows);
  std::map<int, uint64_t> got;
  for (const auto& r : sql("SELECT IFNULL(direction, -1), COUNT(*) FROM " + db_ + ".flows GROUP BY 1"))
    got[std::stoi(*r[0])] = std::stoull(*r[1]);
  const auto want = directionsOf(flows, o.local_networks);
  EXPECT_EQ(got, want);
  EXPECT_EQ(want.size(), 3u) << "the sample should have egress, ingress and no direction";
  const Rows view = sql("SELECT direction, COUNT(*) FROM " + db_ + ".flows_view GROUP BY 1 ORDER BY 1");
  ASSERT_EQ(view.size(), 3u);
  EXPECT_FALSE(view[0][0].has_value());
  EXPECT_EQ(*view[1][0], "egress");
  EXPECT_EQ(*view[2][0], "ingress");
}

// A table made before `flow_id`: every row writes the column, so without
// create_table the sink refuses, naming the ALTER to run (the records wait in
// the spool); with it, the sink adds the column and writes each record's id.
TEST_F(MysqlDbFaults, AddsTheFlowIdColumnToAnOlderTableOrSaysWhatToRun) {
  {
    auto e = makeMysqlExporter(options());
    e->flush(0);
  }
  sql("ALTER TABLE " + db_ + ".flows DROP COLUMN flow_id");
  const auto flows = test::sampleFlows(3000);
  auto o = options();
  o.create_table = false;
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_NE(st.last_error.find("has no `flow_id` column: run ALTER TABLE `flows` ADD COLUMN `flow_id` BIGINT "
                               "UNSIGNED NULL"),
            std::string::npos)
      << st.last_error;
  EXPECT_EQ(lines(log, "ALTER TABLE `flows` ADD COLUMN"), 1u) << log;
  EXPECT_EQ(st.spool_records, flows.size());
  o.create_table = true;
  {
    auto e = makeMysqlExporter(o);
    flushUntilEmpty(*e);
  }
  expectExactly(flows);
  std::multiset<std::string> want, got;
  for (const auto& r : flows) want.insert(std::to_string(r.flow_id) + "/" + std::to_string(r.packets));
  for (const auto& r : sql("SELECT flow_id, packets FROM " + db_ + ".flows")) got.insert(*r[0] + "/" + *r[1]);
  EXPECT_EQ(got, want);
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".flows_view WHERE flow_id IS NOT NULL")[0][0], "3000");
}

TEST_F(MysqlDb, DirectionIsWrittenByInsertAndLoadDataAlike) {
  const auto flows = test::sampleFlows(2000, 3);
  for (const auto& [table, method] : {std::pair{std::string("by_load"), MysqlOptions::Method::kLoadData},
                                      std::pair{std::string("by_insert"), MysqlOptions::Method::kInsert}}) {
    auto o = options(table);
    o.method = method;
    o.local_networks = sampleNetworks(true);
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
    e->flush(0);
    expectExactly(flows, table);
  }
  EXPECT_EQ(sql("SELECT HEX(src_ip), src_port, HEX(dest_ip), dest_port, direction FROM " + db_ +
                ".by_load ORDER BY 1, 2, 3, 4, 5"),
            sql("SELECT HEX(src_ip), src_port, HEX(dest_ip), dest_port, direction FROM " + db_ +
                ".by_insert ORDER BY 1, 2, 3, 4, 5"));
  // Unset: the column stays NULL.
  auto o = options("unset");
  auto e = makeMysqlExporter(o);
  exportAll(*e, flows);
  e->flush(0);
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".unset WHERE direction IS NOT NULL")[0][0], "0");
}

// dpi on: each row's label, by INSERT and LOAD DATA alike, equal to what the
// sample's labels are named by the names given (app_names.h); NULL where a
// flow was not labelled, and for every row with dpi off.
std::string wantLabel(const FlowRecord& r) {
  if (!r.app.inspected()) return "NULL|NULL|NULL|NULL";
  return applicationName(r.app) + "|" + categoryName(r.app) + "|" +
         (r.app.serverNameLength() ? std::string(r.app.serverName()) : "NULL") + "|" + (r.app.guessed() ? "1" : "0");
}

TEST_F(MysqlDb, ApplicationsAreWrittenByInsertAndLoadDataAlike) {
  setAppNames(test::sampleProtocolNames(), test::sampleCategoryNames());
  const auto flows = test::sampleFlows(600, 4);
  std::multiset<std::string> want;
  for (const auto& r : flows) want.insert(std::to_string(r.flow_id) + "|" + wantLabel(r));
  EXPECT_NE(want.count(std::to_string(flows[1].flow_id) + "|TLS.POP3|Media|a\tb\nc\\d'e\"f|1"), 0u);
  for (const auto& [table, method] : {std::pair{std::string("by_load"), MysqlOptions::Method::kLoadData},
                                      std::pair{std::string("by_insert"), MysqlOptions::Method::kInsert}}) {
    auto o = options(table);
    o.method = method;
    o.applications = true;
    auto e = makeMysqlExporter(o);
    exportAll(*e, flows);
    e->flush(0);
    expectExactly(flows, table);
    EXPECT_EQ(labelsIn(table), want) << table;
  }
  const auto pop3 = std::count_if(flows.begin(), flows.end(), [](const FlowRecord& r) {
    return r.app.inspected() && applicationName(r.app) == "TLS.POP3";
  });
  ASSERT_GT(pop3, 0);
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".by_load_view WHERE application = 'TLS.POP3'")[0][0],
            std::to_string(std::count_if(flows.begin(), flows.end(), [](const FlowRecord& r) {
              return r.app.inspected() && applicationName(r.app) == "TLS.POP3";
            })));
  auto o = options("off");
  auto e = makeMysqlExporter(o);
  exportAll(*e, flows);
  e->flush(0);
  EXPECT_EQ(*sql("SELECT COUNT(*) FROM " + db_ + ".off WHERE application IS NOT NULL")[0][0], "0");
  setAppNames({}, {});
}

// A table made before the label's columns: with dpi on and no create_table
// the sink refuses, naming the ALTER to run (the records wait in the spool);
// with create_table it adds them.
TEST_F(MysqlDbFaults, AddsTheApplicationColumnsToAnOlderTableOrSaysWhatToRun) {
  setAppNames(test::sampleProtocolNames(), test::sampleCategoryNames());
  {
    auto e = makeMysqlExporter(options());
    e->flush(0);
  }
  sql("ALTER TABLE " + db_ + ".flows DROP COLUMN application, DROP COLUMN category, DROP COLUMN server_name, "
      "DROP COLUMN app_guessed");
  const auto flows = test::sampleFlows(1500);
  auto o = options();
  o.create_table = false;
  o.applications = true;
  MysqlSinkStats st;
  const std::string log = failingRun(o, flows, st);
  EXPECT_NE(st.last_error.find("has no `application` column, which dpi needs: run ALTER TABLE `flows` ADD COLUMN "
                               "`application` VARCHAR(64)"),
            std::string::npos)
      << st.last_error;
  EXPECT_EQ(st.spool_records, flows.size());
  o.create_table = true;
  {
    auto e = makeMysqlExporter(o);
    flushUntilEmpty(*e);
  }
  expectExactly(flows);
  std::multiset<std::string> want;
  for (const auto& r : flows) want.insert(std::to_string(r.flow_id) + "|" + wantLabel(r));
  EXPECT_EQ(labelsIn("flows"), want);
  setAppNames({}, {});
}

}  // namespace
}  // namespace flowfold
