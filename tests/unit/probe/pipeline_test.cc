#include "flowfold/probe/pipeline.h"

#include <gtest/gtest.h>

#include <mutex>

namespace flowfold {
namespace {

// Records what the pipeline hands to exporters. (A test double on purpose:
// the point here is the pipeline, not a collector.)
class RecordingExporter : public Exporter {
 public:
  struct Shared {
    std::mutex mu;
    std::vector<FlowRecord> records;
    int flushes = 0;
  };
  explicit RecordingExporter(Shared& shared) : Exporter("recording"), shared_(shared) {}

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    std::lock_guard lock(shared_.mu);
    shared_.records.insert(shared_.records.end(), records.begin(), records.end());
  }
  void doFlush(uint64_t) override {
    std::lock_guard lock(shared_.mu);
    ++shared_.flushes;
  }

 private:
  Shared& shared_;
};

// Ethernet + IPv4 + UDP, payload zero; total IP length = 28 + payload.
std::vector<uint8_t> udpFrame(uint8_t src_host, uint16_t sport, uint16_t payload) {
  std::vector<uint8_t> f(14 + 28 + payload, 0);
  f[12] = 0x08;  // IPv4
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t total = static_cast<uint16_t>(28 + payload);
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[8] = 64;
  ip[9] = 17;
  ip[12] = 10, ip[13] = 0, ip[14] = 0, ip[15] = src_host;
  ip[16] = 192, ip[17] = 0, ip[18] = 2, ip[19] = 1;
  uint8_t* udp = ip + 20;
  udp[0] = static_cast<uint8_t>(sport >> 8);
  udp[1] = static_cast<uint8_t>(sport);
  udp[3] = 53;
  return f;
}

struct Fixture : ::testing::Test {
  RecordingExporter::Shared shared;
  std::unique_ptr<ExportStage> stage;
  std::unique_ptr<Pipeline> make(PipelineOptions options = {}) {
    std::vector<std::unique_ptr<Exporter>> exporters;
    exporters.push_back(std::make_unique<RecordingExporter>(shared));
    stage = std::make_unique<ExportStage>(std::move(exporters), 8);
    return std::make_unique<Pipeline>(options, 1 /* DLT_EN10MB */, *stage);
  }
  // The pipeline hands everything over; the stage exports it and stops.
  void finish(Pipeline& p) {
    p.finish();
    stage->finish();
  }
};

TEST_F(Fixture, EveryPacketReachesTheExporterByTheEnd) {
  auto p = make();
  uint64_t octets = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto f = udpFrame(static_cast<uint8_t>(i % 50), 1000, static_cast<uint16_t>(i % 100));
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000'000 + i);
    octets += 28 + i % 100;
  }
  finish(*p);
  uint64_t packets = 0, got_octets = 0;
  for (const auto& r : shared.records) {
    packets += r.packets;
    got_octets += r.octets;
  }
  EXPECT_EQ(packets, 1000u);
  EXPECT_EQ(got_octets, octets);
  EXPECT_EQ(shared.records.size(), 50u);
  EXPECT_GE(shared.flushes, 1);
  EXPECT_EQ(p->decodeCounters().decoded, 1000u);
}

TEST_F(Fixture, ClockAdvanceExpiresIdleFlowsWithoutNewPackets) {
  PipelineOptions o;
  o.cache.idle_timeout_ms = 1'000;
  o.export_batch = 1;  // hand every record over at once
  auto p = make(o);
  const auto f = udpFrame(1, 1000, 10);
  p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 5'000);
  p->drain();
  p->advanceClock(7'000);
  // finish() joins the export thread, so everything handed over is visible.
  finish(*p);
  ASSERT_EQ(shared.records.size(), 1u);
  EXPECT_EQ(shared.records[0].end_reason, FlowEndReason::kIdleTimeout);
  EXPECT_EQ(shared.records[0].first_ms, 5'000u);
}

TEST_F(Fixture, UndecodablePacketsAreCountedNotAccounted) {
  auto p = make();
  auto f = udpFrame(1, 1000, 10);
  f[12] = 0x08, f[13] = 0x06;  // ARP
  p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1);
  const auto g = udpFrame(2, 1, 0);
  p->onPacket(g.data(), 20, static_cast<uint32_t>(g.size()), 2);  // cut inside the IP header
  finish(*p);
  EXPECT_TRUE(shared.records.empty());
  EXPECT_EQ(p->decodeCounters().packets, 2u);
  EXPECT_EQ(p->decodeCounters().skipped(), 2u);
}

TEST_F(Fixture, ReplacingExportersKeepsTheCacheAndLosesNothing) {
  auto p = make();
  const auto f = udpFrame(1, 1000, 10);
  for (int i = 0; i < 5; ++i)
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000 + i);
  p->drain();
  // A reload: new exporters take over; the flow in the cache is not touched.
  RecordingExporter::Shared second;
  std::vector<std::unique_ptr<Exporter>> replacement;
  replacement.push_back(std::make_unique<RecordingExporter>(second));
  stage->replaceExporters(std::move(replacement), 1'005);
  for (int i = 5; i < 8; ++i)
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000 + i);
  finish(*p);
  EXPECT_TRUE(shared.records.empty());
  EXPECT_EQ(shared.flushes, 1);  // the old exporters flushed when replaced
  ASSERT_EQ(second.records.size(), 1u);
  EXPECT_EQ(second.records[0].packets, 8u);
  const auto stats = stage->exporterStats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].records_exported, 0u);  // the recording exporter counts nothing itself
}

TEST_F(Fixture, PublishedStatsMatchThePacketThreadsCounters) {
  auto p = make();
  const auto f = udpFrame(1, 1000, 10);
  for (int i = 0; i < 20; ++i)
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000 + i);
  p->drain();
  EXPECT_EQ(p->stats().decode.packets, 0u);  // nothing published yet
  p->publishStats();
  EXPECT_EQ(p->stats().decode.packets, 20u);
  EXPECT_EQ(p->stats().active_flows, 1u);
  finish(*p);
}

}  // namespace
}  // namespace flowfold
