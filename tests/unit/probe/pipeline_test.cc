#include "flowfold/probe/pipeline.h"

#include <gtest/gtest.h>
#include <time.h>

#include <mutex>
#include <thread>

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

// `frame` (Ethernet + IPv4) wrapped in IP-in-IP: Ethernet + outer IPv4
// 203.0.113.1 -> 203.0.113.2, protocol 4, around the original IP packet.
std::vector<uint8_t> ipInIp(const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> f;
  f.reserve(frame.size() + 20);
  f.insert(f.end(), frame.begin(), frame.begin() + 14);
  const uint16_t total = static_cast<uint16_t>(20 + frame.size() - 14);
  const uint8_t outer[20] = {0x45, 0, static_cast<uint8_t>(total >> 8), static_cast<uint8_t>(total), 0, 0, 0, 0,
                             255, 4, 0, 0, 203, 0, 113, 1, 203, 0, 113, 2};
  f.insert(f.end(), outer, outer + 20);
  f.insert(f.end(), frame.begin() + 14, frame.end());
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

// Tunnel modes: 100 IP-in-IP packets carrying 5 inner UDP conversations.
struct TunnelTotals {
  size_t records = 0;
  uint64_t packets = 0, octets = 0, outer_packets = 0, outer_octets = 0;
};
TunnelTotals runTunnels(Fixture& fx, probe::TunnelMode mode) {
  PipelineOptions o;
  o.tunnels = mode;
  auto p = fx.make(o);
  for (int i = 0; i < 100; ++i) {
    const auto f = ipInIp(udpFrame(static_cast<uint8_t>(i % 5), 1000, static_cast<uint16_t>(i)));
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000'000 + i);
  }
  fx.finish(*p);
  EXPECT_EQ(p->decodeCounters().decoded, 100u);
  TunnelTotals t;
  t.records = fx.shared.records.size();
  for (const auto& r : fx.shared.records) {
    t.packets += r.packets;
    t.octets += r.octets;
    if (r.key.protocol == 4) {
      t.outer_packets += r.packets;
      t.outer_octets += r.octets;
    }
  }
  return t;
}

// Inner UDP packets: 28 + i bytes for i in 0..99; the outer adds 20 each.
constexpr uint64_t kInnerOctets = 100 * 28 + 99 * 100 / 2;
constexpr uint64_t kOuterOctets = kInnerOctets + 100 * 20;

TEST_F(Fixture, TunnelModeOuterAccountsTheOuterFlowOnly) {
  const TunnelTotals t = runTunnels(*this, probe::TunnelMode::kOuter);
  EXPECT_EQ(t.records, 1u);
  EXPECT_EQ(t.packets, 100u);
  EXPECT_EQ(t.octets, kOuterOctets);
}

TEST_F(Fixture, TunnelModeInnerAccountsTheInnerFlows) {
  const TunnelTotals t = runTunnels(*this, probe::TunnelMode::kInner);
  EXPECT_EQ(t.records, 5u);
  EXPECT_EQ(t.packets, 100u);
  EXPECT_EQ(t.octets, kInnerOctets);
  EXPECT_EQ(t.outer_packets, 0u);
}

TEST_F(Fixture, TunnelModeBothAccountsEachPacketInTwoFlows) {
  const TunnelTotals t = runTunnels(*this, probe::TunnelMode::kBoth);
  EXPECT_EQ(t.records, 6u);
  EXPECT_EQ(t.packets, 200u);
  EXPECT_EQ(t.outer_packets, 100u);
  EXPECT_EQ(t.outer_octets, kOuterOctets);
  EXPECT_EQ(t.octets - t.outer_octets, kInnerOctets);
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

// The CPU time published is the packet thread's (the one calling
// publishStats()): a thread that has just burnt some CPU shows at least that
// much, and the export thread's figure is its own, kept after it stops.
TEST_F(Fixture, PublishedCpuTimeIsThePublishingThreadsOwn) {
  auto p = make();
  const auto busy_until = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec + 20'000'000;  // 20 ms of this thread's CPU
  }();
  for (timespec ts{}; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 &&
                      ts.tv_sec * 1'000'000'000LL + ts.tv_nsec < busy_until;) {
  }
  p->publishStats();
  EXPECT_GE(p->stats().cpu_ns, 20'000'000u);
  // A thread that has done next to nothing shows next to nothing.
  uint64_t other = 0;
  std::thread([&] {
    p->publishStats();
    other = p->stats().cpu_ns;
  }).join();
  EXPECT_LT(other, 20'000'000u);
  const auto f = udpFrame(1, 1000, 10);
  p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000);
  finish(*p);
  EXPECT_GT(stage->exportThreadCpuNs(), 0u);
  EXPECT_LT(stage->exportThreadCpuNs(), 20'000'000u);
}

}  // namespace
}  // namespace flowfold
