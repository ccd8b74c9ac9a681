// The accounting rows of a batch, from hand-built records whose sums are
// worked out here: the upserts' VALUES, without a server (the sums in a
// real MariaDB are tests/integration/test_mysql_accounting.py's).

#include <gtest/gtest.h>

#include <algorithm>

#include "accounting.h"

namespace flowfold::mysql {
namespace {

// 2026-12-07 10:00:00 UTC.
constexpr uint64_t kT0 = 1'796'637'600'000ull;

FlowRecord v4(const char* src, const char* dst, uint16_t sport, uint16_t dport, uint64_t packets, uint64_t bytes,
              uint64_t first_ms, uint8_t protocol = 6) {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = protocol;
  unsigned a, b, c, d;
  std::sscanf(src, "%u.%u.%u.%u", &a, &b, &c, &d);
  r.key.src_addr = {uint8_t(a), uint8_t(b), uint8_t(c), uint8_t(d)};
  std::sscanf(dst, "%u.%u.%u.%u", &a, &b, &c, &d);
  r.key.dst_addr = {uint8_t(a), uint8_t(b), uint8_t(c), uint8_t(d)};
  r.key.src_port = sport;
  r.key.dst_port = dport;
  r.packets = packets;
  r.octets = bytes;
  r.first_ms = r.last_ms = first_ms;
  return r;
}

// The "(...)" rows of every upsert into `table`, in order.
std::vector<std::string> valuesOf(const std::vector<std::string>& upserts, const std::string& table) {
  std::vector<std::string> rows;
  for (const std::string& sql : upserts) {
    if (sql.rfind("INSERT INTO `" + table + "` ", 0) != 0) continue;
    size_t pos = sql.find(" VALUES ") + 8;
    const size_t end = sql.find(" ON DUPLICATE KEY UPDATE ");
    while (pos < end) {
      const size_t close = sql.find(')', pos);
      rows.push_back(sql.substr(pos, close + 1 - pos));
      pos = close + 2;  // "),"
    }
  }
  return rows;
}

MysqlOptions::Accounting everything(uint64_t interval_ms) {
  MysqlOptions::Accounting a;
  a.interval_ms = interval_ms;
  a.by_host = a.by_host_pair = a.by_service = true;
  return a;
}

TEST(MysqlAccounting, SumsEachHostPerIntervalAndDirection) {
  AccountingWindow batch(everything(300'000), nullptr);
  // Two records of one connection in the first 5 minutes, its answer, and a
  // later record in the next interval.
  batch.add(v4("10.0.0.1", "192.0.2.7", 40000, 443, 10, 1000, kT0 + 1000));
  batch.add(v4("10.0.0.1", "192.0.2.7", 40001, 443, 5, 500, kT0 + 299'999));
  batch.add(v4("192.0.2.7", "10.0.0.1", 443, 40000, 8, 8000, kT0 + 2000));
  batch.add(v4("10.0.0.1", "192.0.2.7", 40000, 443, 1, 40, kT0 + 300'000));
  const auto sql = batch.upserts("flows");
  EXPECT_EQ(valuesOf(sql, "flows_acct_host"),
            (std::vector<std::string>{
                "('2026-12-07 10:00:00','10.0.0.1','in',8,8000,1)",
                "('2026-12-07 10:00:00','10.0.0.1','out',15,1500,2)",
                "('2026-12-07 10:00:00','192.0.2.7','in',15,1500,2)",
                "('2026-12-07 10:00:00','192.0.2.7','out',8,8000,1)",
                "('2026-12-07 10:05:00','10.0.0.1','out',1,40,1)",
                "('2026-12-07 10:05:00','192.0.2.7','in',1,40,1)",
            }));
  EXPECT_EQ(valuesOf(sql, "flows_acct_host_daily"),
            (std::vector<std::string>{
                "('2026-12-07','10.0.0.1','in',8,8000,1)",
                "('2026-12-07','10.0.0.1','out',16,1540,3)",
                "('2026-12-07','192.0.2.7','in',16,1540,3)",
                "('2026-12-07','192.0.2.7','out',8,8000,1)",
            }));
  EXPECT_EQ(valuesOf(sql, "flows_acct_pair"),
            (std::vector<std::string>{
                "('2026-12-07 10:00:00','10.0.0.1','192.0.2.7',15,1500,2)",
                "('2026-12-07 10:00:00','192.0.2.7','10.0.0.1',8,8000,1)",
                "('2026-12-07 10:05:00','10.0.0.1','192.0.2.7',1,40,1)",
            }));
  // Both directions of HTTPS are port 443's.
  EXPECT_EQ(valuesOf(sql, "flows_acct_service"),
            (std::vector<std::string>{
                "('2026-12-07 10:00:00',6,443,23,9500,3)",
                "('2026-12-07 10:05:00',6,443,1,40,1)",
            }));
  EXPECT_EQ(batch.rows(), 6u + 4u + 3u + 2u);
  for (const std::string& s : sql)
    EXPECT_NE(s.find(" ON DUPLICATE KEY UPDATE `packets` = `packets` + VALUES(`packets`), `bytes` = `bytes` + "
                     "VALUES(`bytes`), `flows` = `flows` + VALUES(`flows`)"),
              std::string::npos);
}

TEST(MysqlAccounting, WithLocalNetworksOnlyLocalHostsHaveRows) {
  LocalNetworks local;
  ASSERT_EQ(local.add("10.0.0.0/8"), "");
  MysqlOptions::Accounting a;
  a.interval_ms = 60'000;
  AccountingWindow batch(a, &local);
  batch.add(v4("10.0.0.1", "192.0.2.7", 40000, 443, 10, 1000, kT0));  // out of 10.0.0.1
  batch.add(v4("192.0.2.7", "10.0.0.2", 443, 40000, 3, 300, kT0));   // into 10.0.0.2
  batch.add(v4("10.0.0.1", "10.0.0.2", 5000, 22, 2, 200, kT0));      // local to local: both
  batch.add(v4("192.0.2.7", "198.51.100.1", 1, 2, 7, 700, kT0));     // transit: none
  EXPECT_EQ(valuesOf(batch.upserts("t"), "t_acct_host"),
            (std::vector<std::string>{
                "('2026-12-07 10:00:00','10.0.0.1','out',12,1200,2)",
                "('2026-12-07 10:00:00','10.0.0.2','in',5,500,2)",
            }));
}

TEST(MysqlAccounting, IntervalsAndDaysFollowTheFirstPacket) {
  MysqlOptions::Accounting a;
  a.interval_ms = 3'600'000;
  AccountingWindow batch(a, nullptr);
  batch.add(v4("10.0.0.1", "10.0.0.2", 1, 2, 1, 100, kT0 - 10 * 3'600'000 - 1));  // 2026-12-06 23:59:59.999
  const auto sql = batch.upserts("f");
  EXPECT_EQ(valuesOf(sql, "f_acct_host")[0], "('2026-12-06 23:00:00','10.0.0.1','out',1,100,1)");
  EXPECT_EQ(valuesOf(sql, "f_acct_host_daily")[0], "('2026-12-06','10.0.0.1','out',1,100,1)");
  EXPECT_TRUE(valuesOf(sql, "f_acct_pair").empty());  // not asked for
}

TEST(MysqlAccounting, SplitsLargeBatchesIntoStatementsAndStartsEmptyAfterClear) {
  AccountingWindow batch(everything(60'000), nullptr);
  for (unsigned i = 0; i < 2500; ++i) {
    const std::string src = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    batch.add(v4(src.c_str(), "192.0.2.1", 1000, 53, 1, 60, kT0, 17));
  }
  const auto sql = batch.upserts("flows", 1000);
  EXPECT_EQ(valuesOf(sql, "flows_acct_host").size(), 2501u);  // 2500 sources out, one destination in
  EXPECT_EQ(std::count_if(sql.begin(), sql.end(),
                          [](const std::string& s) { return s.rfind("INSERT INTO `flows_acct_host` ", 0) == 0; }),
            3);
  EXPECT_EQ(valuesOf(sql, "flows_acct_service"), std::vector<std::string>{"('2026-12-07 10:00:00',17,53,2500,150000,2500)"});
  batch.clear();
  EXPECT_TRUE(batch.upserts("flows").empty());
}

TEST(MysqlAccounting, ServicePortIsTheLowerPortOrTheIcmpTypeAndCode) {
  FlowKey k;
  k.protocol = 6;
  k.src_port = 51514;
  k.dst_port = 443;
  EXPECT_EQ(servicePort(k), 443);
  std::swap(k.src_port, k.dst_port);
  EXPECT_EQ(servicePort(k), 443);
  k.protocol = 1;
  k.src_port = 0;
  k.dst_port = 8 * 256;  // echo request
  EXPECT_EQ(servicePort(k), 2048);
  k.protocol = 47;  // GRE: no ports
  EXPECT_EQ(servicePort(k), 0);
}

TEST(MysqlAccounting, IPv6HostsAreWrittenAsInet6NtoaWritesThem) {
  MysqlOptions::Accounting a;
  a.interval_ms = 60'000;
  AccountingWindow batch(a, nullptr);
  FlowRecord r;
  r.key.ip_version = 6;
  r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  r.key.dst_addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  r.packets = 1;
  r.octets = 80;
  r.first_ms = r.last_ms = kT0;
  batch.add(r);
  EXPECT_EQ(valuesOf(batch.upserts("f"), "f_acct_host"),
            (std::vector<std::string>{"('2026-12-07 10:00:00','::ffff:192.0.2.1','in',1,80,1)",
                                      "('2026-12-07 10:00:00','2001:db8::1','out',1,80,1)"}));
}

TEST(MysqlAccounting, TablesFollowTheOptions) {
  MysqlOptions o;
  EXPECT_TRUE(accountingTables(o).empty());
  EXPECT_TRUE(createAccountingTablesSql(o).empty());
  o.accounting.interval_ms = 300'000;
  EXPECT_EQ(accountingTables(o), (std::vector<std::string>{"flows_acct_host", "flows_acct_host_daily"}));
  o.accounting.by_service = true;
  o.accounting.by_host = false;
  EXPECT_EQ(accountingTables(o), std::vector<std::string>{"flows_acct_service"});
  const auto ddl = createAccountingTablesSql(o);
  ASSERT_EQ(ddl.size(), 1u);
  EXPECT_NE(ddl[0].find("PRIMARY KEY (`interval_start`, `protocol`, `port`)"), std::string::npos);
  EXPECT_NE(ddl[0].find("the interval is 300 s"), std::string::npos);
}

}  // namespace
}  // namespace flowfold::mysql
