// The write-ahead spool on its own: order, persistence across reopen,
// resuming from the database's answer, size limit policies, damage.

#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../live/child_process.h"
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
         a.last_ms == b.last_ms && a.mplsTopLabel() == b.mplsTopLabel() && a.src_mac == b.src_mac &&
         a.dst_mac == b.dst_mac && a.tcp_flags == b.tcp_flags && a.tos == b.tos && a.min_ttl == b.min_ttl &&
         a.max_ttl == b.max_ttl && a.end_reason == b.end_reason && a.flow_id == b.flow_id && a.app == b.app;
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
  // RFC 3720 (iSCSI) B.4 test vectors: 32 bytes of zeros, of ones, ascending.
  uint8_t v[32];
  std::memset(v, 0, sizeof v);
  EXPECT_EQ(crc32c(v, 32), 0x8A9136AAu);
  std::memset(v, 0xFF, sizeof v);
  EXPECT_EQ(crc32c(v, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c(v, 32), 0x46DD794Eu);
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

// The sink thread's first connect (resumeAt with no committed position)
// can run while the export thread creates the spool's first segment. Seen in
// CI: the cursor moved past the segment being created, its records never
// counted as waiting, and flowfold exited with them unwritten.
TEST(Spool, ASegmentBeingCreatedIsNeverSkippedByTheReader) {
  const auto flows = test::sampleFlows(3);
  for (int round = 0; round < 300; ++round) {
    test::TempDir t;
    auto s = openSpool(t.path("s"));
    std::thread writer([&] { s->append(flows, 0); });
    for (int k = 0; k < 50; ++k) s->resumeAt(std::nullopt);
    writer.join();
    ASSERT_EQ(s->pendingRecords(), flows.size()) << "round " << round;
    ASSERT_EQ(readAll(*s).size(), flows.size()) << "round " << round;
  }
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

// A segment left by a flowfold before flow ids (format 1: 108-byte records,
// no flow id) is read, not quarantined: its records come back with flow id 0
// (NULL in the table), and those written after it carry their ids.
// A segment an older flowfold left: format 1 (108-byte records, before flow
// ids) or 2 (116 bytes, before DPI labels). Each is made from a current
// segment: the header's version and record size, and each record its first
// bytes (the layout each later format extended) with a CRC-32C of them.
void readsAnOlderSegment(uint32_t version, size_t record_size) {
  test::TempDir t;
  std::string seg;
  const auto flows = test::sampleFlows(10);
  {
    auto s = openSpool(t.path("s"));
    s->append(flows, 0);
    seg = s->dir() + "/seg-00000000000000000001";
  }
  {
    std::ifstream in(seg, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(bytes.size(), 64 + 10 * kSpoolRecordSize);
    std::string old = bytes.substr(0, 64);
    old[8] = static_cast<char>(version), old[9] = 0, old[10] = 0, old[11] = 0;
    old[12] = static_cast<char>(record_size), old[13] = 0, old[14] = 0, old[15] = 0;
    for (size_t i = 0; i < 10; ++i) {
      std::string rec = bytes.substr(64 + i * kSpoolRecordSize, record_size - 4);
      const uint32_t crc = crc32c(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
      for (int k = 0; k < 4; ++k) rec.push_back(static_cast<char>(crc >> (8 * k)));
      old += rec;
    }
    std::ofstream out(seg, std::ios::binary | std::ios::trunc);
    out << old;
  }
  auto s = openSpool(t.path("s"));
  const auto more = test::sampleFlows(3, 7);
  EXPECT_EQ(s->append(more, 0).written, 3u);
  EXPECT_EQ(s->pendingRecords(), 13u);
  const auto back = readAll(*s);
  ASSERT_EQ(back.size(), 13u);
  for (size_t i = 0; i < 10; ++i) {
    FlowRecord want = flows[i];
    if (version == 1) want.flow_id = 0;
    want.app = AppLabel{};
    EXPECT_TRUE(sameRecord(back[i].record, want)) << i;
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(sameRecord(back[10 + i].record, more[i])) << i;
  EXPECT_EQ(segmentFiles(s->dir()), 1u);  // nothing quarantined; the new tail stays
}

TEST(Spool, ReadsASegmentOfTheFormatBeforeFlowIds) { readsAnOlderSegment(1, 108); }
TEST(Spool, ReadsASegmentOfTheFormatBeforeLabels) { readsAnOlderSegment(2, 116); }

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

// ---------------------------------------------------------------- damage

constexpr char kFirstSegment[] = "seg-00000000000000000001";

std::string fileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(SpoolDamage, QuarantinesASegmentCutShorterThanItsHeader) {
  test::TempDir t;
  std::string dir;
  {
    auto s = openSpool(t.path("s"));
    dir = s->dir();
    s->append(test::sampleFlows(10), 0);
  }
  std::filesystem::resize_file(dir + "/" + kFirstSegment, 40);
  testing::internal::CaptureStderr();
  auto s = openSpool(t.path("s"));
  const std::string log = testing::internal::GetCapturedStderr();
  // Kept under a name the spool never reads, with its bytes, and said so.
  EXPECT_FALSE(exists(dir + "/" + kFirstSegment));
  ASSERT_TRUE(exists(dir + "/" + kFirstSegment + ".bad"));
  EXPECT_EQ(std::filesystem::file_size(dir + "/" + kFirstSegment + ".bad"), 40u);
  EXPECT_NE(log.find("shorter than its 64-byte header"), std::string::npos) << log;
  EXPECT_NE(log.find(std::string(kFirstSegment) + ".bad"), std::string::npos) << log;
  EXPECT_EQ(s->state().segments_quarantined, 1u);
  EXPECT_EQ(readAll(*s).size(), 0u);
}

TEST(SpoolDamage, QuarantineNeverOverwritesAnEarlierQuarantinedFile) {
  test::TempDir t;
  std::string dir;
  {
    auto s = openSpool(t.path("s"));
    dir = s->dir();
    s->append(test::sampleFlows(10), 0);
  }
  writeText(dir + "/" + kFirstSegment + ".bad", "earlier");
  std::filesystem::resize_file(dir + "/" + kFirstSegment, 40);
  testing::internal::CaptureStderr();
  auto s = openSpool(t.path("s"));
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(fileText(dir + "/" + kFirstSegment + ".bad"), "earlier");
  ASSERT_TRUE(exists(dir + "/" + kFirstSegment + ".bad.2"));
  EXPECT_EQ(std::filesystem::file_size(dir + "/" + kFirstSegment + ".bad.2"), 40u);
}

TEST(SpoolDamage, AnAbsurdNextSegmentIsRepairedAndNothingIsLost) {
  test::TempDir t;
  std::string dir;
  const auto flows = test::sampleFlows(1005);
  {
    auto s = openSpool(t.path("s"));
    dir = s->dir();
    s->append(std::span(flows).first(5), 0);
  }
  std::string state = fileText(dir + "/spool.state");
  state.replace(state.find("next_segment"), std::string::npos, "next_segment 18446744073709551610\n");
  writeText(dir + "/spool.state", state);
  testing::internal::CaptureStderr();
  auto s = openSpool(t.path("s"));
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("next_segment 18446744073709551610"), std::string::npos) << log;
  // Ten more segments: before the repair they wrapped past 2^64.
  EXPECT_EQ(s->append(std::span(flows).subspan(5), 0).written, 1000u);
  EXPECT_EQ(s->pendingRecords(), 1005u);
  const auto back = readAll(*s, 64);
  ASSERT_EQ(back.size(), 1005u);
  for (size_t i = 0; i < back.size(); ++i) ASSERT_TRUE(sameRecord(back[i].record, flows[i])) << i;
  EXPECT_EQ(s->pendingRecords(), 0u);
  EXPECT_EQ(s->writePosition().segment, 11u);  // continues after the newest segment on disk
}

TEST(SpoolDamage, AnImpossibleNextSegmentWithNoSegmentsLeftStartsAfreshWithoutWrapping) {
  // Nothing on disk to repair from. "-1" is what an istream reads as 2^64 - 1.
  for (const char* bad : {"18446744073709551615", "-1"}) {
    test::TempDir t;
    std::string dir;
    uint64_t old_id = 0;
    {
      auto s = openSpool(t.path("s"));
      dir = s->dir();
      old_id = s->id();
    }
    std::string state = fileText(dir + "/spool.state");
    state.replace(state.find("next_segment"), std::string::npos, std::string("next_segment ") + bad + "\n");
    writeText(dir + "/spool.state", state);
    testing::internal::CaptureStderr();
    auto s = openSpool(t.path("s"));
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("spool.state.bad"), std::string::npos) << bad << ": " << log;
    EXPECT_NE(s->id(), old_id) << bad;  // a new id: no number of it is in any database
    EXPECT_EQ(s->append(test::sampleFlows(3), 0).written, 3u) << bad;
    EXPECT_EQ(s->writePosition().segment, 1u) << bad;
    EXPECT_EQ(readAll(*s).size(), 3u) << bad;
    EXPECT_TRUE(exists(dir + "/spool.state.bad")) << bad;
  }
}

// Root reads any file; the service user does not. The child drops to nobody
// for real, so the open fails with EACCES as it does in production.
constexpr uid_t kNobody = 65534;

int asNobody(const std::function<int()>& body) {
  return test_support::runInChild([&] {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0)
      return test_support::kChildSkip;
    return body();
  });
}

TEST(SpoolDamage, AnUnreadableSegmentIsKeptNotQuarantinedAndReplayedOnceReadable) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  test::TempDir t;
  ASSERT_EQ(::chmod(t.dir().c_str(), 0755), 0);
  const std::string dir = t.path("s");
  ASSERT_EQ(::mkdir(dir.c_str(), 0750), 0);
  ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(asNobody([&] {
              auto s = openSpool(dir);
              return s->append(test::sampleFlows(10), 0).written == 10 ? 0 : 1;
            }),
            0);
  const std::string seg = dir + "/" + kFirstSegment;
  // Left behind by a run as root, say: valid, but not the service user's.
  ASSERT_EQ(::chown(seg.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(seg.c_str(), 0600), 0);
  // The child reports the failed read, then waits while the parent (the
  // administrator) gives the file back, and reads again without reopening.
  int to_parent[2], to_child[2];
  ASSERT_EQ(::pipe(to_parent), 0);
  ASSERT_EQ(::pipe(to_child), 0);
  std::thread admin([&] {
    char c = 0;
    pollfd pfd{to_parent[0], POLLIN, 0};  // a child that died never writes
    if (::poll(&pfd, 1, 60000) == 1 && ::read(to_parent[0], &c, 1) == 1 && c == 'r') {
      EXPECT_TRUE(exists(seg));
      EXPECT_FALSE(exists(seg + ".bad"));
      EXPECT_EQ(::chown(seg.c_str(), kNobody, kNobody), 0);
    }
    (void)!::write(to_child[1], "go", 2);
  });
  const int child = asNobody([&] {
    testing::internal::CaptureStderr();
    auto s = openSpool(dir);
    SpoolBatch b;
    std::string err;
    const bool read = s->readBatch(100, b, err);
    const std::string log = testing::internal::GetCapturedStderr();
    std::fprintf(stderr, "%s\nreadBatch error: %s\n", log.c_str(), err.c_str());
    (void)!::write(to_parent[1], "r", 1);
    char go[2];
    if (::read(to_child[0], go, 2) != 2) return 7;
    if (read) return 2;
    if (err.find("Permission denied") == std::string::npos) return 3;
    if (log.find("does not belong") != std::string::npos) return 4;
    if (log.find("cannot read " + seg + " (Permission denied)") == std::string::npos) return 5;
    if (s->pendingRecords() != 10) return 6;
    return readAll(*s).size() == 10 ? 0 : 8;  // now readable: every record, same spool
  });
  admin.join();
  for (const int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
  ASSERT_NE(child, test_support::kChildSkip);
  EXPECT_EQ(child, 0);
  EXPECT_FALSE(exists(seg + ".bad"));
}

// ---------------------------------------------------------------- planted links and trust

TEST(SpoolTrust, DoesNotFollowALockSymlink) {
  test::TempDir t;
  const std::string dir = prepareSpoolDir(t.path("s"));
  const std::string victim = t.path("victim");
  writeText(victim, "precious\n");
  ASSERT_EQ(::symlink(victim.c_str(), (dir + "/lock").c_str()), 0);
  try {
    Spool s(dir, Spool::Limits{}, SpoolDirClaim::tryAcquire(dir));
    ADD_FAILURE() << "a spool with a symlinked lock opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fileText(victim), "precious\n");
}

TEST(SpoolTrust, ASpoolThatFailsToOpenLetsGoOfItsLock) {
  // The lock is taken before spool.state is read; a state that cannot be
  // used ends the opening. Once the cause is gone, the same process (a
  // reload) must be able to open the spool: it is not "in use" by itself.
  test::TempDir t;
  const std::string dir = prepareSpoolDir(t.path("s"));
  const std::string victim = t.path("victim");
  writeText(victim, "precious\n");
  ASSERT_EQ(::symlink(victim.c_str(), (dir + "/spool.state").c_str()), 0);
  EXPECT_THROW(Spool(dir, Spool::Limits{}, SpoolDirClaim::tryAcquire(dir)), std::runtime_error);
  ASSERT_EQ(::unlink((dir + "/spool.state").c_str()), 0);
  Spool s(dir, Spool::Limits{}, SpoolDirClaim::tryAcquire(dir));
  EXPECT_EQ(s.append(test::sampleFlows(2), 0).written, 2u);
  EXPECT_EQ(fileText(victim), "precious\n");
}

TEST(SpoolTrust, DoesNotFollowAStateTmpSymlink) {
  test::TempDir t;
  const std::string dir = prepareSpoolDir(t.path("s"));
  const std::string victim = t.path("victim");
  writeText(victim, "precious\n");
  ASSERT_EQ(::symlink(victim.c_str(), (dir + "/spool.state.tmp").c_str()), 0);
  {
    Spool s(dir, Spool::Limits{}, SpoolDirClaim::tryAcquire(dir));
    EXPECT_EQ(s.append(test::sampleFlows(2), 0).written, 2u);
  }
  EXPECT_EQ(fileText(victim), "precious\n");
  struct stat st{};
  ASSERT_EQ(::lstat((dir + "/spool.state").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(SpoolTrust, QuarantinesASymlinkedSegmentWithoutTouchingItsTarget) {
  test::TempDir t;
  std::string dir;
  {
    auto s = openSpool(t.path("s"));
    dir = s->dir();
    s->append(test::sampleFlows(3), 0);
  }
  // A valid segment elsewhere, linked in: not the spool's own file.
  const std::string elsewhere = t.path("elsewhere");
  std::filesystem::rename(dir + "/" + kFirstSegment, elsewhere);
  const std::string before = fileText(elsewhere);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (dir + "/" + kFirstSegment).c_str()), 0);
  testing::internal::CaptureStderr();
  auto s = openSpool(t.path("s"));
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(readAll(*s).size(), 0u);
  EXPECT_NE(log.find("not a regular file"), std::string::npos) << log;
  EXPECT_EQ(fileText(elsewhere), before);
  EXPECT_EQ(s->state().segments_quarantined, 1u);
}

TEST(SpoolTrust, RefusesASpoolDirOwnedByAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  test::TempDir t;
  const std::string dir = t.path("s");
  ASSERT_EQ(::mkdir(dir.c_str(), 0750), 0);
  ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
  try {
    prepareSpoolDir(dir);
    ADD_FAILURE() << "a spool directory owned by uid " << kNobody << " was accepted by uid " << ::geteuid();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is owned by uid 65534"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(dir + "/lock"));
}

TEST(SpoolTrust, RefusesAGroupOrWorldWritableSpoolDir) {
  for (const mode_t mode : {0770, 0757, 01777}) {
    test::TempDir t;
    const std::string dir = t.path("s");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    try {
      prepareSpoolDir(dir);
      ADD_FAILURE() << "mode " << std::oct << mode << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("writable by other users"), std::string::npos) << e.what();
    }
  }
}

TEST(SpoolTrust, CreatesItsFilesWithoutAccessForOthers) {
  test::TempDir t;
  const mode_t old = ::umask(0);  // the mode must not depend on a careful umask
  std::string dir;
  {
    auto s = openSpool(t.path("s"));
    dir = s->dir();
    s->append(test::sampleFlows(3), 0);
  }
  ::umask(old);
  for (const char* name : {"", "/lock", "/spool.state", "/seg-00000000000000000001"}) {
    struct stat st{};
    ASSERT_EQ(::lstat((dir + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 027, 0u) << name << " mode " << std::oct << (st.st_mode & 07777);
  }
}

}  // namespace
}  // namespace flowfold::mysql
