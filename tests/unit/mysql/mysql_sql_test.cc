// Row encodings and day arithmetic, without a server.

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>

#include "mysql_sql.h"
#include "mysql_test_util.h"

namespace flowfold::mysql {
namespace {

std::string datetime(uint64_t ms) {
  std::string s;
  appendDatetime(s, ms);
  return s;
}

TEST(MysqlSql, FormatsUtcDatetimesWithMilliseconds) {
  EXPECT_EQ(datetime(0), "1970-01-01 00:00:00.000");
  EXPECT_EQ(datetime(951782400123ull), "2000-02-29 00:00:00.123");  // leap day of a century leap year
  EXPECT_EQ(datetime(1764000000999ull), "2025-11-24 16:00:00.999");
  EXPECT_EQ(datetime(UINT64_MAX), "9999-12-31 23:59:59.999");  // clamped to DATETIME's range
  // Agrees with gmtime over a spread of instants.
  for (uint64_t ms = 0; ms < 4102444800000ull; ms += 86399999ull * 37) {
    const time_t t = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&t, &tm);
    char want[40];
    std::snprintf(want, sizeof want, "%04d-%02d-%02d %02d:%02d:%02d.%03u", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(ms % 1000));
    ASSERT_EQ(datetime(ms), want);
  }
}

TEST(MysqlSql, LoadDataLineEscapesTheBytesLoadDataInterprets) {
  SpooledFlow f;
  f.record.key.ip_version = 4;
  f.record.key.src_addr = {0x00, 0x09, 0x0a, 0x5c};
  f.record.key.dst_addr = {0x41, 0x4e, 0x0d, 0xff};
  f.record.src_mac = {'\\', 'N', 0, 0, 0, 0};
  std::string line;
  appendLoadDataRow(line, f);
  EXPECT_NE(line.find("\t\\0\\t\\n\\\\\t"), std::string::npos);    // src_ip
  EXPECT_NE(line.find("\tAN\r\xff\t"), std::string::npos);         // dest_ip: only the four are escaped
  EXPECT_NE(line.find("\t\\\\N\\0\\0\\0\\0\t"), std::string::npos);  // never a bare \N (NULL)
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(MysqlSql, InsertRowUsesHexLiteralsAndTheColumnOrder) {
  auto flows = test::sampleFlows(4);
  SpooledFlow f{flows[3], 9};  // IPv6
  std::string row;
  appendInsertRow(row, f);
  EXPECT_EQ(row.rfind("('2025-11-24 16:00:00.111','", 0), 0u) << row;
  EXPECT_NE(row.find(",6,17,0x20010db8"), std::string::npos) << row;  // ip_version, protocol, src_ip (16 bytes)
  EXPECT_NE(row.find(",0x001b21"), std::string::npos) << row;        // src_mac
  EXPECT_EQ(std::count(row.begin(), row.end(), ','), 22);             // 23 columns
  EXPECT_EQ(std::count(flowColumns().begin(), flowColumns().end(), ','), 22);
  // flow_id last: the record's id in decimal, NULL for a record without one
  // (spooled by a flowfold before flow ids).
  EXPECT_TRUE(flowColumns().ends_with(",`end_reason`,`flow_id`"));
  EXPECT_TRUE(row.ends_with("," + std::to_string(flows[3].flow_id) + ")")) << row;
  f.record.flow_id = 0;
  row.clear();
  appendInsertRow(row, f);
  EXPECT_TRUE(row.ends_with(",NULL)")) << row;
  std::string line;
  appendLoadDataRow(line, f);
  EXPECT_TRUE(line.ends_with("\t\\N\n")) << line;
  f.record.flow_id = UINT64_MAX;
  line.clear();
  appendLoadDataRow(line, f);
  EXPECT_TRUE(line.ends_with("\t18446744073709551615\n")) << line;
  MysqlOptions o;
  EXPECT_NE(createTableSql(o, 20416).find("`flow_id` BIGINT UNSIGNED NULL"), std::string::npos);
  EXPECT_EQ(addFlowIdColumnSql("flows").rfind("ALTER TABLE `flows` ADD COLUMN `flow_id` BIGINT UNSIGNED NULL", 0), 0u);
  EXPECT_NE(createViewSql(o).find("`flow_id`"), std::string::npos);
  EXPECT_EQ(createViewSql(o, true, false).find("flow_id"), std::string::npos);
}

TEST(MysqlSql, DirectionColumnOnlyWithLocalNetworks) {
  auto flows = test::sampleFlows(4);
  LocalNetworks nets;
  ASSERT_EQ(nets.add("2001:db8::/128"), "");  // matches no sample address
  ASSERT_EQ(nets.add("0.0.0.0/1"), "");
  SpooledFlow f{flows[3], 9};
  std::string plain, with;
  appendInsertRow(plain, f);
  appendInsertRow(with, f, &nets);
  EXPECT_EQ(std::count(with.begin(), with.end(), ','), 23);
  const FlowDirection d = nets.direction(f.record.key);
  const std::string tail = d == FlowDirection::kNone ? ",NULL)" : d == FlowDirection::kEgress ? ",1)" : ",0)";
  EXPECT_EQ(with, plain.substr(0, plain.size() - 1) + tail);
  for (const auto& r : flows) {
    std::string a, b;
    appendLoadDataRow(a, SpooledFlow{r, 1});
    appendLoadDataRow(b, SpooledFlow{r, 1}, &nets);
    const FlowDirection dir = nets.direction(r.key);
    EXPECT_EQ(b, a.substr(0, a.size() - 1) +
                     (dir == FlowDirection::kNone ? "\t\\N\n" : dir == FlowDirection::kEgress ? "\t1\n" : "\t0\n"));
  }
  EXPECT_EQ(flowColumns(true), flowColumns() + ",`direction`");
  EXPECT_EQ(insertPrefix("t").find("direction"), std::string::npos);
  EXPECT_NE(insertPrefix("t", true).find(",`direction`) VALUES "), std::string::npos);
  EXPECT_NE(loadDataSql("t", true).find(",`direction`)"), std::string::npos);
  EXPECT_EQ(loadDataSql("t").find("direction"), std::string::npos);
  MysqlOptions o;
  EXPECT_NE(createTableSql(o, 20416).find("`direction` TINYINT UNSIGNED NULL"), std::string::npos);
  EXPECT_EQ(addDirectionColumnSql("flows").rfind("ALTER TABLE `flows` ADD COLUMN `direction` TINYINT UNSIGNED NULL", 0), 0u);
  EXPECT_NE(createViewSql(o).find("AS `direction`"), std::string::npos);
  EXPECT_EQ(createViewSql(o, false).find("direction"), std::string::npos);
}

TEST(MysqlSql, PartitionNamesAreDaysAndBack) {
  EXPECT_EQ(partitionName(0), "p19700101");
  EXPECT_EQ(dayDate(20416), "2025-11-24");
  int64_t day = 0;
  ASSERT_TRUE(parsePartitionName("p20251124", day));
  EXPECT_EQ(day, 20416);
  EXPECT_FALSE(parsePartitionName("pmax", day));
  EXPECT_FALSE(parsePartitionName("p20251324", day));
  for (int64_t d = 18000; d < 22000; d += 17) {
    ASSERT_TRUE(parsePartitionName(partitionName(d), day));
    ASSERT_EQ(day, d);
  }
}

}  // namespace
}  // namespace flowfold::mysql
