#include "flowfold/probe/pipeline.h"

#include <gtest/gtest.h>
#include <time.h>

#include <condition_variable>
#include <mutex>
#include <set>
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
  p->foldPending();
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
  p->foldPending();
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
  EXPECT_EQ(stats[0].records, 0u);  // the recording exporter counts nothing itself
}

TEST_F(Fixture, PublishedStatsMatchThePacketThreadsCounters) {
  auto p = make();
  const auto f = udpFrame(1, 1000, 10);
  for (int i = 0; i < 20; ++i)
    p->onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), 1'000 + i);
  p->foldPending();
  EXPECT_EQ(p->stats().decode.packets, 0u);  // nothing published yet
  p->publishStats();
  EXPECT_EQ(p->stats().decode.packets, 20u);
  EXPECT_EQ(p->stats().cache.flows_active, 1u);
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


// ------------------------------------------------------------ live: an export thread briefly slower

// An exporter held up (a collector stalling) until released: records it gets
// are kept, like RecordingExporter's.
class HeldExporter : public Exporter {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable released_cv;
    bool released = false;
    bool entered = false;  // an export call is being held
    std::vector<FlowRecord> records;
    void waitEntered() {
      std::unique_lock lock(mu);
      released_cv.wait(lock, [&] { return entered; });
    }
    void release() {
      std::lock_guard lock(mu);
      released = true;
      released_cv.notify_all();
    }
  };
  explicit HeldExporter(Shared& shared) : Exporter("held"), shared_(shared) {}

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    std::unique_lock lock(shared_.mu);
    shared_.entered = true;
    shared_.released_cv.notify_all();
    shared_.released_cv.wait(lock, [&] { return shared_.released; });
    shared_.records.insert(shared_.records.end(), records.begin(), records.end());
  }
  void doFlush(uint64_t) override {}

 private:
  Shared& shared_;
};

struct LiveFixture : ::testing::Test {
  HeldExporter::Shared shared;
  std::unique_ptr<ExportStage> stage;
  std::unique_ptr<Pipeline> make(PipelineOptions options, size_t queue_batches) {
    std::vector<std::unique_ptr<Exporter>> exporters;
    exporters.push_back(std::make_unique<HeldExporter>(shared));
    stage = std::make_unique<ExportStage>(std::move(exporters), queue_batches);
    options.wait_when_queue_full = false;
    return std::make_unique<Pipeline>(options, 1 /* DLT_EN10MB */, *stage);
  }
  // `flows` one-packet UDP flows from distinct source ports, at time t.
  static void oneFlowEach(Pipeline& p, int flows, uint64_t t, uint16_t first_port = 1000) {
    for (int i = 0; i < flows; ++i) {
      const auto f = udpFrame(1, static_cast<uint16_t>(first_port + i), 10);
      p.onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), t);
    }
    p.foldPending();
  }
  uint64_t packetsDelivered() {
    std::lock_guard lock(shared.mu);
    uint64_t n = 0;
    for (const auto& r : shared.records) n += r.packets;
    return n;
  }
};

TEST_F(LiveFixture, AnIdleTimeoutWaveWaitsForASlowExporterInsteadOfBeingDropped) {
  PipelineOptions o;
  o.export_batch = 4;
  o.cache.idle_timeout_ms = 1000;
  o.cache.max_expiry_work = 8;  // a wave takes many expire() calls, as a large one does with the default
  auto p = make(o, 2);  // room for 2 batches of 4: far fewer than the wave
  oneFlowEach(*p, 500, 1'000'000);
  // Every flow goes idle at once while the exporter is held.
  for (uint64_t t = 1'002'000; t < 1'004'000; t += 10) {
    p->advanceClock(t);
    p->handOffPending();
  }
  EXPECT_EQ(stage->queue().droppedRecords(), 0u);
  EXPECT_GT(p->activeFlows(), 0u) << "expiry must pause while the queue is full";
  shared.release();
  for (uint64_t t = 1'004'000; p->activeFlows() > 0 && t < 1'100'000; t += 10) {
    p->advanceClock(t);
    p->handOffPending();
  }
  p->finish();
  stage->finish();
  EXPECT_EQ(stage->queue().droppedRecords(), 0u);
  EXPECT_EQ(shared.records.size(), 500u);
  EXPECT_EQ(packetsDelivered(), 500u);
  EXPECT_EQ(p->cacheCounters().ended_idle, 500u) << "they ended as idle flows, not forced at the stop";
}

TEST_F(LiveFixture, AStopWaitsForTheExporterAndLosesNoFlow) {
  PipelineOptions o;
  o.export_batch = 4;
  auto p = make(o, 2);
  oneFlowEach(*p, 1000, 1'000'000);
  // Released once finish() has waited for room at least once.
  std::thread releaser([&] {
    while (stage->queue().blockedPushes() == 0) std::this_thread::yield();
    shared.release();
  });
  p->finish();
  releaser.join();
  stage->finish();
  EXPECT_EQ(stage->queue().droppedRecords(), 0u);
  EXPECT_EQ(shared.records.size(), 1000u);
  EXPECT_EQ(packetsDelivered(), 1000u);
}

TEST_F(LiveFixture, AStopGivesUpOnAStuckExporterAfterItsTimeoutAndCountsWhatItLost) {
  PipelineOptions o;
  o.export_batch = 4;
  o.stop_timeout_ms = 20;
  auto p = make(o, 2);
  oneFlowEach(*p, 1000, 1'000'000);
  p->finish();  // returns: the exporter never moves within the timeout
  shared.release();
  stage->finish();
  const uint64_t delivered = shared.records.size();
  EXPECT_LT(delivered, 1000u);
  EXPECT_EQ(stage->queue().droppedRecords() + delivered, 1000u) << "every record delivered or counted";
  EXPECT_EQ(packetsDelivered(), delivered);
}

TEST_F(LiveFixture, RecordsBeyondTheBacklogBoundAreDroppedOldestFirstAndCounted) {
  PipelineOptions o;
  o.export_batch = 4;
  o.cache.max_flows = 10;        // every new flow beyond 10 evicts one: records the cache cannot hold back
  o.max_backlog_records = 50;
  auto p = make(o, 1);
  oneFlowEach(*p, 14, 1'000'000, 1000);  // 4 evictions: a batch the exporter takes and is held on
  shared.waitEntered();
  oneFlowEach(*p, 286, 1'000'000, 1014);  // the next batch fills the queue; the rest wait
  p->advanceClock(1'000'001);    // the backlog is offered again, and bounded, as the clock moves
  p->handOffPending();
  shared.release();
  p->finish();
  stage->finish();
  const uint64_t delivered = shared.records.size();
  EXPECT_EQ(p->cacheCounters().records, 300u);
  EXPECT_GT(stage->queue().droppedRecords(), 0u);
  EXPECT_EQ(stage->queue().droppedRecords() + delivered, 300u);
  // The newest records survive: the last 10 flows (forced out at the stop) and the latest evictions.
  std::set<uint16_t> ports;
  for (const auto& r : shared.records) ports.insert(r.key.src_port);
  for (uint16_t port = 1290; port < 1300; ++port) EXPECT_TRUE(ports.count(port)) << port;
}

}  // namespace
}  // namespace flowfold
