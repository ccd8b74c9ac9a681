#include "flowfold/probe/sharded_pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <mutex>
#include <thread>

#include "flowfold/probe/spsc_ring.h"

namespace flowfold {
namespace {

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

TEST(SymmetricFlowHash, BothDirectionsHashAlike) {
  FlowKey k;
  k.ip_version = 4;
  k.protocol = 6;
  k.src_addr = {10, 0, 0, 1};
  k.dst_addr = {10, 0, 0, 2};
  k.src_port = 40000;
  k.dst_port = 443;
  FlowKey r = k;
  std::swap(r.src_addr, r.dst_addr);
  std::swap(r.src_port, r.dst_port);
  EXPECT_EQ(symmetricFlowHash(k), symmetricFlowHash(r));
  EXPECT_NE(hashFlowKey(k), hashFlowKey(r));
  FlowKey other = k;
  other.dst_port = 80;
  EXPECT_NE(symmetricFlowHash(k), symmetricFlowHash(other));
}

TEST(SymmetricFlowHash, EchoRequestAndReplyHashAlike) {
  for (const uint8_t proto : {uint8_t{1}, uint8_t{58}}) {
    FlowKey request;
    request.ip_version = proto == 1 ? 4 : 6;
    request.protocol = proto;
    request.src_addr = {10, 0, 0, 1};
    request.dst_addr = {10, 0, 0, 2};
    request.dst_port = proto == 1 ? 8 * 256 : 128 * 256;  // echo request, as type*256+code
    FlowKey reply = request;
    std::swap(reply.src_addr, reply.dst_addr);
    reply.dst_port = proto == 1 ? 0 : 129 * 256;  // echo reply
    EXPECT_EQ(symmetricFlowHash(request), symmetricFlowHash(reply)) << int{proto};
  }
}

TEST(SymmetricFlowHash, EveryKeyFieldButTheDirectionCounts) {
  FlowKey k;
  k.ip_version = 6;
  k.protocol = 17;
  k.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  k.dst_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  k.src_port = 5000;
  k.dst_port = 53;
  const uint64_t h = symmetricFlowHash(k);
  auto changed = [&](auto&& edit) {
    FlowKey other = k;
    edit(other);
    return symmetricFlowHash(other);
  };
  EXPECT_NE(h, changed([](FlowKey& o) { o.src_addr[15] = 3; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.dst_addr[0] = 0x30; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.src_port = 5001; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.dst_port = 54; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.vlan_id = 7; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.inner_vlan_id = 7; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.ingress_if = 2; }));
  EXPECT_NE(h, changed([](FlowKey& o) { o.protocol = 6; }));
  // Endpoints swapped as wholes (address with its port) hash alike; an
  // address moved without its port is another conversation.
  EXPECT_EQ(h, changed([](FlowKey& o) {
              std::swap(o.src_addr, o.dst_addr);
              std::swap(o.src_port, o.dst_port);
            }));
  EXPECT_NE(h, changed([](FlowKey& o) { std::swap(o.src_addr, o.dst_addr); }));
}

TEST(ShardedPipeline, ShardsSpreadConversationsEvenly) {
  // 60 000 conversations of one /16 (the client's port varies too): every
  // worker gets its share within 5 %, whatever the seed.
  for (const size_t workers : {size_t{2}, size_t{3}, size_t{4}}) {
    std::vector<size_t> count(workers, 0);
    for (uint32_t i = 0; i < 60'000; ++i) {
      FlowKey k;
      k.ip_version = 4;
      k.protocol = 6;
      k.src_addr = {10, 1, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
      k.dst_addr = {192, 0, 2, static_cast<uint8_t>(i % 7)};
      k.src_port = static_cast<uint16_t>(32768 + i % 1000);
      k.dst_port = 443;
      const size_t shard = ShardedPipeline::shardOf(k, workers);
      ASSERT_LT(shard, workers);
      ++count[shard];
    }
    const double share = 60'000.0 / static_cast<double>(workers);
    for (size_t s = 0; s < workers; ++s)
      EXPECT_NEAR(static_cast<double>(count[s]), share, share * 0.05) << workers << " workers, shard " << s;
  }
}

TEST(SpscRing, DeliversEveryItemInOrderAcrossThreads) {
  SpscRing<uint64_t> ring(64);
  constexpr uint64_t kItems = 200'000;
  uint64_t expected = 0;
  bool in_order = true;
  std::thread consumer([&] {
    while (expected < kItems) {
      const size_t n = ring.waitAvailable();
      for (size_t i = 0; i < n; ++i) in_order &= ring.at(i) == expected++;
      ring.release(n);
    }
  });
  for (uint64_t i = 0; i < kItems; ++i) {
    ring.claim() = i;
    ring.commit();
  }
  ring.publish();
  consumer.join();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(expected, kItems);
}

TEST(ShardedPipeline, ConservesEveryPacketAndKeepsOneFlowPerKey) {
  std::mutex mu;
  std::vector<FlowRecord> out;
  std::vector<std::unique_ptr<Exporter>> exporters;
  exporters.push_back(std::make_unique<Collect>(mu, out));
  ExportStage stage(std::move(exporters), 16);
  PipelineOptions options;
  options.cache.idle_timeout_ms = 600'000;
  options.cache.active_timeout_ms = 600'000;
  {
    ShardedPipeline sharded(options, 1, stage, 3);
    uint64_t ts = 1'000'000;
    for (int round = 0; round < 50; ++round) {
      for (uint8_t host = 1; host <= 40; ++host) {
        const auto fwd = udpFrame(host, 200, 1000 + host, 53);
        const auto rev = udpFrame(200, host, 53, 1000 + host);
        sharded.onPacket(fwd.data(), static_cast<uint32_t>(fwd.size()), static_cast<uint32_t>(fwd.size()), ts++);
        sharded.onPacket(rev.data(), static_cast<uint32_t>(rev.size()), static_cast<uint32_t>(rev.size()), ts++);
      }
      sharded.publishToWorkers();
    }
    sharded.finish();
    const PipelineStats stats = sharded.stats();
    EXPECT_EQ(stats.decode.packets, 4000u);
    EXPECT_EQ(stats.cache.packets_folded, 4000u);
  }
  stage.finish();
  // 80 keys (40 conversations, two directions), each exported once, whole.
  std::map<std::pair<uint8_t, uint8_t>, uint64_t> packets;
  for (const auto& r : out) packets[{r.key.src_addr[3], r.key.dst_addr[3]}] += r.packets;
  EXPECT_EQ(out.size(), 80u);
  EXPECT_EQ(packets.size(), 80u);
  for (const auto& [key, n] : packets) EXPECT_EQ(n, 50u);
}

// Each worker numbers its flows from its own offset with the worker count as
// the stride (inside whatever split the options already make): the ids of
// all workers never collide, and worker w's flows are exactly
// base + offset + stride * w + stride * workers * n, n = 0, 1, 2, ...
TEST(ShardedPipeline, WorkersNumberFlowsInTheirOwnResidueClass) {
  struct Split {
    uint64_t stride, offset;
  };
  for (const Split split : {Split{1, 0}, Split{2, 1}}) {
    std::mutex mu;
    std::vector<FlowRecord> out;
    std::vector<std::unique_ptr<Exporter>> exporters;
    exporters.push_back(std::make_unique<Collect>(mu, out));
    ExportStage stage(std::move(exporters), 16);
    PipelineOptions options;
    options.cache.idle_timeout_ms = 600'000;
    options.cache.active_timeout_ms = 600'000;
    options.cache.flow_id_stride = split.stride;
    options.cache.flow_id_offset = split.offset;
    {
      ShardedPipeline sharded(options, 1, stage, 3);
      uint64_t ts = 1'000'000;
      for (uint8_t host = 1; host <= 60; ++host) {
        const auto fwd = udpFrame(host, 200, 1000 + host, 53);
        const auto rev = udpFrame(200, host, 53, 1000 + host);
        sharded.onPacket(fwd.data(), static_cast<uint32_t>(fwd.size()), static_cast<uint32_t>(fwd.size()), ts++);
        sharded.onPacket(rev.data(), static_cast<uint32_t>(rev.size()), static_cast<uint32_t>(rev.size()), ts++);
      }
      sharded.finish();
    }
    stage.finish();
    ASSERT_EQ(out.size(), 120u);
    const uint64_t stride = 3 * split.stride;
    std::map<uint64_t, std::vector<uint64_t>> by_worker;  // worker -> its ids, sorted
    std::map<uint8_t, uint64_t> worker_of_host;
    for (const FlowRecord& r : out) {
      const uint64_t rel = r.flow_id - 1 - split.offset;  // base 1
      ASSERT_EQ(rel % split.stride, 0u) << r.flow_id;
      const uint64_t worker = (rel % stride) / split.stride;
      by_worker[worker].push_back(r.flow_id);
      // Both directions of a conversation are on one worker.
      const uint8_t host = r.key.src_addr[3] == 200 ? r.key.dst_addr[3] : r.key.src_addr[3];
      const auto [it, fresh] = worker_of_host.emplace(host, worker);
      EXPECT_EQ(it->second, worker) << "host " << int{host};
    }
    EXPECT_GE(by_worker.size(), 2u) << "the flows are spread over the workers";
    std::set<uint64_t> all;
    for (auto& [worker, ids] : by_worker) {
      ASSERT_LT(worker, 3u);
      std::sort(ids.begin(), ids.end());
      for (size_t n = 0; n < ids.size(); ++n) {
        EXPECT_EQ(ids[n], 1 + split.offset + split.stride * worker + stride * n) << "worker " << worker;
        all.insert(ids[n]);
      }
    }
    EXPECT_EQ(all.size(), 120u) << "no id twice";
  }
}

TEST(ShardedPipeline, TunnelModeBothRoutesEachFlowToItsOwnShard) {
  std::mutex mu;
  std::vector<FlowRecord> out;
  std::vector<std::unique_ptr<Exporter>> exporters;
  exporters.push_back(std::make_unique<Collect>(mu, out));
  ExportStage stage(std::move(exporters), 16);
  PipelineOptions options;
  options.cache.idle_timeout_ms = 600'000;
  options.cache.active_timeout_ms = 600'000;
  options.tunnels = probe::TunnelMode::kBoth;
  {
    ShardedPipeline sharded(options, 1, stage, 3);
    uint64_t ts = 1'000'000;
    for (int round = 0; round < 10; ++round) {
      for (uint8_t host = 1; host <= 20; ++host) {
        // IP-in-IP: outer 10.0.0.250 -> 10.0.0.251, the UDP packet inside.
        auto f = udpFrame(host, 200, 1000 + host, 53);
        std::vector<uint8_t> outer = {0x45, 0, 0, 58, 0, 0, 0, 0, 64, 4, 0, 0, 10, 0, 0, 250, 10, 0, 0, 251};
        f.insert(f.begin() + 14, outer.begin(), outer.end());
        sharded.onPacket(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), ts++);
      }
      sharded.publishToWorkers();
    }
    sharded.finish();
    const PipelineStats stats = sharded.stats();
    EXPECT_EQ(stats.decode.packets, 200u);
    EXPECT_EQ(stats.decode.tunnel_decapsulated, 200u);
    EXPECT_EQ(stats.cache.packets_folded, 400u);  // each packet in its outer and its inner flow
  }
  stage.finish();
  std::map<std::pair<uint8_t, uint8_t>, uint64_t> packets;
  for (const auto& r : out) packets[{r.key.src_addr[3], r.key.dst_addr[3]}] += r.packets;
  EXPECT_EQ(out.size(), 21u);  // one record per key: no flow split across shards
  ASSERT_EQ(packets.size(), 21u);
  EXPECT_EQ((packets[{250, 251}]), 200u);
  for (uint8_t host = 1; host <= 20; ++host) EXPECT_EQ((packets[{host, 200}]), 10u);
}

}  // namespace
}  // namespace flowfold
