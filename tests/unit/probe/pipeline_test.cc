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
  std::unique_ptr<Pipeline> make(PipelineOptions options = {}) {
    std::vector<std::unique_ptr<Exporter>> exporters;
    exporters.push_back(std::make_unique<RecordingExporter>(shared));
    return std::make_unique<Pipeline>(options, 1 /* DLT_EN10MB */, std::move(exporters));
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
  p->finish();
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
  p->finish();
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
  p->finish();
  EXPECT_TRUE(shared.records.empty());
  EXPECT_EQ(p->decodeCounters().packets, 2u);
  EXPECT_EQ(p->decodeCounters().skipped(), 2u);
}

}  // namespace
}  // namespace flowfold
