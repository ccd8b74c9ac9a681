// DSN parsing, the option setter shared with YAML, validation, password lookup.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "flowfold/exporters/mysql_exporter.h"
#include "mysql_internal.h"
#include "mysql_test_util.h"

namespace flowfold {
namespace {

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(MysqlDsn, ParsesTheDocumentedForm) {
  const MysqlOptions o = parseMysqlDsn("mysql://acct@db.example.net:3307/netflow?table=flows_edge");
  EXPECT_EQ(o.user, "acct");
  EXPECT_EQ(o.host, "db.example.net");
  EXPECT_EQ(o.port, 3307);
  EXPECT_EQ(o.database, "netflow");
  EXPECT_EQ(o.table, "flows_edge");
  EXPECT_TRUE(o.socket.empty());
}

TEST(MysqlDsn, DefaultsPortAndKeepsOtherDefaults) {
  const MysqlOptions o = parseMysqlDsn("mysql://root@127.0.0.1/flows");
  EXPECT_EQ(o.port, 3306);
  EXPECT_EQ(o.database, "flows");
  EXPECT_EQ(o.table, "flows");
  EXPECT_EQ(o.batch_size, MysqlOptions{}.batch_size);
}

TEST(MysqlDsn, AcceptsBracketedIpv6Host) {
  const MysqlOptions o = parseMysqlDsn("mysql://u@[2001:db8::5]:3310/d");
  EXPECT_EQ(o.host, "2001:db8::5");
  EXPECT_EQ(o.port, 3310);
  EXPECT_EQ(mysqlTargetName(o), "mysql://u@[2001:db8::5]:3310/d.flows");
}

TEST(MysqlDsn, SocketFormNeedsNoHost) {
  const MysqlOptions o = parseMysqlDsn("mysql://flowfold@/acct?socket=/run/mysqld/mysqld.sock&table=t1");
  EXPECT_EQ(o.socket, "/run/mysqld/mysqld.sock");
  EXPECT_EQ(o.table, "t1");
  EXPECT_EQ(mysqlTargetName(o), "mysql://flowfold@localhost/acct.t1?socket=/run/mysqld/mysqld.sock");
}

TEST(MysqlDsn, QueryTakesEveryOptionKeyPercentDecoded) {
  const MysqlOptions o = parseMysqlDsn(
      "mysql://a%40b@h/d?spool_dir=/var/tmp/my%20spool&batch_size=5000&flush_interval=250ms&method=insert"
      "&indexes=time,src_ip&spool_max=64M&spool_full=drop_newest&partition=daily&retention_days=30");
  EXPECT_EQ(o.user, "a@b");
  EXPECT_EQ(o.spool_dir, "/var/tmp/my spool");
  EXPECT_EQ(o.batch_size, 5000u);
  EXPECT_EQ(o.flush_interval_ms, 250u);
  EXPECT_EQ(o.method, MysqlOptions::Method::kInsert);
  ASSERT_EQ(o.indexes.size(), 2u);
  EXPECT_EQ(o.indexes[1], MysqlOptions::Index::kSrcHost);
  EXPECT_EQ(o.spool_max_bytes, 64u << 20);
  EXPECT_EQ(o.spool_full, MysqlOptions::SpoolFull::kDropNewest);
  EXPECT_EQ(o.partitioning, MysqlOptions::Partitioning::kDaily);
  EXPECT_EQ(o.retention_days, 30u);
}

TEST(MysqlDsn, RejectsAPasswordBecauseItWouldShowInPs) {
  const std::string e = errorOf([] { parseMysqlDsn("mysql://root:secret@h/d"); });
  EXPECT_NE(e.find("process list"), std::string::npos) << e;
  EXPECT_NE(e.find("FLOWFOLD_MYSQL_PASSWORD"), std::string::npos) << e;
  EXPECT_EQ(e.find("secret"), std::string::npos) << "the message repeats the password: " << e;
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d?password=x"); }).find("cannot be given"), std::string::npos);
}

TEST(MysqlDsn, RejectsMalformedDsnsWithTheReason) {
  EXPECT_NE(errorOf([] { parseMysqlDsn("postgres://u@h/d"); }).find("must start with mysql://"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h:99999/d"); }).find("bad port"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h:/d"); }).find("bad port"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@/d"); }).find("needs a host"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d/x"); }).find("just the database"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d?tabel=x"); }).find("unknown mysql option 'tabel'"),
            std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d?batch_size=lots"); }).find("batch_size"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@[::1/d"); }).find("unclosed"), std::string::npos);
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d%2"); }).find("%-escape"), std::string::npos);
}

TEST(MysqlOption, DsnKeyMergesIntoTheOtherKeys) {
  MysqlOptions o;
  setMysqlOption(o, "batch_size", "777");
  setMysqlOption(o, "dsn", "mysql://x@h:1234/db?table=t9");
  setMysqlOption(o, "spool_dir", "/tmp/s");
  EXPECT_EQ(o.batch_size, 777u);
  EXPECT_EQ(o.host, "h");
  EXPECT_EQ(o.port, 1234);
  EXPECT_EQ(o.table, "t9");
  EXPECT_EQ(o.spool_dir, "/tmp/s");
}

TEST(MysqlOption, ParsesDurationsSizesAndChoices) {
  MysqlOptions o;
  setMysqlOption(o, "flush_interval", "2");
  EXPECT_EQ(o.flush_interval_ms, 2000u);
  setMysqlOption(o, "retry_max", "1m");
  EXPECT_EQ(o.retry_max_interval_ms, 60000u);
  setMysqlOption(o, "spool_max", "2GiB");
  EXPECT_EQ(o.spool_max_bytes, uint64_t{2} << 30);
  setMysqlOption(o, "spool_max", "1048576");
  EXPECT_EQ(o.spool_max_bytes, 1u << 20);
  setMysqlOption(o, "tls", "verify");
  EXPECT_EQ(o.tls, MysqlOptions::Tls::kVerify);
  setMysqlOption(o, "create_table", "false");
  EXPECT_FALSE(o.create_table);
  setMysqlOption(o, "indexes", "none");
  EXPECT_TRUE(o.indexes.empty());
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "flush_interval", "5 parsecs"); }).find("unknown unit"), std::string::npos);
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "spool_max", "1X"); }).find("unknown unit"), std::string::npos);
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "indexes", "time,colour"); }).find("unknown index 'colour'"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "method", "carrier_pigeon"); }).find("auto, load_data or insert"),
            std::string::npos);
  const std::string unknown = errorOf([&] { setMysqlOption(o, "nope", "1"); });
  EXPECT_NE(unknown.find("known: dsn, host"), std::string::npos) << unknown;
}

TEST(MysqlOption, EveryListedKeyIsAccepted) {
  // The list the YAML layer can show must match what the setter takes.
  for (auto key : mysqlOptionKeys()) {
    MysqlOptions o;
    const std::string e = errorOf([&] { setMysqlOption(o, key, "x"); });
    EXPECT_EQ(e.find("unknown mysql option"), std::string::npos) << key;
  }
}

TEST(MysqlValidate, RejectsNonIdentifiersAsDatabaseOrTableNames) {
  auto validate = [](const std::string& db, const std::string& table) {
    MysqlOptions o;
    o.database = db;
    o.table = table;
    return errorOf([&] { validateMysqlOptions(o); });
  };
  EXPECT_EQ(validate("flows", "flows_2024"), "(no exception)");
  EXPECT_NE(validate("flows; DROP DATABASE x", "t").find("database name"), std::string::npos);
  EXPECT_NE(validate("d", "t`x").find("table name"), std::string::npos);
  EXPECT_NE(validate("d", "12345").find("not all digits"), std::string::npos);
  EXPECT_NE(validate("d", std::string(60, 'a')).find("at most 59"), std::string::npos);
  EXPECT_NE(validate("", "t").find("database name"), std::string::npos);
  EXPECT_NE(validate("d", "flowfold_batches").find("reserved"), std::string::npos);
}

TEST(MysqlValidate, CompatViewIsAPlainIdentifierOfItsOwn) {
  auto validate = [](const std::string& view) {
    MysqlOptions o;
    o.compat_view = view;
    return errorOf([&] { validateMysqlOptions(o); });
  };
  EXPECT_EQ(validate("ipacct"), "(no exception)");
  EXPECT_EQ(validate(""), "(no exception)");  // none
  EXPECT_NE(validate("ip acct").find("compat_view name"), std::string::npos);
  for (const char* taken : {"flows", "flows_view", "flowfold_batches"})
    EXPECT_NE(validate(taken).find("would replace"), std::string::npos) << taken;
  MysqlOptions o;
  setMysqlOption(o, "compat_view", "ipacct");
  EXPECT_EQ(o.compat_view, "ipacct");
}

TEST(MysqlValidate, RejectsInconsistentSettings) {
  MysqlOptions o;
  o.retention_days = 7;
  EXPECT_NE(errorOf([&] { validateMysqlOptions(o); }).find("partition: daily"), std::string::npos);
  o = {};
  o.tls = MysqlOptions::Tls::kVerify;
  EXPECT_NE(errorOf([&] { validateMysqlOptions(o); }).find("tls_ca"), std::string::npos);
  o = {};
  o.spool_max_bytes = 1000;
  EXPECT_NE(errorOf([&] { validateMysqlOptions(o); }).find("spool_max"), std::string::npos);
}

TEST(MysqlName, NeverContainsThePassword) {
  MysqlOptions o = parseMysqlDsn("mysql://acct@db:3306/netflow?table=f");
  o.password = "hunter2";
  EXPECT_EQ(mysqlTargetName(o), "mysql://acct@db:3306/netflow.f");
}

TEST(MysqlName, DefaultSpoolDirIsPerTarget) {
  const MysqlOptions a = parseMysqlDsn("mysql://u@db1:3306/x?table=f");
  const MysqlOptions b = parseMysqlDsn("mysql://u@db2:3306/x?table=f");
  EXPECT_NE(mysqlSpoolDir(a), mysqlSpoolDir(b));
  EXPECT_EQ(mysqlSpoolDir(a), "/var/spool/flowfold/mysql/db1_3306_x.f");
}

class MysqlPassword : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("FLOWFOLD_MYSQL_PASSWORD");
    unsetenv("CREDENTIALS_DIRECTORY");
  }
  void TearDown() override {
    unsetenv("FLOWFOLD_MYSQL_PASSWORD");
    unsetenv("CREDENTIALS_DIRECTORY");
  }
  test::TempDir dir_;
};

TEST_F(MysqlPassword, ComesFromConfigThenFileThenEnvironment) {
  const std::string file = dir_.path("pw");
  {
    std::ofstream(file) << "from-file\n";
  }
  ::chmod(file.c_str(), 0600);
  setenv("FLOWFOLD_MYSQL_PASSWORD", "from-env", 1);
  MysqlOptions o;
  EXPECT_EQ(resolveMysqlPassword(o), "from-env");
  o.password_file = file;
  EXPECT_EQ(resolveMysqlPassword(o), "from-file");  // first line, newline stripped
  o.password = "from-config";
  EXPECT_EQ(resolveMysqlPassword(o), "from-config");
}

TEST_F(MysqlPassword, ASystemdCredentialComesBeforeTheEnvironmentAndAfterTheConfiguration) {
  // systemd's LoadCredential=mysql-password:FILE: a directory in
  // $CREDENTIALS_DIRECTORY holding a file of that name.
  const std::string credentials = dir_.path("credentials");
  ::mkdir(credentials.c_str(), 0700);
  setenv("FLOWFOLD_MYSQL_PASSWORD", "from-env", 1);
  setenv("CREDENTIALS_DIRECTORY", credentials.c_str(), 1);
  MysqlOptions o;
  EXPECT_EQ(resolveMysqlPassword(o), "from-env") << "no credential of that name: the environment";
  {
    std::ofstream(credentials + "/mysql-password") << "from-credential\n";
  }
  EXPECT_EQ(resolveMysqlPassword(o), "from-credential");
  const std::string file = dir_.path("pw");
  {
    std::ofstream(file) << "from-file\n";
  }
  ::chmod(file.c_str(), 0600);
  o.password_file = file;
  EXPECT_EQ(resolveMysqlPassword(o), "from-file");
}

TEST_F(MysqlPassword, UnreadableFileIsAStartupError) {
  MysqlOptions o;
  o.password_file = dir_.path("missing");
  o.spool_dir = dir_.path("spool");
  try {
    makeMysqlExporter(o);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read password_file"), std::string::npos) << e.what();
  }
}

TEST(MysqlStartup, UnwritableSpoolDirIsAStartupError) {
  test::TempDir dir;
  const std::string file = dir.path("a-file");
  std::ofstream(file) << "x";
  MysqlOptions o;
  o.spool_dir = file + "/spool";  // under a regular file: cannot exist
  try {
    makeMysqlExporter(o);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("spool directory"), std::string::npos) << e.what();
  }
}

TEST(MysqlStartup, BadIdentifierIsAStartupError) {
  MysqlOptions o;
  o.table = "x y";
  EXPECT_THROW(makeMysqlExporter(o), std::invalid_argument);
}

TEST(MysqlStartup, ServerDownIsNotFatalAndTheRecordsAreSpooled) {
  test::TempDir dir;
  MysqlOptions o;
  o.host = "127.0.0.1";
  o.port = test::closedTcpPort();
  o.user = "root";
  o.spool_dir = dir.path("spool");
  o.shutdown_timeout_ms = 0;
  auto e = makeMysqlExporter(o);
  const auto flows = test::sampleFlows(500);
  e->exportBatch(flows, 0);
  const auto st = *mysqlSinkStats(*e);
  EXPECT_EQ(st.records_spooled, 500u);
  EXPECT_EQ(st.spool_records, 500u);
  EXPECT_EQ(e->counters().records.load(), 0u);
  EXPECT_EQ(e->counters().dropped.load(), 0u);
  EXPECT_EQ(e->name().find("mysql://root@127.0.0.1:"), 0u);
}

TEST(MysqlStartup, SecondProcessOnTheSameSpoolIsRefusedWithItsPid) {
  test::TempDir dir;
  MysqlOptions o;
  o.host = "127.0.0.1";
  o.port = test::closedTcpPort();
  o.spool_dir = dir.path("spool");
  o.shutdown_timeout_ms = 0;
  auto first = makeMysqlExporter(o);
  // A child process stands in for a second flowfold.
  const std::string msg = test::inChild([&] {
    try {
      makeMysqlExporter(o);
      return std::string("(no exception)");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  });
  EXPECT_NE(msg.find("in use by another process (pid " + std::to_string(getpid()) + ")"), std::string::npos) << msg;
}

TEST(MysqlStartup, ExporterOfThisProcessOnTheSameSpoolWaitsForTheFirst) {
  // A SIGHUP reload builds the new exporters while the old ones still run.
  test::TempDir dir;
  MysqlOptions o;
  o.host = "127.0.0.1";
  o.port = test::closedTcpPort();
  o.spool_dir = dir.path("spool");
  o.shutdown_timeout_ms = 0;
  auto first = makeMysqlExporter(o);
  first->exportBatch(test::sampleFlows(10), 0);
  auto second = makeMysqlExporter(o);  // must not throw
  first.reset();
  second->exportBatch(test::sampleFlows(5), 0);
  const auto st = *mysqlSinkStats(*second);
  EXPECT_EQ(st.spool_records, 15u);  // the first one's records are still there, and the new ones
}

TEST(MysqlStats, OnlyForMysqlExporters) {
  struct Other : Exporter {
    Other() : Exporter("other") {}
    void doExport(std::span<const FlowRecord>, uint64_t) override {}
  } other;
  EXPECT_FALSE(mysqlSinkStats(other).has_value());
}

TEST(MysqlSchema, DocumentedDdlHasTheSeedColumnNamesAndIndexes) {
  MysqlOptions o;
  o.indexes = {MysqlOptions::Index::kTime, MysqlOptions::Index::kSrcHost};
  const std::string ddl = mysqlSchemaSql(o);
  for (const char* col : {"`src_ip` VARBINARY(16)", "`dest_ip` VARBINARY(16)", "`src_port`", "`dest_port`",
                          "`src_mac`", "`dest_mac`", "`protocol`", "`flags`", "`packets`", "`bytes`",
                          "`first_time` DATETIME(3)", "`last_time` DATETIME(3)", "`exporter_id`", "`ingress_if`",
                          "KEY `idx_first_time` (`first_time`)", "KEY `idx_src_addr_time` (`src_addr`, `first_time`)",
                          "`src_addr` VARCHAR(39) CHARACTER SET ascii AS (INET6_NTOA(`src_ip`)) VIRTUAL",
                          "`dest_addr` VARCHAR(39) CHARACTER SET ascii AS (INET6_NTOA(`dest_ip`)) VIRTUAL",
                          "CREATE OR REPLACE VIEW `flows_view`", "`src_addr` AS `src_ip`",
                          "PRIMARY KEY (`spool_id`, `segment`, `first_record`)"})
    EXPECT_NE(ddl.find(col), std::string::npos) << col;
  EXPECT_EQ(ddl.find("PARTITION BY"), std::string::npos);
  o.partitioning = MysqlOptions::Partitioning::kDaily;
  const std::string partitioned = mysqlSchemaSql(o);
  EXPECT_NE(partitioned.find("PARTITION BY RANGE COLUMNS(`first_time`)"), std::string::npos);
  EXPECT_NE(partitioned.find("PRIMARY KEY (`id`, `first_time`)"), std::string::npos);
  EXPECT_NE(partitioned.find("PARTITION pmax VALUES LESS THAN (MAXVALUE)"), std::string::npos);
}

// Issue 16, item 14: a key given twice in the DSN's query was "last one
// wins"; a mistake there must not be silently half-applied.
TEST(MysqlOption, DsnQueryKeyGivenTwiceIsAnError) {
  EXPECT_EQ(errorOf([] { parseMysqlDsn("mysql://u@h/d?table=a&table=b"); }),
            "mysql DSN 'mysql://u@h/d?table=a&table=b': 'table' is given twice (expected "
            "mysql://USER@HOST:PORT/DATABASE?table=NAME)");
  // %-escaped, it is still the same key.
  EXPECT_NE(errorOf([] { parseMysqlDsn("mysql://u@h/d?batch_size=5&batch%5Fsize=6"); })
                .find("'batch_size' is given twice"),
            std::string::npos);
  EXPECT_EQ(parseMysqlDsn("mysql://u@h/d?table=a&batch_size=5").table, "a");
}

// Issue 16, item 14: strtod read "0x10" as 16 s and "1e3" as 1000 s; the
// client library's timeouts count whole seconds, so 1500ms became 1 s.
TEST(MysqlOption, DurationsAreDecimalAndTimeoutsWholeSeconds) {
  MysqlOptions o;
  for (const char* bad : {"0x10", "1e3", "inf", "+5", ".5", "-1"})
    EXPECT_EQ(errorOf([&] { setMysqlOption(o, "flush_interval", bad); }),
              std::string("mysql option flush_interval: expected a duration such as 15, 15s, 500ms or 2m, not '") +
                  bad + "'")
        << bad;
  EXPECT_EQ(errorOf([&] { setMysqlOption(o, "retry_max", "010"); }),
            "mysql option retry_max: 010 has a leading zero: write the decimal number without it");
  EXPECT_EQ(errorOf([&] { setMysqlOption(o, "connect_timeout", "1500ms"); }),
            "mysql option connect_timeout: 1500ms is not a whole number of seconds, and only whole seconds count here");
  EXPECT_EQ(errorOf([&] { setMysqlOption(o, "io_timeout", "2.5"); }),
            "mysql option io_timeout: 2.5 is not a whole number of seconds, and only whole seconds count here");
  EXPECT_EQ(errorOf([&] { setMysqlOption(o, "port", "03306"); }),
            "mysql option port: 03306 has a leading zero: write the decimal number without it");
  // 5124095576031 h is 2^64 ms + 2048 s: it must not wrap around to 2048 s.
  EXPECT_EQ(errorOf([&] { setMysqlOption(o, "retry_max", "5124095576031h"); }),
            "mysql option retry_max: 5124095576031h is far too long");
  setMysqlOption(o, "connect_timeout", "2000ms");
  EXPECT_EQ(o.connect_timeout_ms, 2000u);
  setMysqlOption(o, "io_timeout", "0.5m");
  EXPECT_EQ(o.io_timeout_ms, 30'000u);
  setMysqlOption(o, "flush_interval", "0.25");
  EXPECT_EQ(o.flush_interval_ms, 250u);
  setMysqlOption(o, "flush_interval", "250ms");
  EXPECT_EQ(o.flush_interval_ms, 250u);
}

}  // namespace
}  // namespace flowfold

namespace flowfold {
namespace {

TEST(MysqlOption, AccountingTakesAnIntervalThatTilesTheDayAndATableList) {
  MysqlOptions o = parseMysqlDsn("mysql://u@h/d?accounting_interval=5m&accounting_by=host_pair,service");
  EXPECT_EQ(o.accounting.interval_ms, 300'000u);
  EXPECT_FALSE(o.accounting.by_host);
  EXPECT_TRUE(o.accounting.by_host_pair);
  EXPECT_TRUE(o.accounting.by_service);
  setMysqlOption(o, "accounting_interval", "1h");
  EXPECT_EQ(o.accounting.interval_ms, 3'600'000u);
  setMysqlOption(o, "accounting_interval", "off");
  EXPECT_FALSE(o.accounting.enabled());
  // 7 minutes do not divide a day: the last interval of each day would be short.
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "accounting_interval", "7m"); }).find("does not divide a day"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "accounting_interval", "1500ms"); }).find("accounting_interval"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { setMysqlOption(o, "accounting_by", "host,port"); }).find("unknown table 'port'"),
            std::string::npos);
}

TEST(MysqlOption, AccountingRetentionNeedsAccountingAndTheTableNameRoomForItsTables) {
  MysqlOptions o = parseMysqlDsn("mysql://u@h/d?accounting_retention_days=400");
  EXPECT_NE(errorOf([&] { validateMysqlOptions(o); }).find("accounting has no interval"), std::string::npos);
  setMysqlOption(o, "accounting_interval", "1h");
  EXPECT_NO_THROW(validateMysqlOptions(o));
  o.table = std::string(49, 't');  // + "_acct_host_daily" = 65 characters
  EXPECT_NE(errorOf([&] { validateMysqlOptions(o); }).find("at most 48 characters with accounting"), std::string::npos);
  o.table.pop_back();
  EXPECT_NO_THROW(validateMysqlOptions(o));
}

}  // namespace
}  // namespace flowfold
