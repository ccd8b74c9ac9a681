// The contract between a packet source and the two pipeline shapes
// (packet_sink.h): what each shape offers, checked at compile time; that a
// source ends every read burst so that nothing it read is held back; and
// that both shapes, fed through the contract alone, give the same flows.

#include "flowfold/probe/packet_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "flowfold/probe/capture.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/sharded_pipeline.h"

namespace flowfold {
namespace {

static_assert(FlowPipeline<Pipeline>);
static_assert(FlowPipeline<ShardedPipeline>);
// A worker's folder takes packets decoded elsewhere, not frames: no packet
// source can feed it.
static_assert(!PacketSink<FlowFolder>);

// Each requirement counts: without the end of a burst a type is no sink, and
// a sink is not yet a pipeline.
struct FramesOnly {
  void onPacket(const uint8_t*, uint32_t, uint32_t, uint64_t) {}
};
struct BareSink : FramesOnly {
  void onBurstEnd() {}
};
static_assert(!PacketSink<FramesOnly>);
static_assert(PacketSink<BareSink>);
static_assert(!FlowPipeline<BareSink>);

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

// Ethernet + IPv4 + UDP 10.0.0.a:sport -> 10.0.0.b:dport, 10 bytes of payload.
std::vector<uint8_t> udpFrame(uint8_t a, uint8_t b, uint16_t sport, uint16_t dport) {
  std::vector<uint8_t> f(14 + 28 + 10, 0);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  ip[3] = 38;
  ip[8] = 64;
  ip[9] = 17;
  ip[12] = 10, ip[15] = a;
  ip[16] = 10, ip[19] = b;
  ip[20] = static_cast<uint8_t>(sport >> 8), ip[21] = static_cast<uint8_t>(sport);
  ip[22] = static_cast<uint8_t>(dport >> 8), ip[23] = static_cast<uint8_t>(dport);
  return f;
}

// A classic pcap of `rounds` rounds of 30 conversations (both directions),
// 100 ms apart: with a 2 s idle timeout, the conversations that pause (every
// fifth skips rounds 20 to 49) expire and start again, mid-file.
class CaptureFile {
 public:
  explicit CaptureFile(int rounds) {
    std::vector<uint8_t> out;
    for (uint32_t v : {0xa1b2c3d4u, 0x00040002u, 0u, 0u, 65535u, 1u}) put32(out, v);
    uint64_t us = 0;
    auto add = [&](const std::vector<uint8_t>& frame) {
      put32(out, static_cast<uint32_t>(1'700'000'000 + us / 1'000'000));
      put32(out, static_cast<uint32_t>(us % 1'000'000));
      put32(out, static_cast<uint32_t>(frame.size()));
      put32(out, static_cast<uint32_t>(frame.size()));
      out.insert(out.end(), frame.begin(), frame.end());
      us += 100;
    };
    for (int round = 0; round < rounds; ++round) {
      for (uint8_t host = 1; host <= 30; ++host) {
        if (host % 5 == 0 && round >= 20 && round < 50) continue;
        add(udpFrame(host, 200, static_cast<uint16_t>(1000 + host), 53));
        add(udpFrame(200, host, 53, static_cast<uint16_t>(1000 + host)));
      }
      us = (us / 100'000 + 1) * 100'000;
    }
    char path[] = "/tmp/flowfold-packet-sink-test-XXXXXX";
    const int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, out.data(), out.size()), static_cast<ssize_t>(out.size()));
    close(fd);
    path_ = path;
  }
  ~CaptureFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

PipelineOptions options() {
  PipelineOptions o;
  o.cache.idle_timeout_ms = 2'000;
  o.cache.active_timeout_ms = 600'000;
  o.export_batch = 16;
  return o;
}

TEST(PacketSinkContract, AfterEachReadBurstEveryFrameReadIsAccounted) {
  const CaptureFile file(10);
  std::mutex mu;
  std::vector<FlowRecord> out;
  std::vector<std::unique_ptr<Exporter>> exporters;
  exporters.push_back(std::make_unique<Collect>(mu, out));
  ExportStage stage(std::move(exporters), 16);
  {
    PcapFileSource source(file.path());
    Pipeline pipeline(options(), source.datalink(), stage);
    // Bursts of 7 frames, fewer than the pipeline's prefetch ring holds.
    while (source.dispatch(pipeline, 7) == PcapFileSource::Result::kMore)
      ASSERT_EQ(pipeline.cacheCounters().packets_folded, source.packetsRead());
    EXPECT_EQ(source.packetsRead(), 600u);
    EXPECT_EQ(pipeline.cacheCounters().packets_folded, 600u);
    pipeline.finish();
  }
  stage.finish();
}

// What one shape made of the file: packets per flow key and start, and the
// counters it published.
struct Outcome {
  std::map<std::tuple<uint8_t, uint8_t, uint64_t>, uint64_t> packets;
  size_t records = 0;
  PipelineStats stats;
};

template <FlowPipeline P, class... ShapeArgs>
Outcome readThrough(const std::string& path, const ShapeArgs&... shape_args) {
  std::mutex mu;
  std::vector<FlowRecord> out;
  std::vector<std::unique_ptr<Exporter>> exporters;
  exporters.push_back(std::make_unique<Collect>(mu, out));
  ExportStage stage(std::move(exporters), 16);
  Outcome outcome;
  {
    PcapFileSource source(path);
    P pipeline(options(), source.datalink(), stage, shape_args...);
    while (source.dispatch(pipeline, 50) == PcapFileSource::Result::kMore) pipeline.publishStats();
    pipeline.finish();
    pipeline.finish();  // idempotent
    outcome.stats = pipeline.stats();
  }
  stage.finish();
  outcome.records = out.size();
  for (const FlowRecord& r : out) outcome.packets[{r.key.src_addr[3], r.key.dst_addr[3], r.first_ms}] += r.packets;
  return outcome;
}

TEST(PacketSinkContract, BothShapesMakeTheSameFlowsOfAFile) {
  const CaptureFile file(80);
  const Outcome one = readThrough<Pipeline>(file.path());
  const Outcome sharded = readThrough<ShardedPipeline>(file.path(), 3u);
  // 60 keys; those that paused ended on the idle timeout and started again.
  EXPECT_EQ(one.records, 60u + 12u);
  EXPECT_EQ(one.packets.size(), one.records);
  EXPECT_EQ(sharded.records, one.records);
  EXPECT_EQ(sharded.packets, one.packets);
  for (const Outcome* o : {&one, &sharded}) {
    EXPECT_EQ(o->stats.decode.packets, 4440u);
    EXPECT_EQ(o->stats.decode.decoded, 4440u);
    EXPECT_EQ(o->stats.cache.packets_folded, 4440u);
    EXPECT_EQ(o->stats.cache.flows_active, 0u);
  }
}

}  // namespace
}  // namespace flowfold
