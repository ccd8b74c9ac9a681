// The write-ahead spool on its own: order, persistence across reopen,
// resuming from the database's answer, size limit policies, damage.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "mysql_test_util.h"
#include "spool.h"

namespace flowfold::mysql {
namespace {

constexpr uint64_t kSegment = 64 + 100 * kSpoolRecordSize;  // 100 records per segment

std::unique_ptr<Spool> openSpool(const std::string& dir, uint64_t max_bytes = 1 << 20, bool drop_oldest = true,
                                 uint64_t segment = kSegment) {
  const std::string canonical = prepareSpoolDir(dir);
  return std::make_unique<Spool>(canonical, Spool::Limits{max_bytes, segment, drop_oldest},
                                 SpoolDirClaim::tryAcquire(canonical));
}

std::vector<SpooledFlow> readAll(Spool& s, size_t batch = 1000) {
  std::vector<SpooledFlow> out;
  SpoolBatch b;
  std::string err;
  while (s.readBatch(batch, b, err)) {
    out.insert(out.end(), b.flows.begin(), b.flows.end());
    s.commit(b);
  }
  EXPECT_EQ(err, "");
  return out;
}

bool sameRecord(const FlowRecord& a, const FlowRecord& b) {
  return a.key == b.key && a.packets == b.packets && a.octets == b.octets && a.first_ms == b.first_ms &&
         a.last_ms == b.last_ms && a.mpls_top_label == b.mpls_top_label && a.src_mac == b.src_mac &&
         a.dst_mac == b.dst_mac && a.tcp_flags == b.tcp_flags && a.tos == b.tos && a.min_ttl == b.min_ttl &&
         a.max_ttl == b.max_ttl && a.end_reason == b.end_reason;
}

size_t segmentFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind("seg-", 0) == 0 && e.path().extension() != ".bad") ++n;
  return n;
}

TEST(SpoolRecord, RoundTripsEveryField) {
  for (const auto& r : test::sampleFlows(50)) {
    uint8_t buf[kSpoolRecordSize];
    encodeSpoolRecord(r, 0xDEADBEEF, buf);
    SpooledFlow back;
    ASSERT_TRUE(decodeSpoolRecord(buf, back));
    EXPECT_TRUE(sameRecord(r, back.record));
    EXPECT_EQ(back.observation_domain, 0xDEADBEEFu);
  }
}

TEST(SpoolRecord, ChecksumCatchesDamageAndZeroes) {
  uint8_t buf[kSpoolRecordSize];
  encodeSpoolRecord(test::sampleFlows(1)[0], 0, buf);
  buf[50] ^= 1;
  SpooledFlow back;
  EXPECT_FALSE(decodeSpoolRecord(buf, back));
  std::memset(buf, 0, sizeof buf);  // a hole left by a crash reads as zeroes
  EXPECT_FALSE(decodeSpoolRecord(buf, back));
  // CRC-32C check value ("123456789").
  EXPECT_EQ(crc32c(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xE3069283u);
}

TEST(Spool, ReadsBackInOrderAcrossSegments) {
  test::TempDir t;
  auto s = openSpool(t.path("s"));
  const auto flows = test::sampleFlows(350);
  EXPECT_EQ(s->append(std::span(flows).first(120), 0).written, 120u);
  EXPECT_EQ(s->append(std::span(flows).subspan(120), 0).written, 230u);
  EXPECT_EQ(s->pendingRecords(), 350u);
  EXPECT_EQ(segmentFiles(s->dir()), 4u);
  // A batch never spans segments: its id is (segment, first record).
  SpoolBatch b;
  std::string err;
  ASSERT_TRUE(s->readBatch(1000, b, err));
  EXPECT_EQ(b.end - b.first, 100u);
  s->release(b);
  const auto back = readAll(*s, 30);
  ASSERT_EQ(back.size(), 350u);
  for (size_t i = 0; i < back.size(); ++i) ASSERT_TRUE(sameRecord(back[i].record, flows[i])) << i;
  EXPECT_EQ(s->pendingRecords(), 0u);
  EXPECT_EQ(segmentFiles(s->dir()), 1u);  // used-up segments are deleted; the writer's tail stays
}

TEST(Spool, KeepsUncommittedRecordsAcrossAReopen) {
  test::TempDir t;
  const auto flows = test::sampleFlows(250);
  uint64_t id = 0;
  {
    auto s = openSpool(t.path("s"));
    id = s->id();
    s->append(flows, 7);
    SpoolBatch b;
    std::string err;
    ASSERT_TRUE(s->readBatch(60, b, err));
    s->commit(b);  // 60 committed; the rest is not
  }
  auto s = openSpool(t.path("s"));
  EXPECT_EQ(s->id(), id);
  // Without the database's answer the reader starts at the oldest record...
  EXPECT_EQ(s->pendingRecords(), 250u);
  // ... and the database says how far it got.
  s->resumeAt(SpoolPosition{1, 60});
  const auto back = readAll(*s);
  ASSERT_EQ(back.size(), 190u);
  EXPECT_TRUE(sameRecord(back.front().record, flows[60]));
  EXPECT_EQ(back.front().observation_domain, 7u);
}

TEST(Spool, ResumeDeletesSegmentsTheDatabaseHasCompleted) {
  test::TempDir t;
  auto s = openSpool(t.path("s"));
  s->append(test::sampleFlows(350), 0);
  s->resumeAt(SpoolPosition{3, 10});  // segments 1 and 2 are in the database
  EXPECT_EQ(s->oldestSegment(), 3u);
  EXPECT_EQ(s->pendingRecords(), 140u);
  s->resumeAt(std::nullopt);  // nothing of this spool in the database: all that is left
  EXPECT_EQ(s->pendingRecords(), 150u);
}

TEST(Spool, NeverReusesASegmentNumber) {
  // The database remembers (spool id, segment, record); a reused number
  // would make new records look committed.
  test::TempDir t;
  {
    auto s = openSpool(t.path("s"));
    s->append(test::sampleFlows(150), 0);
    readAll(*s);
    EXPECT_EQ(s->writePosition().segment, 2u);
  }
  {
    auto s = openSpool(t.path("s"));
    s->resumeAt(SpoolPosition{2, 50});  // what the database would answer
    EXPECT_EQ(s->pendingRecords(), 0u);
    s->append(test::sampleFlows(1), 0);
    EXPECT_EQ(s->writePosition().segment, 3u);
    readAll(*s);
  }
  auto s = openSpool(t.path("s"));
  s->append(test::sampleFlows(1), 0);
  EXPECT_EQ(s->writePosition().segment, 4u);
}

TEST(Spool, DropOldestMakesRoomForNewRecords) {
  test::TempDir t;
  // Ten segments of 100 records fit.
  auto s = openSpool(t.path("s"), 10 * kSegment, true);
  const auto flows = test::sampleFlows(1500);
  const auto r1 = s->append(std::span(flows).first(1000), 0);
  EXPECT_EQ(r1.written, 1000u);
  EXPECT_EQ(r1.dropped_oldest, 0u);
  const auto r2 = s->append(std::span(flows).subspan(1000), 0);
  EXPECT_EQ(r2.written, 500u);
  EXPECT_EQ(r2.dropped_oldest, 500u);
  EXPECT_LE(s->state().bytes, 10 * kSegment);
  const auto back = readAll(*s);
  ASSERT_EQ(back.size(), 1000u);
  EXPECT_TRUE(sameRecord(back.front().record, flows[500]));  // the newest thousand survive
  EXPECT_EQ(s->state().dropped_oldest, 500u);
}

TEST(Spool, DropNewestKeepsWhatIsThere) {
  test::TempDir t;
  auto s = openSpool(t.path("s"), 10 * kSegment, false);
  const auto flows = test::sampleFlows(1500);
  s->append(std::span(flows).first(1000), 0);
  const auto r = s->append(std::span(flows).subspan(1000), 0);
  EXPECT_EQ(r.written, 0u);
  EXPECT_EQ(r.dropped_newest, 500u);
  const auto back = readAll(*s);
  ASSERT_EQ(back.size(), 1000u);
  EXPECT_TRUE(sameRecord(back.back().record, flows[999]));
}

TEST(Spool, DropOldestSparesTheSegmentOfABatchInFlight) {
  test::TempDir t;
  auto s = openSpool(t.path("s"), 3 * kSegment, true);
  const auto flows = test::sampleFlows(600);
  s->append(std::span(flows).first(300), 0);
  SpoolBatch b;
  std::string err;
  ASSERT_TRUE(s->readBatch(50, b, err));  // segment 1 is being written to the database
  s->append(std::span(flows).subspan(300, 100), 0);  // must drop segment 2, not 1
  s->commit(b);
  const auto back = readAll(*s);
  ASSERT_EQ(back.size(), 50u + 200u);
  EXPECT_TRUE(sameRecord(back.front().record, flows[50]));
  EXPECT_TRUE(sameRecord(back[50].record, flows[200]));
}

TEST(Spool, IgnoresATornRecordAtTheEndOfASegment) {
  test::TempDir t;
  std::string seg;
  {
    auto s = openSpool(t.path("s"));
    s->append(test::sampleFlows(10), 0);
    seg = s->dir() + "/seg-00000000000000000001";
  }
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    f << std::string(40, 'x');  // a crash in the middle of an append
  }
  auto s = openSpool(t.path("s"));
  EXPECT_EQ(readAll(*s).size(), 10u);
}

TEST(Spool, SkipsAndCountsARecordThatFailsItsChecksum) {
  test::TempDir t;
  std::string seg;
  {
    auto s = openSpool(t.path("s"));
    s->append(test::sampleFlows(10), 0);
    seg = s->dir() + "/seg-00000000000000000001";
  }
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(64 + 3 * kSpoolRecordSize + 20);
    f.put('\x7f');
  }
  auto s = openSpool(t.path("s"));
  SpoolBatch b;
  std::string err;
  ASSERT_TRUE(s->readBatch(100, b, err));
  EXPECT_EQ(b.flows.size(), 9u);
  EXPECT_EQ(b.corrupt, 1u);
  EXPECT_EQ(b.end - b.first, 10u);
}

TEST(Spool, RefusesASpoolLockedByAnotherProcess) {
  test::TempDir t;
  const std::string dir = prepareSpoolDir(t.path("s"));
  // flock conflicts between open file descriptions, as between processes.
  const int fd = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  (void)!::write(fd, "4242\n", 5);
  try {
    Spool s(dir, Spool::Limits{}, SpoolDirClaim::tryAcquire(dir));
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another process (pid 4242)"), std::string::npos) << e.what();
  }
  ::close(fd);
}

TEST(Spool, StateFileLostKeepsTheSegmentsOwnId) {
  test::TempDir t;
  uint64_t id = 0;
  {
    auto s = openSpool(t.path("s"));
    id = s->id();
    s->append(test::sampleFlows(5), 0);
  }
  std::filesystem::remove(t.path("s") + "/spool.state");
  auto s = openSpool(t.path("s"));
  EXPECT_EQ(s->id(), id);
  EXPECT_EQ(readAll(*s).size(), 5u);
}

}  // namespace
}  // namespace flowfold::mysql
