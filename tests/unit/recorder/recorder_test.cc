// The recorder's files: names, the pcap framing, the repair of a cut
// segment, the ring's bounds and the writer (recorder.h), on files made here.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "flowfold/recorder/flow_log.h"
#include "flowfold/recorder/pcap_segment.h"
#include "flowfold/recorder/recorder.h"
#include "flowfold/recorder/segment_index.h"
#include "flowfold/recorder/segment_writer.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold::recorder {
namespace {

namespace fs = std::filesystem;

std::string tempDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("flowfold-recorder-test-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::vector<uint8_t> readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

uint32_t le32(const std::vector<uint8_t>& b, size_t off) {
  return uint32_t{b[off]} | uint32_t{b[off + 1]} << 8 | uint32_t{b[off + 2]} << 16 | uint32_t{b[off + 3]} << 24;
}

TEST(SegmentName, RoundTripsAndRefusesOtherNames) {
  const SegmentName n{42, "eth0.1", 1700000000};
  EXPECT_EQ(segmentFileName(n), "flowfold-000000000042-eth0.1-1700000000.pcap");
  const auto back = parseSegmentName(segmentFileName(n));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->sequence, 42u);
  EXPECT_EQ(back->stream, "eth0.1");
  EXPECT_EQ(back->start_s, 1700000000u);
  for (const char* other : {"flowfold-42-file-1.pcap", "flowfold-000000000042-file-1.pcapng", "notes.txt",
                            "flowfold-000000000042-fi-le-1.pcap", "flowfold-00000000004x-file-1.pcap",
                            "flowfold-000000000042--1.pcap", "xflowfold-000000000042-file-1.pcap"})
    EXPECT_FALSE(parseSegmentName(other)) << other;
  EXPECT_EQ(streamName("eth0-1/x"), "eth01x");
  EXPECT_EQ(streamName("---"), "capture");
}

TEST(PcapFraming, HeadersAreClassicPcapWithNanoseconds) {
  uint8_t file[kPcapFileHeaderSize], record[kPcapRecordHeaderSize];
  writePcapFileHeader(file, 65535, 1);
  writePcapRecordHeader(record, 1'700'000'001'123'456'789ull, 60, 1514);
  const std::vector<uint8_t> f(file, file + sizeof file), r(record, record + sizeof record);
  EXPECT_EQ(le32(f, 0), 0xa1b23c4du);
  EXPECT_EQ(f[4] | f[5] << 8, 2);  // version 2.4
  EXPECT_EQ(f[6] | f[7] << 8, 4);
  EXPECT_EQ(le32(f, 16), 65535u);
  EXPECT_EQ(le32(f, 20), 1u);
  EXPECT_EQ(le32(r, 0), 1'700'000'001u);
  EXPECT_EQ(le32(r, 4), 123'456'789u);
  EXPECT_EQ(le32(r, 8), 60u);
  EXPECT_EQ(le32(r, 12), 1514u);
}

// A segment of `n` records of `size` bytes each, written by hand.
std::string handMadeSegment(const std::string& dir, int n, uint32_t size) {
  const std::string path = dir + "/seg.pcap";
  std::vector<uint8_t> bytes(kPcapFileHeaderSize);
  writePcapFileHeader(bytes.data(), 262144, 1);
  for (int i = 0; i < n; ++i) {
    uint8_t h[kPcapRecordHeaderSize];
    writePcapRecordHeader(h, 1'000'000'000ull * (1000 + i), size, size);
    bytes.insert(bytes.end(), h, h + sizeof h);
    bytes.insert(bytes.end(), size, static_cast<uint8_t>(i));
  }
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

TEST(RepairSegment, TrimsAPartialLastRecordAndKeepsWholeOnes) {
  const std::string dir = tempDir("repair");
  const std::string path = handMadeSegment(dir, 5, 100);
  const uint64_t whole = kPcapFileHeaderSize + 5 * (kPcapRecordHeaderSize + 100);
  RepairResult r = repairSegment(path);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.packets, 5u);
  EXPECT_EQ(r.cut_bytes, 0u);
  fs::resize_file(path, whole - 30);  // the last record cut
  r = repairSegment(path);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.packets, 4u);
  EXPECT_EQ(r.cut_bytes, kPcapRecordHeaderSize + 100 - 30);
  EXPECT_EQ(fs::file_size(path), whole - kPcapRecordHeaderSize - 100);
  fs::resize_file(path, fs::file_size(path) - (kPcapRecordHeaderSize + 100) + 5);  // inside a header
  r = repairSegment(path);
  EXPECT_EQ(r.packets, 3u);
  EXPECT_EQ(fs::file_size(path), kPcapFileHeaderSize + 3 * (kPcapRecordHeaderSize + 100));
  fs::remove_all(dir);
}

TEST(RepairSegment, LeavesDamageInTheMiddleAndForeignFilesAlone) {
  const std::string dir = tempDir("damage");
  const std::string path = handMadeSegment(dir, 3, 100);
  const uint64_t size = fs::file_size(path);
  {
    // The first record's caplen is garbage: what follows is more than one
    // record's worth, so it is not the cut of a crash.
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(kPcapFileHeaderSize + 8);
    const uint32_t huge = 0x7fffffff;
    f.write(reinterpret_cast<const char*>(&huge), 4);
  }
  RepairResult r = repairSegment(path);
  EXPECT_FALSE(r.valid);
  EXPECT_NE(r.error.find("damaged at offset 24"), std::string::npos) << r.error;
  EXPECT_EQ(fs::file_size(path), size);
  const std::string text = dir + "/notes.txt";
  std::ofstream(text) << "not a capture\n";
  r = repairSegment(text);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(fs::file_size(text), 14u);
  fs::remove_all(dir);
}

// Writes a fake closed segment of `bytes` bytes into the ring's directory.
void fakeSegment(const std::string& dir, uint64_t sequence, uint64_t start_s, uint64_t bytes) {
  const std::string path = dir + "/" + segmentFileName(SegmentName{sequence, "file", start_s});
  std::vector<uint8_t> data(bytes);
  writePcapFileHeader(data.data(), 262144, 1);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), data.size());
}

TEST(SegmentRing, RemovesTheOldestOverMaxSizeAndByAge) {
  const std::string dir = tempDir("ring");
  for (uint64_t i = 1; i <= 6; ++i) fakeSegment(dir, i, 1000 + 100 * i, 1000);
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  o.max_size = 3500;
  SegmentRing ring(o);
  EXPECT_EQ(ring.segments().size(), 6u);
  ring.enforceBounds(0);
  auto kept = ring.segments();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].name.sequence, 4u);
  EXPECT_EQ(ring.counters().segments_removed, 3u);
  EXPECT_FALSE(fs::exists(dir + "/" + segmentFileName(SegmentName{1, "file", 1100})));
  // By age: segment 4 ended when 5 began (1500 s); at 1650 s with a 120 s
  // limit it is over, 5 (ended at 1600) is not.
  o.max_size = 0;
  o.max_age_ms = 120'000;
  SegmentRing aged(o);
  aged.enforceBounds(1'650'000);
  kept = aged.segments();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].name.sequence, 5u);
  fs::remove_all(dir);
}

FlowRecord flowRecord(uint64_t id, uint64_t first_ms, uint64_t last_ms, uint16_t port) {
  FlowRecord r;
  r.flow_id = id;
  r.first_ms = first_ms;
  r.last_ms = last_ms;
  r.key.ip_version = 4;
  r.key.protocol = 6;
  r.key.src_port = port;
  r.key.dst_port = 443;
  r.key.src_addr[0] = 10;
  r.key.dst_addr[0] = 192;
  return r;
}


// An Ethernet/IPv4/UDP frame of flow `n` (source port 1000 + n) as a pcap record.
void appendUdpRecord(std::vector<uint8_t>& block, uint32_t n, uint64_t ts_ns) {
  uint8_t frame[60] = {};
  frame[12] = 0x08;  // IPv4
  uint8_t* ip = frame + 14;
  ip[0] = 0x45;
  ip[3] = 46;  // total length: 20 + 8 + 18
  ip[8] = 64;
  ip[9] = 17;
  ip[12] = 10, ip[15] = 1;
  ip[16] = 10, ip[19] = 2;
  uint8_t* udp = ip + 20;
  udp[0] = static_cast<uint8_t>((1000 + n) >> 8), udp[1] = static_cast<uint8_t>(1000 + n);
  udp[2] = 0, udp[3] = 53;
  udp[5] = 26;
  uint8_t header[kPcapRecordHeaderSize];
  writePcapRecordHeader(header, ts_ns, sizeof frame, sizeof frame);
  block.insert(block.end(), header, header + sizeof header);
  block.insert(block.end(), frame, frame + sizeof frame);
}

// The keys of each block of an index, as sets.
std::vector<std::vector<FlowKey>> blockKeys(const std::string& path) {
  SegmentIndex index;
  std::string error;
  EXPECT_TRUE(readSegmentIndex(path, index, error)) << error;
  std::vector<std::vector<FlowKey>> out;
  for (const IndexBlock& b : index.blocks) {
    std::vector<FlowKey> keys;
    for (uint32_t f : b.flows) keys.push_back(index.flows[f]);
    std::sort(keys.begin(), keys.end(), [](const FlowKey& a, const FlowKey& b) { return std::memcmp(&a, &b, sizeof a) < 0; });
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    out.push_back(keys);
  }
  return out;
}

// Flow tags (the flow cache's entry for each frame) number the flows as the
// keys do: the same keys in each block, across segments, with an entry
// reused by another flow and frames that made no flow.
TEST(SegmentIndex, FlowTagsGiveTheBlocksTheKeysDo) {
  const std::string dir = tempDir("tags");
  // Three blocks: flows 0-2 in entries 0-2; then flow 3 takes entry 1 (a new
  // flow there); a frame of no flow; flows 0 and 3 again.
  std::vector<std::vector<std::pair<uint32_t, uint64_t>>> blocks = {
      {{0, 0 << 1 | 1}, {1, 1 << 1 | 1}, {0, 0 << 1}, {2, 2 << 1 | 1}},
      {{3, 1 << 1 | 1}, {2, 2 << 1}, {99, FlowTags::kNoFlow}, {3, 1 << 1}},
      {{0, 0 << 1}, {3, 1 << 1}},
  };
  for (const bool tagged : {false, true}) {
    IndexWriter w(1, probe::TunnelMode::kOuter);
    std::string error;
    for (int segment = 0; segment < 2; ++segment) {  // the second segment starts afresh
      ASSERT_TRUE(w.open(dir + "/" + (tagged ? "t" : "k") + std::to_string(segment) + ".idx", error)) << error;
      uint64_t offset = kPcapFileHeaderSize;
      for (const auto& frames : blocks) {
        std::vector<uint8_t> records;
        std::vector<uint64_t> tags;
        for (const auto& [flow, tag] : frames) {
          if (flow == 99) {  // not IP: no flow
            const uint8_t arp[60] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x06};
            uint8_t header[kPcapRecordHeaderSize];
            writePcapRecordHeader(header, 1, sizeof arp, sizeof arp);
            records.insert(records.end(), header, header + sizeof header);
            records.insert(records.end(), arp, arp + sizeof arp);
          } else {
            appendUdpRecord(records, flow, 1'700'000'000'000'000'000ull);
          }
          tags.push_back(tag);
        }
        ASSERT_TRUE(w.addBlock(records.data(), records.size(), offset, tagged ? tags.data() : nullptr, error)) << error;
        ASSERT_TRUE(w.commitBlock(error)) << error;
        offset += records.size();
      }
      w.close();
    }
  }
  // A query for exact keys (compared coded, not decoded) wants the blocks
  // the decoded keys say hold them: flow 3 is in blocks 1 and 2, flow 1 in block 0.
  {
    const auto keys = blockKeys(dir + "/k0.idx");
    std::vector<uint8_t> one;
    appendUdpRecord(one, 3, 1);
    probe::Decoder decoder(1);
    probe::DecodedPacket p{};
    ASSERT_EQ(decoder.decode(one.data() + kPcapRecordHeaderSize, 60, 60, 0, p), probe::DecodeStatus::kOk);
    for (const char* file : {"k0.idx", "t0.idx"}) {
      SegmentIndex index;
      std::string error;
      ASSERT_TRUE(readSegmentIndex(dir + "/" + file, index, error, std::span(&p.key, 1))) << error;
      ASSERT_EQ(index.blocks.size(), 3u);
      EXPECT_FALSE(index.blocks[0].wanted) << file;
      EXPECT_TRUE(index.blocks[1].wanted) << file;
      EXPECT_TRUE(index.blocks[2].wanted) << file;
    }
  }
  for (int segment = 0; segment < 2; ++segment) {
    const auto by_key = blockKeys(dir + "/k" + std::to_string(segment) + ".idx");
    const auto by_tag = blockKeys(dir + "/t" + std::to_string(segment) + ".idx");
    ASSERT_EQ(by_key.size(), 3u);
    EXPECT_EQ(by_key[0].size(), 3u);
    EXPECT_EQ(by_key[1].size(), 3u);  // flows 3, 2 and the frame of no flow
    EXPECT_EQ(by_key[2].size(), 2u);
    ASSERT_EQ(by_tag.size(), by_key.size());
    for (size_t b = 0; b < by_key.size(); ++b) {
      ASSERT_EQ(by_tag[b].size(), by_key[b].size()) << "segment " << segment << " block " << b;
      for (size_t k = 0; k < by_key[b].size(); ++k) EXPECT_TRUE(by_tag[b][k] == by_key[b][k]) << b << " " << k;
    }
  }
  fs::remove_all(dir);
}

// One large write of records is indexed as blocks of about
// kIndexBlockBytes cut at record boundaries, each with the time of its
// earliest and latest packet (a capture's clock may step back); a query
// with a time span reads only the blocks of that span, and finds a flow in
// them even when the block that first declared it lies outside the span.
TEST(SegmentIndex, AWriteIsCutIntoSmallBlocksAndASpanReadsOnlyItsOwn) {
  const std::string dir = tempDir("subblocks");
  constexpr uint64_t kBase = 1'700'000'000'000'000'000ull;
  constexpr size_t kRecord = kPcapRecordHeaderSize + 60;
  constexpr size_t kPerBlock = (kIndexBlockBytes + kRecord - 1) / kRecord;  // the record that crosses the size ends a block
  constexpr size_t kPackets = 3 * kPerBlock + 100;                        // three whole blocks and a short one
  constexpr uint32_t kRare = 500;                                          // flow 500: packets in blocks 0 and 2 only
  const size_t rare_at[] = {10, 2 * kPerBlock + 7};
  const size_t step_back_at = kPerBlock + 5;  // in block 1, a packet 1 s before its neighbours
  constexpr uint32_t kLone = 600;             // flow 600: one packet, in block 1
  const size_t lone_at = kPerBlock + 20;
  std::vector<uint8_t> records;
  std::vector<uint64_t> tags;
  std::vector<bool> seen(kLone + 1, false);
  for (size_t i = 0; i < kPackets; ++i) {
    const bool rare = i == rare_at[0] || i == rare_at[1];
    const uint32_t flow = rare ? kRare : i == lone_at ? kLone : static_cast<uint32_t>(i % 40);
    const uint64_t ts = i == step_back_at ? kBase + i * 1'000'000 - 1'000'000'000 : kBase + i * 1'000'000;
    appendUdpRecord(records, flow, ts);
    tags.push_back(uint64_t{flow} << 1 | (seen[flow] ? 0 : 1));
    seen[flow] = true;
  }
  ASSERT_EQ(records.size(), kPackets * kRecord);
  probe::Decoder decoder(1);
  probe::DecodedPacket rare{};
  {
    std::vector<uint8_t> one;
    appendUdpRecord(one, kRare, 0);
    ASSERT_EQ(decoder.decode(one.data() + kPcapRecordHeaderSize, 60, 60, 0, rare), probe::DecodeStatus::kOk);
  }
  for (const bool tagged : {false, true}) {
    const std::string path = dir + (tagged ? "/t.idx" : "/k.idx");
    IndexWriter w(1, probe::TunnelMode::kOuter);
    std::string error;
    ASSERT_TRUE(w.open(path, error)) << error;
    ASSERT_TRUE(w.addBlock(records.data(), records.size(), kPcapFileHeaderSize, tagged ? tags.data() : nullptr, error))
        << error;
    ASSERT_TRUE(w.commitBlock(error)) << error;
    w.close();

    SegmentIndex all;
    ASSERT_TRUE(readSegmentIndex(path, all, error)) << error;
    ASSERT_EQ(all.blocks.size(), 4u) << tagged;
    EXPECT_EQ(all.flows.size(), 42u);
    for (size_t b = 0; b < 4; ++b) {
      const size_t first = b * kPerBlock, n = b < 3 ? kPerBlock : 100;
      EXPECT_EQ(all.blocks[b].packets, n) << b;
      EXPECT_EQ(all.blocks[b].offset, kPcapFileHeaderSize + first * kRecord) << b;
      EXPECT_EQ(all.blocks[b].length, n * kRecord) << b;
      const uint64_t earliest = b == 1 ? kBase + step_back_at * 1'000'000 - 1'000'000'000 : kBase + first * 1'000'000;
      EXPECT_EQ(all.blocks[b].first_ts_ns, earliest) << b;
      EXPECT_EQ(all.blocks[b].last_ts_ns, kBase + (first + n - 1) * 1'000'000) << b;
    }
    EXPECT_EQ(all.indexed_end, kPcapFileHeaderSize + records.size());

    // The rare flow, by exact key and by a filter: blocks 0 and 2, or only
    // 2 when the span is block 2's time (its key is declared in block 0).
    const auto isRare = [&](const FlowKey& k) { return k == rare.key; };
    const TimeSpan block2{kBase + 2 * kPerBlock * 1'000'000, kBase + (3 * kPerBlock - 1) * 1'000'000};
    for (const TimeSpan span : {TimeSpan{}, block2}) {
      const bool whole = span.to_ns == UINT64_MAX;
      SegmentIndex by_key, by_filter;
      ASSERT_TRUE(readSegmentIndex(path, by_key, error, std::span(&rare.key, 1), span)) << error;
      size_t asked = 0;
      ASSERT_TRUE(readSegmentIndex(
          path, by_filter, error, [&](const FlowKey& k) { return ++asked, isRare(k); }, span))
          << error;
      for (const SegmentIndex* index : {&by_key, &by_filter}) {
        ASSERT_EQ(index->blocks.size(), 4u);
        EXPECT_EQ(index->blocks[0].wanted, whole) << tagged;
        EXPECT_FALSE(index->blocks[1].wanted) << tagged;
        EXPECT_TRUE(index->blocks[2].wanted) << tagged;
        EXPECT_FALSE(index->blocks[3].wanted) << tagged;
      }
      // Outside the span, only the blocks declaring a flow of the span are
      // read: the lone flow of block 1 is never asked about then.
      EXPECT_EQ(asked, whole ? 42u : 41u) << tagged;
    }
    // A span between the rare flow's packets wants no block.
    SegmentIndex none;
    const TimeSpan block1{kBase + kPerBlock * 1'000'000, kBase + (2 * kPerBlock - 1) * 1'000'000};
    ASSERT_TRUE(readSegmentIndex(path, none, error, std::span(&rare.key, 1), block1)) << error;
    for (const IndexBlock& b : none.blocks) EXPECT_FALSE(b.wanted) << tagged;
  }
  fs::remove_all(dir);
}

// A block header whose counts of keys and listed flows its payload cannot
// hold (a byte each at least) is damage, reported, not an allocation of
// billions (tests/fuzz/regressions/fuzz_ring_files/index-counts-past-its-payload).
TEST(SegmentIndex, CountsItsPayloadCannotHoldAreDamage) {
  const std::string dir = tempDir("index-counts");
  const std::string path = dir + "/x.idx";
  {
    IndexWriter w(1, probe::TunnelMode::kOuter);
    std::string error;
    ASSERT_TRUE(w.open(path, error)) << error;
    std::vector<uint8_t> records;
    appendUdpRecord(records, 1, 1'000);
    appendUdpRecord(records, 2, 2'000);
    ASSERT_TRUE(w.addBlock(records.data(), records.size(), kPcapFileHeaderSize, nullptr, error)) << error;
    ASSERT_TRUE(w.commitBlock(error)) << error;
    w.close();
  }
  const std::vector<uint8_t> good = readAll(path);
  for (const size_t field : {size_t{4}, size_t{8}}) {  // new flows, listed flows
    std::vector<uint8_t> bad = good;
    const uint32_t huge = 0xffffffff;
    std::memcpy(bad.data() + kIndexHeaderSize + field, &huge, sizeof huge);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bad.data()), static_cast<std::streamsize>(bad.size()));
    SegmentIndex index;
    std::string error;
    EXPECT_FALSE(readSegmentIndex(path, index, error)) << field;
    EXPECT_EQ(error, "damaged block at offset " + std::to_string(kIndexHeaderSize)) << field;
  }
  fs::remove_all(dir);
}

// Whole pages go out directly, the partial last one through the page
// cache: after every append the file holds exactly what was appended, on a
// filesystem with O_DIRECT (the temporary directory's) and on one without
// (tmpfs, /dev/shm).
TEST(SegmentWriter, TheFileIsWholeAfterEveryAppendDirectOrNot) {
  for (const std::string& base : {fs::temp_directory_path().string(), std::string("/dev/shm")}) {
    if (!fs::is_directory(base)) continue;
    const std::string path = base + "/flowfold-segment-writer-" + std::to_string(getpid());
    fs::remove(path);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> want;
    {
      SegmentWriter w(fd, path);
      SCOPED_TRACE(base + (w.direct() ? ": direct" : ": plain"));
      uint32_t seed = 7;
      for (size_t n : {24u, 100u, 4000u, 4096u, 1u, 12289u, 3u, 65536u, 5000u}) {
        std::vector<uint8_t> data(n);
        for (auto& b : data) b = static_cast<uint8_t>(seed = seed * 1103515245 + 12345);
        std::string error;
        ASSERT_TRUE(w.append(data.data(), data.size(), error)) << error;
        want.insert(want.end(), data.begin(), data.end());
        ASSERT_EQ(w.size(), want.size());
        ASSERT_EQ(readAll(path), want) << "after appending " << n;
      }
      ASSERT_TRUE(w.cutBack(want.size() - 5000));
      want.resize(want.size() - 5000);
      const uint8_t more[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
      std::string error;
      ASSERT_TRUE(w.append(more, sizeof more, error)) << error;
      want.insert(want.end(), more, more + sizeof more);
    }
    EXPECT_EQ(readAll(path), want);
    fs::remove(path);
  }
}

TEST(FlowLog, NamesRoundTripAndOtherNamesAreNotLogs) {
  EXPECT_EQ(flowLogFileName(7), "flowfold-flows-000000000007.flows");
  EXPECT_EQ(parseFlowLogName("flowfold-flows-000000000007.flows"), 7u);
  for (const char* other : {"flowfold-flows-7.flows", "flowfold-flows-00000000000x.flows",
                            "flowfold-flows-000000000007.flows.bak", "flowfold-000000000001-file-1.pcap"})
    EXPECT_FALSE(parseFlowLogName(other)) << other;
}

TEST(FlowLog, EntriesReadBackAndATornLastOneIsLeftOut) {
  const std::string dir = tempDir("flowlog");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  {
    SegmentRing ring(o);
    FlowLogWriter log(ring);
    std::vector<FlowRecord> records = {flowRecord(5, 1000, 2000, 1), flowRecord(0, 1, 2, 3),  // no id: not logged
                                       flowRecord(6, 1500, 1600, 2)};
    std::string error;
    ASSERT_TRUE(log.add(std::span(records).first(2), 0, error)) << error;
    ASSERT_TRUE(log.flush(error)) << error;  // a block
    ASSERT_TRUE(log.add(std::span(records).subspan(2), 0, error)) << error;
    ASSERT_TRUE(log.flush(error)) << error;  // and another
    EXPECT_EQ(ring.highestFlowId(), 6u);
  }
  const std::string path = dir + "/" + flowLogFileName(1);
  FlowLog read;
  std::string error;
  ASSERT_TRUE(readFlowLog(path, read, error)) << error;
  EXPECT_EQ(read.run_first_segment, 1u);
  ASSERT_EQ(read.entries.size(), 2u);
  EXPECT_EQ(read.entries[1].flow_id, 6u);
  EXPECT_EQ(read.entries[1].first_ms, 1500u);
  EXPECT_EQ(read.entries[1].last_ms, 1600u);
  EXPECT_EQ(read.entries[1].key.src_port, 2);
  // Looking for some ids: only their entries (the block of id 5 is not even decoded).
  const uint64_t six[] = {6};
  ASSERT_TRUE(readFlowLog(path, read, error, six)) << error;
  ASSERT_EQ(read.entries.size(), 1u);
  EXPECT_EQ(read.entries[0].flow_id, 6u);
  const uint64_t none[] = {4, 7};
  ASSERT_TRUE(readFlowLog(path, read, error, none)) << error;
  EXPECT_TRUE(read.entries.empty());
  // A crash in the middle of the last block (before the writer could end
  // the file with its directory of two blocks).
  const uint64_t directory = kFlowLogBlockHeaderSize + 2 * sizeof(FlowLogDirectoryEntry) + kFlowLogTrailerSize;
  fs::resize_file(path, fs::file_size(path) - directory - 10);
  ASSERT_TRUE(readFlowLog(path, read, error));
  EXPECT_EQ(read.entries.size(), 1u);
  EXPECT_EQ(read.damage, "");
  // A reopened ring knows the ids its logs hold, and a new run's log starts a new file.
  SegmentRing again(o);
  EXPECT_EQ(again.highestFlowId(), 5u);
  FlowLogFile next;
  const int fd = again.openFlowLog(next);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(next.path, dir + "/" + flowLogFileName(2));
  fs::remove_all(dir);
}

// A write of thousands of flows (given out of id order, as flows end) is
// many small blocks of sorted ids: every entry reads back, and a lookup of
// a few ids returns exactly theirs.
TEST(FlowLog, AWriteOfManyFlowsReadsBackWholeAndById) {
  const std::string dir = tempDir("flowlog-many");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  constexpr uint64_t kFlows = 10'000;
  std::vector<FlowRecord> records;
  for (uint64_t i = 0; i < kFlows; ++i) {
    const uint64_t id = (i * 7919) % kFlows + 1;  // a permutation of 1..kFlows
    records.push_back(flowRecord(id, 1'000 * id, 1'000 * id + id % 97, static_cast<uint16_t>(id)));
  }
  {
    SegmentRing ring(o);
    FlowLogWriter log(ring);
    std::string error;
    ASSERT_TRUE(log.add(records, 0, error)) << error;
    ASSERT_TRUE(log.flush(error)) << error;
  }
  const std::string path = dir + "/" + flowLogFileName(1);
  FlowLog read;
  std::string error;
  ASSERT_TRUE(readFlowLog(path, read, error)) << error;
  EXPECT_EQ(read.damage, "");
  ASSERT_EQ(read.entries.size(), kFlows);
  std::vector<bool> got(kFlows + 1, false);
  for (const FlowLogEntry& e : read.entries) {
    ASSERT_TRUE(e.flow_id >= 1 && e.flow_id <= kFlows);
    EXPECT_FALSE(got[e.flow_id]) << e.flow_id;
    got[e.flow_id] = true;
    EXPECT_EQ(e.first_ms, 1'000 * e.flow_id);
    EXPECT_EQ(e.last_ms, 1'000 * e.flow_id + e.flow_id % 97);
    EXPECT_EQ(e.key.src_port, static_cast<uint16_t>(e.flow_id));
  }
  const uint64_t some[] = {1, 257, 4096, 4097, 9999, 10'000};
  ASSERT_TRUE(readFlowLog(path, read, error, some)) << error;
  ASSERT_EQ(read.entries.size(), std::size(some));
  std::vector<uint64_t> ids;
  for (const FlowLogEntry& e : read.entries) {
    ids.push_back(e.flow_id);
    EXPECT_EQ(e.first_ms, 1'000 * e.flow_id);
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), std::begin(some)));
  FlowLogSummary summary;
  ASSERT_TRUE(summarizeFlowLog(path, summary, error)) << error;
  EXPECT_EQ(summary.max_flow_id, kFlows);
  EXPECT_EQ(summary.max_last_ms, 1'000 * kFlows + kFlows % 97);
  uint64_t run = 0;
  ASSERT_TRUE(readFlowLogRun(path, run, error)) << error;
  EXPECT_EQ(run, 1u);
  fs::remove_all(dir);
}

// A file its writer closed ends with a directory of its blocks (their
// places and id ranges) and a trailer: a lookup finds through it what a walk
// of the blocks finds, and a file whose directory is damaged or cut off is
// walked, with the same answers.
TEST(FlowLog, AClosedLogHasADirectoryThatFindsWhatAWalkFinds) {
  const std::string dir = tempDir("flowlog-directory");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  const uint64_t writes[] = {4000, 4000, 2000};  // blocks of 256: 16 + 16 + 8
  uint64_t id = 0;
  {
    SegmentRing ring(o);
    FlowLogWriter log(ring);
    std::string error;
    for (const uint64_t n : writes) {
      std::vector<FlowRecord> records;
      for (uint64_t i = 0; i < n; ++i, ++id)
        records.push_back(flowRecord(id + 1, 10 * (id + 1), 10 * (id + 1) + 5, static_cast<uint16_t>(id + 1)));
      ASSERT_TRUE(log.add(records, 0, error)) << error;
      ASSERT_TRUE(log.flush(error)) << error;
    }
  }
  const std::string path = dir + "/" + flowLogFileName(1);
  const std::vector<uint8_t> bytes = readAll(path);
  constexpr uint32_t kBlocks = 40;
  const size_t tail = kFlowLogBlockHeaderSize + kBlocks * sizeof(FlowLogDirectoryEntry) + kFlowLogTrailerSize;
  ASSERT_GT(bytes.size(), tail);
  // The trailer: "FLDT", the blocks, the file's lowest and highest id and latest end.
  const uint8_t* t = bytes.data() + bytes.size() - kFlowLogTrailerSize;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t), 4), "FLDT");
  uint32_t blocks = 0;
  uint64_t range[3] = {};
  std::memcpy(&blocks, t + 4, 4);
  std::memcpy(range, t + 8, sizeof range);
  EXPECT_EQ(blocks, kBlocks);
  EXPECT_EQ(range[0], 1u);
  EXPECT_EQ(range[1], 10'000u);
  EXPECT_EQ(range[2], 100'005u);
  // The directory's block is kind 1 with no entries and an empty id range.
  const uint8_t* d = bytes.data() + bytes.size() - tail;
  EXPECT_EQ(le32(bytes, bytes.size() - tail), kFlowLogBlockMagic);
  EXPECT_EQ(le32(bytes, bytes.size() - tail + 8), 0u);
  EXPECT_EQ(le32(bytes, bytes.size() - tail + 12), 1u);
  uint64_t dir_range[2] = {};
  std::memcpy(dir_range, d + 16, sizeof dir_range);
  EXPECT_EQ(dir_range[0], UINT64_MAX);
  EXPECT_EQ(dir_range[1], 0u);

  const uint64_t some[] = {1, 256, 257, 4000, 4001, 8000, 9999, 10'000, 10'001};
  const auto lookup = [&](const std::string& file) {
    FlowLog read;
    std::string error;
    EXPECT_TRUE(readFlowLog(file, read, error, some)) << error;
    EXPECT_EQ(read.damage, "") << file;
    std::vector<uint64_t> ids;
    for (const FlowLogEntry& e : read.entries) {
      ids.push_back(e.flow_id);
      EXPECT_EQ(e.first_ms, 10 * e.flow_id);
      EXPECT_EQ(e.last_ms, 10 * e.flow_id + 5);
      EXPECT_EQ(e.key.src_port, static_cast<uint16_t>(e.flow_id));
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  const std::vector<uint64_t> expected = {1, 256, 257, 4000, 4001, 8000, 9999, 10'000};
  EXPECT_EQ(lookup(path), expected);
  FlowLog all;
  std::string error;
  ASSERT_TRUE(readFlowLog(path, all, error)) << error;  // a whole reading stops at the directory
  EXPECT_EQ(all.entries.size(), 10'000u);
  EXPECT_EQ(all.damage, "");
  FlowLogSummary summary;
  ASSERT_TRUE(summarizeFlowLog(path, summary, error)) << error;
  EXPECT_EQ(summary.max_flow_id, 10'000u);
  EXPECT_EQ(summary.max_last_ms, 100'005u);

  // Without its directory (cut off, or a trailer that is not one): walked.
  const std::string cut = dir + "/cut.flows", bad = dir + "/bad.flows";
  std::ofstream(cut, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - tail));
  std::vector<uint8_t> damaged = bytes;
  damaged[damaged.size() - kFlowLogTrailerSize] = 'X';
  std::ofstream(bad, std::ios::binary)
      .write(reinterpret_cast<const char*>(damaged.data()), static_cast<std::streamsize>(damaged.size()));
  EXPECT_EQ(lookup(cut), expected);
  EXPECT_EQ(lookup(bad), expected);
  for (const std::string& file : {cut, bad}) {
    ASSERT_TRUE(summarizeFlowLog(file, summary, error)) << error;
    EXPECT_EQ(summary.max_flow_id, 10'000u) << file;
    EXPECT_EQ(summary.max_last_ms, 100'005u) << file;
  }
  // An id outside the file's range: nothing, without damage.
  const uint64_t past[] = {10'001, 20'000};
  FlowLog read;
  ASSERT_TRUE(readFlowLog(path, read, error, past)) << error;
  EXPECT_TRUE(read.entries.empty());
  EXPECT_EQ(read.damage, "");
  fs::remove_all(dir);
}

// A run that logs more than a file holds goes on in a new file, the one
// before ending with its directory: every entry is in one of them, read
// whole or looked up.
TEST(FlowLog, ALogGoesOnInANewFileWithEveryEntry) {
  const std::string dir = tempDir("flowlog-files");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  // Entries of neighbouring ids take about 8 bytes: 3 M are more than one 16 MiB file.
  constexpr uint64_t kFlows = 3'000'000;
  fakeSegment(dir, 1, 0, 1000);  // packets older than every flow: the closed log stays
  {
    SegmentRing ring(o);
    FlowLogWriter log(ring);
    std::string error;
    std::vector<FlowRecord> records;
    for (uint64_t id = 1; id <= kFlows; ++id) {
      records.push_back(flowRecord(id, 10 * id, 10 * id + 5, static_cast<uint16_t>(id)));
      if (records.size() == 4096 || id == kFlows) {
        ASSERT_TRUE(log.add(records, 0, error)) << error;
        records.clear();
      }
    }
    ASSERT_TRUE(log.flush(error)) << error;
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (parseFlowLogName(e.path().filename().string())) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 2u);
  std::vector<bool> seen(kFlows + 1, false);
  uint64_t count = 0;
  for (const std::string& f : files) {
    FlowLog read;
    std::string error;
    ASSERT_TRUE(readFlowLog(f, read, error)) << error;
    EXPECT_EQ(read.damage, "") << f;
    for (const FlowLogEntry& e : read.entries) {
      ASSERT_TRUE(e.flow_id >= 1 && e.flow_id <= kFlows);
      EXPECT_FALSE(seen[e.flow_id]) << e.flow_id;
      seen[e.flow_id] = true;
      EXPECT_EQ(e.first_ms, 10 * e.flow_id);
      ++count;
    }
  }
  EXPECT_EQ(count, kFlows);
  // Each id looked up is in exactly one file, with its own values.
  for (const uint64_t id : {uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{2'000'000}, uint64_t{2'100'001}, kFlows}) {
    uint64_t found = 0;
    for (const std::string& f : files) {
      FlowLog read;
      std::string error;
      ASSERT_TRUE(readFlowLog(f, read, error, std::span(&id, 1))) << error;
      EXPECT_EQ(read.damage, "") << f;
      for (const FlowLogEntry& e : read.entries) {
        EXPECT_EQ(e.flow_id, id);
        EXPECT_EQ(e.last_ms, 10 * id + 5);
        ++found;
      }
    }
    EXPECT_EQ(found, 1u) << id;
  }
  fs::remove_all(dir);
}

TEST(FlowLog, EveryFormOfKeyCodesAndReadsBack) {
  std::vector<FlowLogEntry> entries;
  FlowLogEntry v4{100, 1'765'000'000'000, 1'765'000'000'500, flowRecord(1, 0, 0, 1234).key};
  FlowLogEntry v6 = v4;
  v6.flow_id = 90;  // ids and times out of order: signed deltas
  v6.first_ms -= 7000;
  v6.last_ms = v6.first_ms;
  v6.key.ip_version = 6;
  v6.key.src_addr.fill(0x20);
  v6.key.dst_addr.fill(0xfe);
  v6.key.vlan_id = 4094;
  v6.key.inner_vlan_id = 7;
  v6.key.ingress_if = 300;
  FlowLogEntry odd = v4;  // not an IPv4 key the compact form holds: raw
  odd.key.src_addr[10] = 1;
  FlowLogEntry other = v4;
  other.key.ip_version = 0;
  other.flow_id = UINT64_MAX;
  entries = {v4, v6, odd, other};
  std::vector<uint8_t> bytes(kFlowLogHeaderSize, 0);
  std::memcpy(bytes.data(), kFlowLogMagic, 8);
  encodeFlowLogBlock(entries, bytes);
  // A typical IPv4 entry is far smaller than the 72 bytes of its fields written plainly.
  std::vector<uint8_t> one;
  encodeFlowLogBlock(std::span(&v4, 1), one);
  EXPECT_LE(one.size() - kFlowLogBlockHeaderSize, 30u);
  const std::string dir = tempDir("flowlog-forms");
  const std::string path = dir + "/" + flowLogFileName(1);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  FlowLog read;
  std::string error;
  ASSERT_TRUE(readFlowLog(path, read, error)) << error;
  ASSERT_EQ(read.entries.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(read.entries[i].flow_id, entries[i].flow_id) << i;
    EXPECT_EQ(read.entries[i].first_ms, entries[i].first_ms) << i;
    EXPECT_EQ(read.entries[i].last_ms, entries[i].last_ms) << i;
    EXPECT_TRUE(read.entries[i].key == entries[i].key) << i;
  }
  // A damaged block stops the reading there and says so; the blocks before it stay.
  encodeFlowLogBlock(std::span(&v4, 1), bytes);
  const size_t second = bytes.size() - one.size();
  bytes[second] = 'X';
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(readFlowLog(path, read, error));
  EXPECT_EQ(read.entries.size(), entries.size());
  EXPECT_EQ(read.damage, "damaged block at offset " + std::to_string(second));
  fs::remove_all(dir);
}

// A block of no entries (an empty payload) reads as nothing, and the
// blocks after it are read (tests/fuzz/regressions/fuzz_ring_files/flowlog-empty-block).
TEST(FlowLog, AnEmptyBlockReadsAsNoEntries) {
  const std::string dir = tempDir("flowlog-empty");
  const std::string path = dir + "/" + flowLogFileName(1);
  std::vector<uint8_t> bytes(kFlowLogHeaderSize, 0);
  std::memcpy(bytes.data(), kFlowLogMagic, 8);
  encodeFlowLogBlock(std::span<const FlowLogEntry>(), bytes);
  const FlowLogEntry one{42, 1'000, 2'000, flowRecord(42, 1'000, 2'000, 7).key};
  encodeFlowLogBlock(std::span(&one, 1), bytes);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  FlowLog read;
  std::string error;
  ASSERT_TRUE(readFlowLog(path, read, error)) << error;
  EXPECT_EQ(read.damage, "");
  ASSERT_EQ(read.entries.size(), 1u);
  EXPECT_EQ(read.entries[0].flow_id, 42u);
  EXPECT_EQ(read.entries[0].key.src_port, 7);
  fs::remove_all(dir);
}

// A long run writes many logs: a closed one of this very run goes once all
// its flows ended before the oldest packet the ring keeps.
TEST(FlowLog, ALogOfThisRunGoesByTime) {
  const std::string dir = tempDir("flowlog-time");
  fakeSegment(dir, 1, 1100, 1000);  // the oldest packet: second 1100
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  SegmentRing ring(o);
  std::string error;
  {
    FlowLogWriter early(ring);  // flows that ended at 1000 s and at 1200 s, two logs
    const std::vector<FlowRecord> before = {flowRecord(1, 900'000, 1'000'000, 1)};
    ASSERT_TRUE(early.add(before, 0, error) && early.flush(error)) << error;
  }
  {
    FlowLogWriter later(ring);
    const std::vector<FlowRecord> after = {flowRecord(2, 1'150'000, 1'200'000, 2)};
    ASSERT_TRUE(later.add(after, 0, error) && later.flush(error)) << error;
  }
  // The second log's first write enforced the bounds: the first (closed, its
  // flow ended at 1000 s) went.
  ring.enforceBounds(0);
  ASSERT_EQ(ring.flowLogs().size(), 1u);
  EXPECT_EQ(ring.flowLogs()[0].max_flow_id, 2u);
  EXPECT_FALSE(fs::exists(dir + "/" + flowLogFileName(1)));
  fs::remove_all(dir);
}

TEST(FlowLog, GoesOnceTheSegmentsOfItsRunAreGone) {
  const std::string dir = tempDir("flowlog-bounds");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  // Run 1 wrote segments 1-2 and flow log 1; run 2 wrote segments 3-4 and
  // flow log 2, with the same packet times (a capture recorded twice).
  for (uint64_t i = 1; i <= 4; ++i) fakeSegment(dir, i, i <= 2 ? 1000 + 100 * i : 1000 + 100 * (i - 2), 1000);
  const auto writeLog = [&](uint64_t sequence, uint64_t run_first) {
    std::vector<uint8_t> b(kFlowLogHeaderSize, 0);
    std::memcpy(b.data(), kFlowLogMagic, 8);
    std::memcpy(b.data() + 16, &run_first, 8);
    FlowLogEntry e;
    e.flow_id = sequence * 100;
    e.first_ms = e.last_ms = 1'250'000;
    e.key = flowRecord(1, 0, 0, 1).key;
    encodeFlowLogBlock(std::span(&e, 1), b);
    std::ofstream(dir + "/" + flowLogFileName(sequence), std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return b.size();
  };
  const size_t log_bytes = writeLog(1, 1) + writeLog(2, 3);
  o.max_size = 2 * 1000 + log_bytes;  // run 2's segments and both logs
  SegmentRing ring(o);
  EXPECT_EQ(ring.highestFlowId(), 200u);
  ring.enforceBounds(0);
  ASSERT_EQ(ring.segments().size(), 2u);
  EXPECT_EQ(ring.segments()[0].name.sequence, 3u);
  // Run 1's log leads to no segment: gone, though its flows' times are those of segments kept.
  EXPECT_FALSE(fs::exists(dir + "/" + flowLogFileName(1)));
  EXPECT_TRUE(fs::exists(dir + "/" + flowLogFileName(2)));
  fs::remove_all(dir);
}

TEST(SegmentRing, ContinuesTheSequenceAndTrimsTheNewestSegment) {
  const std::string dir = tempDir("continue");
  fakeSegment(dir, 7, 1000, 24);
  const std::string cut = handMadeSegment(dir, 2, 50);
  const std::string newest = dir + "/" + segmentFileName(SegmentName{9, "file", 1000});
  fs::rename(cut, newest);
  fs::resize_file(newest, fs::file_size(newest) - 10);
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  SegmentRing ring(o);
  EXPECT_EQ(ring.counters().segments_repaired, 1u);
  EXPECT_EQ(fs::file_size(newest), kPcapFileHeaderSize + kPcapRecordHeaderSize + 50);
  Segment s;
  const int fd = ring.openNext("file", 2'000'000, s);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(s.name.sequence, 10u);
  EXPECT_EQ(s.name.start_s, 2000u);
  fs::remove_all(dir);
}

TEST(SegmentRing, RefusesAMissingDirectoryWithItsName) {
  RecorderOptions o;
  o.directories = {"/nonexistent/flowfold-ring"};
  try {
    SegmentRing ring(o);
    FAIL() << "no error";
  } catch (const RecorderError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/flowfold-ring"), std::string::npos) << e.what();
  }
}

TEST(Recorder, WritesEveryPacketAcrossSegmentsInOrder) {
  const std::string dir = tempDir("writer");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  o.segment_size = 64 << 10;
  o.buffer_size = 1 << 20;
  SegmentRing ring(o);
  std::vector<uint8_t> frame(200);
  {
    Recorder rec(ring, o, "file", 1, true);
    for (uint32_t i = 0; i < 2000; ++i) {
      std::memcpy(frame.data(), &i, 4);
      rec.append(1'000'000'000ull * 1700000000 + i * 1000, 200, 1500, frame.data());
    }
    rec.finish();
    EXPECT_EQ(rec.counters().recorder_packets, 2000u);
    EXPECT_EQ(rec.counters().recorder_dropped, 0u);
    EXPECT_GT(rec.counters().recorder_segments, 3u);
  }
  // Read back, segment by segment in sequence order: packet i carries i.
  uint32_t next = 0;
  for (const Segment& s : ring.segments()) {
    const std::vector<uint8_t> b = readAll(s.path);
    EXPECT_LE(b.size(), o.segment_size);
    ASSERT_EQ(le32(b, 0), kPcapNanosecondMagic);
    for (size_t off = kPcapFileHeaderSize; off < b.size();) {
      EXPECT_EQ(le32(b, off + 4), next * 1000);  // the nanoseconds
      EXPECT_EQ(le32(b, off + 8), 200u);
      EXPECT_EQ(le32(b, off + 12), 1500u);
      EXPECT_EQ(le32(b, off + 16), next);
      off += kPcapRecordHeaderSize + 200;
      ++next;
    }
  }
  EXPECT_EQ(next, 2000u);
  fs::remove_all(dir);
}

TEST(Recorder, CutsPacketsToItsSnapLength) {
  const std::string dir = tempDir("snaplen");
  RecorderOptions o;
  o.directories = {dir};
  o.min_free_percent = 0;
  o.snaplen = 64;
  SegmentRing ring(o);
  std::vector<uint8_t> frame(1000, 0xab);
  {
    Recorder rec(ring, o, "file", 1, true);
    rec.append(1, 1000, 1000, frame.data());
  }
  const std::vector<uint8_t> b = readAll(ring.segments().at(0).path);
  ASSERT_EQ(b.size(), kPcapFileHeaderSize + kPcapRecordHeaderSize + 64);
  EXPECT_EQ(le32(b, 16), 64u);  // the file's snap length
  EXPECT_EQ(le32(b, 24 + 8), 64u);
  EXPECT_EQ(le32(b, 24 + 12), 1000u);  // the original length kept
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flowfold::recorder
