// The classic-pcap reader maps the capture a window at a time. A file that
// another program cuts short while it is read must end the read as a
// truncated capture, with every packet before the cut exported and nothing
// invented from the zeros a mapping shows past the new end: the cut is made
// here at a page boundary (the next access past it faults: the SIGBUS guard)
// and inside a page (the zeros after it are readable: the reader checks the
// file's size).

#include "flowfold/probe/capture.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "flowfold/probe/pipeline.h"

namespace flowfold {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kFileHeader = 24;
constexpr size_t kRecordHeader = 16;
constexpr size_t kSmallRecord = 256;  // 16 per page
constexpr int kSmallRecords = 64;

class Collect : public Exporter {
 public:
  Collect(std::mutex& mu, std::vector<FlowRecord>& out) : Exporter("collect"), mu_(mu), out_(out) {}

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    std::lock_guard lock(mu_);
    out_.insert(out_.end(), records.begin(), records.end());
  }

 private:
  std::mutex& mu_;
  std::vector<FlowRecord>& out_;
};

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Ethernet + IPv4 + UDP 10.0.0.1:sport -> 10.0.0.2:53, `frame_bytes` long.
std::vector<uint8_t> udpFrame(uint16_t sport, size_t frame_bytes) {
  std::vector<uint8_t> f(frame_bytes, 0);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  const size_t ip_len = frame_bytes - 14;
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(ip_len >> 8), ip[3] = static_cast<uint8_t>(ip_len);
  ip[8] = 64;
  ip[9] = 17;
  ip[12] = 10, ip[15] = 1;
  ip[16] = 10, ip[19] = 2;
  ip[20] = static_cast<uint8_t>(sport >> 8), ip[21] = static_cast<uint8_t>(sport);
  ip[23] = 53;
  return f;
}

// One record that fills the first page after the file header, then
// kSmallRecords records of kSmallRecord bytes: every 16th record boundary is
// a page boundary. Each packet is its own flow (source port = its number).
std::vector<uint8_t> capture() {
  std::vector<uint8_t> out;
  for (uint32_t v : {0xa1b2c3d4u, 0x00040002u, 0u, 0u, 65535u, 1u}) put32(out, v);
  auto add = [&](uint16_t sport, size_t record_bytes) {
    const auto frame = udpFrame(sport, record_bytes - kRecordHeader);
    put32(out, 1'700'000'000 + sport);
    put32(out, 0);
    put32(out, static_cast<uint32_t>(frame.size()));
    put32(out, static_cast<uint32_t>(frame.size()));
    out.insert(out.end(), frame.begin(), frame.end());
  };
  add(1000, kPage - kFileHeader);
  for (int i = 1; i <= kSmallRecords; ++i) add(static_cast<uint16_t>(1000 + i), kSmallRecord);
  EXPECT_EQ(out.size(), kPage + kSmallRecords * kSmallRecord);
  return out;
}

struct Outcome {
  PcapFileSource::Result result;
  std::string error;
  uint64_t packets_read;
  std::set<uint16_t> exported_ports;
  uint64_t malformed;
};

// Reads a few packets, cuts the file to `cut` bytes, reads on to the end.
Outcome readWhileCut(size_t cut) {
  char path[] = "/tmp/flowfold-capture-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  const auto bytes = capture();
  EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);

  std::mutex mu;
  std::vector<FlowRecord> out;
  std::vector<std::unique_ptr<Exporter>> exporters;
  exporters.push_back(std::make_unique<Collect>(mu, out));
  ExportStage stage(std::move(exporters), 16);
  Outcome outcome{};
  {
    PcapFileSource source(path);
    Pipeline pipeline(PipelineOptions{}, source.datalink(), stage);
    EXPECT_EQ(source.dispatch(pipeline, 3), PcapFileSource::Result::kMore);
    EXPECT_EQ(truncate(path, static_cast<off_t>(cut)), 0);
    while ((outcome.result = source.dispatch(pipeline, 1000)) == PcapFileSource::Result::kMore) {
    }
    outcome.error = source.error();
    outcome.packets_read = source.packetsRead();
    pipeline.finish();
    const auto& d = pipeline.decodeCounters();
    outcome.malformed = d.packets - d.decoded;
  }
  stage.finish();
  for (const auto& r : out) outcome.exported_ports.insert(r.key.src_port);
  unlink(path);
  return outcome;
}

std::set<uint16_t> ports(int first_packets) {
  std::set<uint16_t> s;
  for (int i = 0; i < first_packets; ++i) s.insert(static_cast<uint16_t>(1000 + i));
  return s;
}

TEST(ClassicPcapReader, AFileCutAtAPageBoundaryWhileReadEndsTheReadWithWhatCameBefore) {
  // The big record and 32 small ones lie before the third page boundary.
  const Outcome o = readWhileCut(3 * kPage);
  EXPECT_EQ(o.result, PcapFileSource::Result::kTruncated);
  EXPECT_NE(o.error.find("shrank"), std::string::npos) << o.error;
  EXPECT_EQ(o.packets_read, 33u);
  EXPECT_EQ(o.exported_ports, ports(33));
  EXPECT_EQ(o.malformed, 0u);
}

TEST(ClassicPcapReader, AFileCutInsideAPageWhileReadEndsTheReadWithWhatCameBefore) {
  // Cut after the big record and 5 small ones, 1280 bytes into a page: the
  // rest of that page reads as zeros, which are not taken for records.
  const Outcome o = readWhileCut(kPage + 5 * kSmallRecord);
  EXPECT_EQ(o.result, PcapFileSource::Result::kTruncated);
  EXPECT_NE(o.error.find("shrank"), std::string::npos) << o.error;
  EXPECT_EQ(o.packets_read, 6u);
  EXPECT_EQ(o.exported_ports, ports(6));
  EXPECT_EQ(o.malformed, 0u);
}

TEST(ClassicPcapReader, AnUncutFileIsReadWhole) {
  const Outcome o = readWhileCut(kPage + kSmallRecords * kSmallRecord);
  EXPECT_EQ(o.result, PcapFileSource::Result::kEnd);
  EXPECT_EQ(o.packets_read, static_cast<uint64_t>(kSmallRecords + 1));
  EXPECT_EQ(o.exported_ports, ports(kSmallRecords + 1));
  EXPECT_EQ(o.malformed, 0u);
}

}  // namespace
}  // namespace flowfold
