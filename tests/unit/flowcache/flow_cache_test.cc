#include "flowfold/flowcache/flow_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <random>
#include <tuple>

namespace flowfold {
namespace {

FlowKey udpKey(uint8_t host, uint16_t sport) {
  FlowKey k;
  k.ip_version = 4;
  k.protocol = 17;
  k.src_addr = {10, 0, 0, host};
  k.dst_addr = {192, 0, 2, 1};
  k.src_port = sport;
  k.dst_port = 53;
  return k;
}

TimedCachePacket packet(const FlowKey& key, uint64_t ts_ms, uint32_t len = 100, uint8_t flags = 0,
                     uint8_t ttl = 64) {
  TimedCachePacket p;
  p.key = key;
  p.ts_ms = ts_ms;
  p.ip_length = len;
  p.tcp_flags = flags;
  p.ttl = ttl;
  return p;
}

FlowCacheOptions opts(uint64_t active = 60'000, uint64_t idle = 15'000, uint32_t max = 1000) {
  FlowCacheOptions o;
  o.active_timeout_ms = active;
  o.idle_timeout_ms = idle;
  o.max_flows = max;
  return o;
}

std::vector<FlowRecord> take(FlowCache& c) {
  std::vector<FlowRecord> out;
  out.swap(c.output());
  return out;
}

TEST(FlowCache, FlushAllInChunksHandsOffEveryFlowOnceAndNeverHoldsMoreThanAChunk) {
  FlowCache cache(opts(60'000, 15'000, 5000));
  for (uint16_t i = 0; i < 1000; ++i) cache.update(packet(udpKey(static_cast<uint8_t>(i % 7), i), 1000, 100 + i));
  ASSERT_EQ(cache.activeFlows(), 1000u);
  std::vector<size_t> chunk_sizes;
  std::set<uint16_t> ports;
  uint64_t octets = 0;
  cache.flushAll(64, [&] {
    chunk_sizes.push_back(cache.output().size());
    for (const FlowRecord& r : take(cache)) {
      EXPECT_TRUE(ports.insert(r.key.src_port).second);
      EXPECT_EQ(r.end_reason, FlowEndReason::kForcedEnd);
      octets += r.octets;
    }
  });
  for (const FlowRecord& r : take(cache)) {  // the remainder, fewer than a chunk
    EXPECT_TRUE(ports.insert(r.key.src_port).second);
    octets += r.octets;
  }
  EXPECT_EQ(chunk_sizes, std::vector<size_t>(1000 / 64, 64));
  EXPECT_EQ(ports.size(), 1000u);
  EXPECT_EQ(octets, 1000u * 100 + 999u * 1000 / 2);
  EXPECT_EQ(cache.activeFlows(), 0u);
  EXPECT_EQ(cache.counters().flushed, 1000u);
}

TEST(FlowCache, FoldsPacketsOfOneKeyIntoOneFlow) {
  FlowCache cache(opts());
  const auto k = udpKey(1, 1000);
  cache.update(packet(k, 1000, 100, 0, 60));
  cache.update(packet(k, 1500, 200, 0, 70));
  cache.update(packet(k, 1200, 300, 0, 50));  // out of order timestamp
  EXPECT_EQ(cache.activeFlows(), 1u);
  cache.flushAll();
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 3u);
  EXPECT_EQ(out[0].octets, 600u);
  EXPECT_EQ(out[0].first_ms, 1000u);
  EXPECT_EQ(out[0].last_ms, 1500u);
  EXPECT_EQ(out[0].min_ttl, 50);
  EXPECT_EQ(out[0].max_ttl, 70);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kForcedEnd);
  EXPECT_EQ(cache.activeFlows(), 0u);
  EXPECT_EQ(cache.counters().flushed, 1u);
}

TEST(FlowCache, ExpiresIdleFlowAfterIdleTimeoutAndNotBefore) {
  FlowCache cache(opts(60'000, 15'000));
  cache.update(packet(udpKey(1, 1), 10'000));
  cache.expire(24'999);
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 1u);
  // The wheel's resolution is a few ms for these timeouts: allow one tick.
  cache.expire(25'100);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kIdleTimeout);
  EXPECT_EQ(cache.activeFlows(), 0u);
  EXPECT_EQ(cache.counters().ended_idle, 1u);
}

TEST(FlowCache, PacketsKeepAFlowFromGoingIdle) {
  FlowCache cache(opts(600'000, 15'000));
  const auto k = udpKey(1, 1);
  for (uint64_t t = 0; t <= 100'000; t += 10'000) {
    cache.update(packet(k, t));
    cache.expire(t);
  }
  EXPECT_TRUE(take(cache).empty());
  cache.expire(116'000);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 11u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kIdleTimeout);
}

TEST(FlowCache, ExportsDeltaOnActiveTimeoutAndKeepsTheFlow) {
  FlowCache cache(opts(60'000, 15'000));
  const auto k = udpKey(1, 1);
  uint64_t t = 0;
  for (; t < 60'000; t += 1'000) {
    cache.update(packet(k, t, 10));
    cache.expire(t);
  }
  // 60 packets in [0, 59s]; the active timeout fires at 60 s.
  cache.expire(60'100);
  auto first = take(cache);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].end_reason, FlowEndReason::kActiveTimeout);
  EXPECT_EQ(first[0].packets, 60u);
  EXPECT_EQ(first[0].octets, 600u);
  EXPECT_EQ(cache.activeFlows(), 1u);
  for (t = 61'000; t < 70'000; t += 1'000) cache.update(packet(k, t, 10));
  cache.flushAll();
  auto second = take(cache);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].packets, 9u);
  EXPECT_EQ(second[0].first_ms, 61'000u);
  EXPECT_EQ(second[0].end_reason, FlowEndReason::kForcedEnd);
}

// split_interval: a flow sending across minute boundaries is reported up to
// each boundary; every record lies in one minute and the counts add up.
TEST(FlowCache, SplitIntervalEndsRecordsAtEachBoundary) {
  FlowCacheOptions o = opts(300'000, 15'000);
  o.split_interval_ms = 60'000;
  FlowCache cache(o);
  const auto k = udpKey(1, 1);
  const auto quiet = udpKey(2, 2);  // one packet a minute apart: idle timeout 90 s below
  std::vector<FlowRecord> out;
  cache.update(packet(quiet, 59'990, 50));
  for (uint64_t t = 50'000; t < 185'000; t += 500) {  // 270 packets over three minute boundaries
    cache.update(packet(k, t, 10));
    cache.expire(t);
    for (auto& r : take(cache)) out.push_back(r);
  }
  cache.flushAll();
  for (auto& r : take(cache)) out.push_back(r);
  std::map<uint64_t, uint64_t> per_minute;  // of k's records
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.first_ms / 60'000, r.last_ms / 60'000) << r.first_ms << " " << r.last_ms;
    if (r.key == k) per_minute[r.first_ms / 60'000] += r.packets;
  }
  // [50 s, 60 s): 20 packets; minutes 1 and 2: 120 each; [180 s, 185 s): 10.
  EXPECT_EQ(per_minute, (std::map<uint64_t, uint64_t>{{0, 20}, {1, 120}, {2, 120}, {3, 10}}));
  const auto split = std::count_if(out.begin(), out.end(), [&](const FlowRecord& r) {
    return r.key == k && r.end_reason == FlowEndReason::kActiveTimeout;
  });
  EXPECT_EQ(split, 3);  // one at each boundary, then the flush
  EXPECT_EQ(cache.counters().ended_active, 3u);
}

TEST(FlowCache, SplitIntervalOffKeepsOneRecordAcrossBoundaries) {
  FlowCache cache(opts(300'000, 15'000));
  const auto k = udpKey(1, 1);
  for (uint64_t t = 50'000; t < 185'000; t += 500) cache.update(packet(k, t, 10));
  cache.flushAll();
  const auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 270u);
}

TEST(FlowCache, IdleAfterActiveExportWithoutNewPacketsEmitsNothingMore) {
  FlowCache cache(opts(10'000, 8'000));
  const auto k = udpKey(1, 1);
  for (uint64_t t = 0; t <= 9'000; t += 1'000) cache.update(packet(k, t));
  cache.expire(10'050);  // active: exports 10 packets, flow stays
  EXPECT_EQ(take(cache).size(), 1u);
  cache.expire(30'000);  // idle: nothing new to report, the entry just goes
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 0u);
}

// tcp_end_timeout 0: the flow ends at its FIN or RST (the behaviour before
// the tcp_end window).
TEST(FlowCache, TcpFinOrRstEndsTheFlowAtOnceWhenTcpEndTimeoutIsZero) {
  FlowCacheOptions o = opts();
  o.tcp_end_timeout_ms = 0;
  FlowCache cache(o);
  FlowKey k = udpKey(1, 1);
  k.protocol = 6;
  cache.update(packet(k, 0, 60, 0x02));
  cache.update(packet(k, 10, 60, 0x10));
  cache.update(packet(k, 20, 60, 0x11));  // FIN|ACK
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(out[0].tcp_flags, 0x13);
  EXPECT_EQ(out[0].packets, 3u);
  EXPECT_EQ(cache.activeFlows(), 0u);
  k.src_port = 2;
  cache.update(packet(k, 30, 40, 0x04));  // RST alone
  out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(cache.counters().ended_tcp, 2u);
}

// ---------------------------------------------------------------- tcp_end window
// The default options (opts()): active 60 s, idle 15 s, tcp_end 10 s; a wheel
// tick is then 32 ms, so a deadline D comes due at the latest 64 ms after D.

FlowKey tcpKey(uint8_t host, uint16_t sport, uint16_t dport = 443) {
  FlowKey k = udpKey(host, sport);
  k.protocol = 6;
  k.dst_port = dport;
  return k;
}

FlowKey reversed(const FlowKey& k) {
  FlowKey r = k;
  std::swap(r.src_addr, r.dst_addr);
  std::swap(r.src_port, r.dst_port);
  return r;
}

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kFinAck = 0x11, kRst = 0x04, kSynAck = 0x12, kPshAck = 0x18;

// A short HTTPS connection: handshake, data, then the closing handshake. The
// client's FIN, the server's FIN-ACK and the client's last ACK give one flow
// per direction, exported when the window after each side's last packet ends.
TEST(FlowCache, ClosingHandshakeJoinsTheFlowOfEachDirection) {
  FlowCache cache(opts());
  const FlowKey c2s = tcpKey(1, 50000), s2c = reversed(c2s);
  cache.update(packet(c2s, 1000, 60, kSyn));
  cache.update(packet(s2c, 1010, 60, kSynAck));
  cache.update(packet(c2s, 1020, 52, kAck));
  cache.update(packet(c2s, 1030, 500, kPshAck));
  cache.update(packet(s2c, 1040, 1500, kPshAck));
  cache.update(packet(c2s, 2000, 52, kFinAck));  // client closes
  cache.update(packet(s2c, 2010, 52, kFinAck));  // server closes
  cache.update(packet(c2s, 2300, 52, kAck));     // the client's last (delayed) ACK
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 2u);
  cache.expire(11'999);
  EXPECT_TRUE(take(cache).empty());
  cache.expire(12'100);  // 10 s after the server's FIN-ACK, not yet after the client's ACK
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, s2c);
  cache.expire(12'400);
  auto more = take(cache);
  ASSERT_EQ(more.size(), 1u);
  out.push_back(more[0]);
  EXPECT_EQ(out[1].key, c2s);
  for (const FlowRecord& r : out) EXPECT_EQ(r.end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(out[1].packets, 5u);
  EXPECT_EQ(out[1].octets, 60u + 52 + 500 + 52 + 52);
  EXPECT_EQ(out[1].first_ms, 1000u);
  EXPECT_EQ(out[1].last_ms, 2300u);  // the last packet's time, not the window's end
  EXPECT_EQ(out[1].tcp_flags, kSyn | kPshAck | kFinAck);
  EXPECT_EQ(out[0].packets, 3u);
  EXPECT_EQ(out[0].last_ms, 2010u);
  const auto& c = cache.counters();
  EXPECT_EQ(c.ended_tcp, 2u);
  EXPECT_EQ(c.records, 2u);
  EXPECT_EQ(c.flows_created, 2u);
  EXPECT_EQ(cache.activeFlows(), 0u);
}

// The window runs from the last packet: every packet in it moves it on. It
// closes by the clock alone, not before and not much after.
TEST(FlowCache, TcpEndWindowEndsOnTimeByTheClock) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 1);
  cache.update(packet(k, 1000, 60, kPshAck));
  cache.update(packet(k, 2000, 52, kFinAck));
  cache.update(packet(k, 5000, 52, kFinAck));  // a retransmitted FIN
  cache.expire(14'999);
  EXPECT_TRUE(take(cache).empty());
  cache.expire(15'064);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 3u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  // A packet after the window starts a flow of its own.
  cache.update(packet(k, 16'000, 52, kAck));
  EXPECT_EQ(cache.counters().flows_created, 2u);
  cache.expire(31'100);
  out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kIdleTimeout);
}

TEST(FlowCache, RstAfterFinJoinsTheFlow) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 1);
  cache.update(packet(k, 0, 60, kSyn));
  cache.update(packet(k, 100, 52, kFinAck));
  cache.update(packet(k, 900, 40, kRst));  // the application closed with data unread
  cache.update(packet(k, 950, 40, kRst));  // and once more
  cache.expire(10'000);
  EXPECT_TRUE(take(cache).empty());
  cache.expire(11'000);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 4u);
  EXPECT_EQ(out[0].tcp_flags, kSyn | kFinAck | kRst);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(cache.counters().ended_tcp, 1u);
}

// Port reuse: a SYN on the key in its window is a new connection. The old
// flow is exported at once, the new one lives its own life (it is not
// expired by the old flow's window).
TEST(FlowCache, SynInTheWindowEndsTheOldFlowAndStartsANewOne) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 40000, 80), back = reversed(k);
  cache.update(packet(k, 0, 60, kSyn));
  cache.update(packet(back, 5, 60, kSynAck));
  cache.update(packet(k, 10, 300, kPshAck));
  cache.update(packet(k, 1000, 52, kFinAck));
  cache.update(packet(back, 1005, 52, kFinAck));
  cache.update(packet(k, 3000, 60, kSyn));         // the same ports again
  cache.update(packet(back, 3005, 60, kSynAck));   // and the server's answer
  auto out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.end_reason, FlowEndReason::kEndOfFlow);
    EXPECT_EQ(r.first_ms + 1000 == r.last_ms, true);
  }
  EXPECT_EQ(out[0].packets, 3u);
  EXPECT_EQ(out[1].packets, 2u);
  const auto& c = cache.counters();
  EXPECT_EQ(c.tcp_end_reused, 2u);
  EXPECT_EQ(c.ended_tcp, 2u);
  EXPECT_EQ(c.flows_created, 4u);
  EXPECT_EQ(cache.activeFlows(), 2u);
  cache.update(packet(k, 3010, 100, kPshAck));
  // Past the old window (1005 + 10 s): the new flows stay.
  cache.expire(14'000);
  EXPECT_TRUE(take(cache).empty());
  // They idle out 15 s after their last packets, with only their own packets.
  cache.expire(18'100);
  out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  uint64_t packets = 0;
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.end_reason, FlowEndReason::kIdleTimeout);
    EXPECT_GE(r.first_ms, 3000u);
    packets += r.packets;
  }
  EXPECT_EQ(packets, 3u);
}

// A data packet in the window (no SYN) joins the old flow.
TEST(FlowCache, OnlyASynStartsANewFlowInTheWindow) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 1);
  cache.update(packet(k, 0, 60, kSyn));
  cache.update(packet(k, 100, 52, kFinAck));
  cache.update(packet(k, 200, 1500, kPshAck));  // late data, retransmitted
  cache.flushAll();
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].packets, 3u);
  // Flushed in its window, the flow has ended already: reason 3, not 4.
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(cache.counters().flushed, 0u);
  EXPECT_EQ(cache.counters().ended_tcp, 1u);
}

// A long-lived flow reports on its active timeout as before; after its FIN
// the rest comes in one last record. An active deadline inside the window
// ends the flow there (reason 3).
TEST(FlowCache, LongLivedFlowKeepsItsActiveTimeoutThroughTheWindow) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 1);
  uint64_t sent = 0;
  for (uint64_t t = 0; t <= 175'000; t += 100) {
    cache.update(packet(k, t, 100, t == 0 ? kSyn : kAck));
    ++sent;
    cache.expire(t);
  }
  cache.update(packet(k, 175'050, 52, kFinAck));  // the interval started at 120 s ends at 180 s
  cache.update(packet(k, 179'000, 52, kAck));
  sent += 2;
  cache.expire(179'500);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  for (const FlowRecord& r : out) EXPECT_EQ(r.end_reason, FlowEndReason::kActiveTimeout);
  cache.expire(180'300);  // the active deadline (180.2 s), 9 s before the window ends
  auto last = take(cache);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(last[0].last_ms, 179'000u);
  EXPECT_EQ(out[0].packets + out[1].packets + last[0].packets, sent);
  EXPECT_EQ(cache.activeFlows(), 0u);
  EXPECT_EQ(cache.counters().ended_active, 2u);
  EXPECT_EQ(cache.counters().ended_tcp, 1u);
}

// A RST storm: every RST a key of its own (a scan's answers, a SYN flood's
// backscatter). The flows in their window never grow the cache past
// max_flows: they go first when it is full (reason 3, counted in
// tcp_end_cut), before a live flow that is still running; and expiry stays
// bounded per call.
TEST(FlowCache, RstStormStaysWithinMaxFlowsAndSparesLiveFlows) {
  FlowCacheOptions o = opts(60'000, 15'000, 100);
  o.max_expiry_work = 50;
  FlowCache cache(o);
  const FlowKey live = udpKey(200, 5353);
  uint64_t packets_out = 0, live_records = 0;
  auto drain = [&] {
    for (const FlowRecord& r : take(cache)) {
      packets_out += r.packets;
      if (r.key == live) ++live_records;
      else EXPECT_EQ(r.end_reason, FlowEndReason::kEndOfFlow);
    }
  };
  for (uint32_t i = 0; i < 20'000; ++i) {
    const uint64_t t = i / 4;  // 4000 RSTs a second
    if (i % 100 == 0) cache.update(packet(live, t));
    cache.update(packet(tcpKey(static_cast<uint8_t>(i), static_cast<uint16_t>(i >> 8), 80), t, 40, kRst));
    EXPECT_LE(cache.activeFlows(), 100u);
    cache.expire(t);
    drain();
  }
  EXPECT_EQ(live_records, 0u);  // never evicted, never idle
  const auto& c = cache.counters();
  EXPECT_EQ(c.evicted, 0u);
  EXPECT_GT(c.tcp_end_cut, 19'000u);
  while (cache.expire(4'999 + 10'100)) drain();
  drain();
  EXPECT_EQ(c.ended_tcp, 20'000u);  // each RST flow, exactly once
  EXPECT_EQ(cache.activeFlows(), 1u);
  cache.flushAll();
  drain();
  EXPECT_EQ(live_records, 1u);
  EXPECT_EQ(packets_out, 20'000u + 200u);
}

// With the window off, a RST flow never stays.
TEST(FlowCache, RstStormWithTheWindowOffKeepsNoFlow) {
  FlowCacheOptions o = opts(60'000, 15'000, 100);
  o.tcp_end_timeout_ms = 0;
  FlowCache cache(o);
  for (uint32_t i = 0; i < 5'000; ++i)
    cache.update(packet(tcpKey(static_cast<uint8_t>(i), static_cast<uint16_t>(i >> 8), 80), i, 40, kRst));
  EXPECT_EQ(cache.activeFlows(), 0u);
  EXPECT_EQ(take(cache).size(), 5'000u);
  EXPECT_EQ(cache.counters().ended_tcp, 5'000u);
}

// A flow ended by FIN leaves its filing on the wheel; the freed entry is
// reused at once by a new flow whose deadline falls in the same tick. The
// old filing must neither expire the new flow early nor erase its slot:
// each flow is exported exactly once, the new one at its idle timeout.
TEST(FlowCache, AFlowReusingAnEntryEndedInTheSameTickExpiresOnceAndOnTime) {
  FlowCacheOptions o = opts(60'000, 15'000, 1000);
  o.tcp_end_timeout_ms = 0;  // the FIN frees the entry at once
  FlowCache cache(o);
  uint64_t expected_packets = 0;
  std::set<uint16_t> open_ports;
  for (uint16_t i = 0; i < 50; ++i) {
    FlowKey ended = udpKey(1, static_cast<uint16_t>(1000 + i));
    ended.protocol = 6;
    cache.update(packet(ended, 1000, 60, 0x02));
    cache.update(packet(ended, 1000, 60, 0x11));  // FIN: the entry is freed
    const FlowKey reused = udpKey(2, static_cast<uint16_t>(2000 + i));
    cache.update(packet(reused, 1000, 80));  // takes the freed entry, same deadline tick
    cache.update(packet(reused, 1001, 80));
    open_ports.insert(reused.src_port);
    expected_packets += 4;
  }
  std::vector<FlowRecord> out = take(cache);
  ASSERT_EQ(out.size(), 50u);
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.end_reason, FlowEndReason::kEndOfFlow);
    EXPECT_EQ(r.packets, 2u);
  }
  EXPECT_EQ(cache.activeFlows(), 50u);
  // Not before the idle timeout of the last packet (1001 + 15000) ...
  cache.expire(16'000);
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 50u);
  // ... and every reused flow exactly once after it, whole.
  cache.expire(17'000);
  out = take(cache);
  ASSERT_EQ(out.size(), 50u);
  uint64_t packets = 100;  // the FIN'd flows above
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.end_reason, FlowEndReason::kIdleTimeout);
    EXPECT_EQ(r.packets, 2u);
    EXPECT_EQ(r.octets, 160u);
    EXPECT_EQ(r.first_ms, 1000u);
    EXPECT_EQ(r.last_ms, 1001u);
    EXPECT_EQ(open_ports.erase(r.key.src_port), 1u);
    packets += r.packets;
  }
  EXPECT_EQ(packets, expected_packets);
  EXPECT_EQ(cache.activeFlows(), 0u);
  // The table is consistent: the same keys start new flows.
  cache.update(packet(udpKey(2, 2000), 20'000, 80));
  EXPECT_EQ(cache.activeFlows(), 1u);
  cache.flushAll();
  EXPECT_EQ(take(cache).size(), 1u);
}

// A flow that ends (FIN) while its bucket is half reviewed (expire() stopped
// by its work budget) leaves its filing in the bucket under review: the rest
// of the bucket must still expire each flow exactly once, and drop the
// filings of the ended ones.
TEST(FlowCache, AFlowEndingWhileItsBucketIsHalfReviewedIsExportedOnce) {
  FlowCacheOptions o = opts(60'000, 15'000, 1000);
  o.max_expiry_work = 1;
  o.tcp_end_timeout_ms = 0;  // the FIN frees the entry at once
  FlowCache cache(o);
  std::vector<FlowKey> keys;
  for (uint16_t i = 0; i < 6; ++i) {
    FlowKey k = udpKey(1, static_cast<uint16_t>(100 + i));
    k.protocol = 6;
    keys.push_back(k);
    cache.update(packet(k, 1000, 60, 0x02));
  }
  // All six come due together; one call reviews one of them.
  EXPECT_TRUE(cache.expire(17'000));
  std::vector<FlowRecord> out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  std::set<uint16_t> expired{out[0].key.src_port};
  // FIN for every flow not reviewed yet: they end now, with both packets.
  for (const FlowKey& k : keys) {
    if (expired.count(k.src_port)) continue;
    cache.update(packet(k, 17'000, 60, 0x11));
  }
  out = take(cache);
  ASSERT_EQ(out.size(), 5u);
  for (const FlowRecord& r : out) {
    EXPECT_EQ(r.end_reason, FlowEndReason::kEndOfFlow);
    EXPECT_EQ(r.packets, 2u);
    EXPECT_TRUE(expired.insert(r.key.src_port).second);
  }
  // The rest of the bucket holds only their stale filings: nothing more comes out.
  while (cache.expire(17'000)) {
  }
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 0u);
  // New flows take the freed entries and expire normally.
  for (const FlowKey& k : keys) cache.update(packet(k, 20'000, 60, 0x10));
  while (cache.expire(40'000)) {
  }
  out = take(cache);
  EXPECT_EQ(out.size(), 6u);
  for (const FlowRecord& r : out) EXPECT_EQ(r.end_reason, FlowEndReason::kIdleTimeout);
  EXPECT_EQ(cache.activeFlows(), 0u);
}

// Label stack entries as the decoder gives them: 3 octets + presence bit 24.
constexpr uint32_t kEntry16Tc5 = 0x100010a;   // label 16, TC 5, S 0
constexpr uint32_t kEntry17Tc3 = 0x1000116;   // label 17, TC 3, S 0
constexpr uint32_t kEntryNullS = 0x1000001;   // label 0, TC 0, S 1
constexpr uint32_t kEntryMaxS = 0x1fffff1;    // label 0xfffff, TC 0, S 1
constexpr uint32_t kEntryZero = 0x1000000;    // label 0, TC 0, S 0: present

TEST(FlowCache, CarriesTheMplsStackOfTheFirstPacket) {
  FlowCache cache(opts());
  TimedCachePacket p = packet(udpKey(1, 1), 1000);
  p.mpls_stack = {kEntry16Tc5, kEntry17Tc3, kEntryNullS};
  cache.update(p);
  p.mpls_stack = {kEntryMaxS, 0, 0};  // later packets do not change it
  p.ts_ms = 1010;
  cache.update(p);
  TimedCachePacket q = packet(udpKey(1, 2), 1000);
  q.mpls_stack = {kEntryZero, kEntryMaxS, 0};
  cache.update(q);
  cache.update(packet(udpKey(1, 3), 1000));  // no MPLS, with the side array in use
  cache.expire(1000 + 15'000 + 1000);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 3u);
  for (const FlowRecord& r : out) {
    if (r.key.src_port == 1) {
      EXPECT_EQ(r.mpls_stack, (MplsStack{kEntry16Tc5, kEntry17Tc3, kEntryNullS}));
      EXPECT_EQ(r.mplsTopLabel(), 16u);
      EXPECT_EQ(r.packets, 2u);
    } else if (r.key.src_port == 2) {
      EXPECT_EQ(r.mpls_stack, (MplsStack{kEntryZero, kEntryMaxS, 0}));
      EXPECT_EQ(r.mplsTopLabel(), 0u);
    } else {
      EXPECT_EQ(r.mpls_stack, (MplsStack{0, 0, 0}));
    }
  }
}

TEST(FlowCache, MplsStackIsClearedWhenAnEntryIsReused) {
  FlowCacheOptions o = opts();
  o.max_flows = 2;  // every new flow below reuses one of two entries
  FlowCache cache(o);
  TimedCachePacket a = packet(udpKey(1, 1), 1000);
  a.mpls_stack = {kEntry16Tc5, kEntry17Tc3, kEntryNullS};
  TimedCachePacket b = packet(udpKey(1, 2), 1000);
  b.mpls_stack = {kEntryMaxS, 0, 0};
  cache.update(a);
  cache.update(b);
  // Full: each new flow evicts one, and takes its entry.
  cache.update(packet(udpKey(1, 3), 2000));
  TimedCachePacket d = packet(udpKey(1, 4), 2000);
  d.mpls_stack = {kEntryZero, 0, 0};
  cache.update(d);
  cache.flushAll();
  auto out = take(cache);
  ASSERT_EQ(out.size(), 4u);
  std::map<uint16_t, MplsStack> by_port;
  for (const FlowRecord& r : out) by_port[r.key.src_port] = r.mpls_stack;
  EXPECT_EQ(by_port[1], (MplsStack{kEntry16Tc5, kEntry17Tc3, kEntryNullS}));
  EXPECT_EQ(by_port[2], (MplsStack{kEntryMaxS, 0, 0}));
  EXPECT_EQ(by_port[3], (MplsStack{0, 0, 0}));
  EXPECT_EQ(by_port[4], (MplsStack{kEntryZero, 0, 0}));
}

TEST(FlowCache, EachActiveTimeoutIntervalTakesTheStackOfItsFirstPacket) {
  FlowCache cache(opts(10'000));
  TimedCachePacket p = packet(udpKey(1, 1), 1000);
  p.mpls_stack = {kEntry16Tc5, 0, 0};
  cache.update(p);
  cache.expire(1000 + 10'000 + 1000);  // active timeout: the flow stays
  EXPECT_EQ(cache.counters().ended_active, 1u);
  p.ts_ms = 12'500;
  p.mpls_stack = {0, 0, 0};  // the next interval starts without MPLS
  cache.update(p);
  cache.flushAll();
  auto out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].mpls_stack, (MplsStack{kEntry16Tc5, 0, 0}));
  EXPECT_EQ(out[1].mpls_stack, (MplsStack{0, 0, 0}));
}

// ---------------------------------------------------------------- flow ids
// The expected ids are written out: a lone cache numbers its flows 1, 2, 3,
// ... in the order it creates them.

std::map<uint16_t, std::vector<uint64_t>> idsBySourcePort(const std::vector<FlowRecord>& records) {
  std::map<uint16_t, std::vector<uint64_t>> ids;
  for (const FlowRecord& r : records) ids[r.key.src_port].push_back(r.flow_id);
  return ids;
}

TEST(FlowCache, FlowIdsCountTheFlowsInCreationOrder) {
  FlowCache cache(opts());
  // Created in the order 5, 3, 9, 1 (source ports); later packets change nothing.
  for (uint16_t port : {5, 3, 9, 1}) cache.update(packet(udpKey(1, port), 100 + port));
  for (uint16_t port : {1, 3, 5, 9}) cache.update(packet(udpKey(1, port), 200 + port));
  cache.flushAll();
  const auto ids = idsBySourcePort(take(cache));
  EXPECT_EQ(ids.at(5), std::vector<uint64_t>{1});
  EXPECT_EQ(ids.at(3), std::vector<uint64_t>{2});
  EXPECT_EQ(ids.at(9), std::vector<uint64_t>{3});
  EXPECT_EQ(ids.at(1), std::vector<uint64_t>{4});
}

TEST(FlowCache, EveryActiveTimeoutRecordOfAFlowCarriesItsId) {
  FlowCache cache(opts(10'000, 15'000));
  cache.update(packet(udpKey(1, 1), 0));    // id 1
  cache.update(packet(udpKey(1, 2), 500));  // id 2
  std::vector<FlowRecord> out;
  for (uint64_t t = 1'000; t <= 35'000; t += 1'000) {
    cache.update(packet(udpKey(1, 1), t));
    cache.update(packet(udpKey(1, 2), t + 500));
    cache.expire(t);
    for (const FlowRecord& r : take(cache)) out.push_back(r);
  }
  cache.flushAll();
  for (const FlowRecord& r : take(cache)) out.push_back(r);
  const auto ids = idsBySourcePort(out);
  ASSERT_GE(ids.at(1).size(), 4u);  // three active-timeout intervals, then the flush
  EXPECT_EQ(ids.at(1), std::vector<uint64_t>(ids.at(1).size(), 1));
  EXPECT_EQ(ids.at(2), std::vector<uint64_t>(ids.at(2).size(), 2));
  EXPECT_EQ(cache.counters().ended_active, out.size() - 2);
}

TEST(FlowCache, AFlowOfTheSameKeyAfterAnIdleEndGetsANewId) {
  FlowCache cache(opts());
  cache.update(packet(udpKey(1, 1), 0));     // id 1
  cache.update(packet(udpKey(1, 2), 10));    // id 2
  cache.expire(20'000);                      // both idle out; their entries are free
  cache.update(packet(udpKey(1, 1), 21'000));  // a new flow in a reused entry: id 3
  cache.flushAll();
  const auto ids = idsBySourcePort(take(cache));
  EXPECT_EQ(ids.at(1), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(ids.at(2), std::vector<uint64_t>{2});
}

TEST(FlowCache, AFlowOfTheSameKeyAfterATcpEndGetsANewId) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 40000, 80);
  cache.update(packet(k, 0, 60, kSyn));         // id 1
  cache.update(packet(k, 100, 52, kFinAck));
  cache.expire(11'000);                         // the tcp_end window (10 s) has passed
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kEndOfFlow);
  EXPECT_EQ(out[0].flow_id, 1u);
  cache.update(packet(k, 12'000, 100, kPshAck));  // id 2
  cache.flushAll();
  out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flow_id, 2u);
}

TEST(FlowCache, EvictionAndTheFlowsAfterItGetNewIds) {
  FlowCache cache(opts(600'000, 60'000, 2));
  cache.update(packet(udpKey(1, 1), 1'000));  // id 1
  cache.update(packet(udpKey(1, 2), 2'000));  // id 2
  cache.update(packet(udpKey(1, 3), 3'000));  // id 3, evicts port 1
  cache.update(packet(udpKey(1, 1), 4'000));  // id 4, evicts port 2
  cache.flushAll();
  const auto out = take(cache);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kLackOfResources);
  EXPECT_EQ(out[0].flow_id, 1u);
  EXPECT_EQ(out[1].end_reason, FlowEndReason::kLackOfResources);
  EXPECT_EQ(out[1].flow_id, 2u);
  const auto ids = idsBySourcePort(out);
  EXPECT_EQ(ids.at(1), (std::vector<uint64_t>{1, 4}));
  EXPECT_EQ(ids.at(2), std::vector<uint64_t>{2});
  EXPECT_EQ(ids.at(3), std::vector<uint64_t>{3});
}

TEST(FlowCache, ASynReusingTheEntryStartsAFlowWithANewId) {
  FlowCache cache(opts());
  const FlowKey k = tcpKey(1, 40000, 80), back = reversed(k);
  cache.update(packet(k, 0, 60, kSyn));            // id 1
  cache.update(packet(back, 5, 60, kSynAck));      // id 2
  cache.update(packet(k, 1000, 52, kFinAck));
  cache.update(packet(back, 1005, 52, kFinAck));
  cache.update(packet(k, 3000, 60, kSyn));         // ends 1; id 3 in the same entry
  cache.update(packet(back, 3005, 60, kSynAck));   // ends 2; id 4
  auto out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].flow_id, 1u);
  EXPECT_EQ(out[1].flow_id, 2u);
  cache.update(packet(k, 3010, 100, kPshAck));     // joins flow 3
  cache.flushAll();
  out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  for (const FlowRecord& r : out) EXPECT_EQ(r.flow_id, r.key == k ? 3u : 4u);
}

TEST(FlowCache, FlowIdsFollowBaseStrideAndOffset) {
  FlowCacheOptions o = opts();
  o.flow_id_base = uint64_t{1'765'000'000'000} << 16;  // a live base: start ms << 16
  o.flow_id_stride = 3;
  o.flow_id_offset = 2;
  FlowCache cache(o);
  for (uint16_t port = 1; port <= 4; ++port) cache.update(packet(udpKey(1, port), port));
  cache.flushAll();
  const auto ids = idsBySourcePort(take(cache));
  const uint64_t base = uint64_t{1'765'000'000'000} << 16;
  EXPECT_EQ(ids.at(1), std::vector<uint64_t>{base + 2});
  EXPECT_EQ(ids.at(2), std::vector<uint64_t>{base + 5});
  EXPECT_EQ(ids.at(3), std::vector<uint64_t>{base + 8});
  EXPECT_EQ(ids.at(4), std::vector<uint64_t>{base + 11});
}

TEST(FlowCache, UdpPacketWithFinBitsIsNotTreatedAsTcp) {
  FlowCache cache(opts());
  cache.update(packet(udpKey(1, 1), 0, 60, 0x01));
  EXPECT_TRUE(take(cache).empty());
  EXPECT_EQ(cache.activeFlows(), 1u);
}

TEST(FlowCache, EvictsLeastRecentlySeenWhenFull) {
  FlowCache cache(opts(600'000, 60'000, 3));
  cache.update(packet(udpKey(1, 1), 1'000));
  cache.update(packet(udpKey(2, 1), 2'000));
  cache.update(packet(udpKey(3, 1), 3'000));
  cache.update(packet(udpKey(1, 1), 30'000));  // flow 1 is now the most recent
  cache.update(packet(udpKey(4, 1), 31'000));  // full: flow 2 must go
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, udpKey(2, 1));
  EXPECT_EQ(out[0].end_reason, FlowEndReason::kLackOfResources);
  EXPECT_EQ(cache.counters().evicted, 1u);
  EXPECT_EQ(cache.activeFlows(), 3u);
}

TEST(FlowCache, FloodOfNewFlowsStaysWithinTheBoundAndLosesNoPacket) {
  FlowCache cache(opts(60'000, 15'000, 100));
  uint64_t packets_out = 0;
  for (uint32_t i = 0; i < 10'000; ++i) {
    cache.update(packet(udpKey(static_cast<uint8_t>(i), static_cast<uint16_t>(i)), i));
    EXPECT_LE(cache.activeFlows(), 100u);
  }
  cache.flushAll();
  for (const auto& r : take(cache)) packets_out += r.packets;
  EXPECT_EQ(packets_out, 10'000u);
  EXPECT_EQ(cache.counters().evicted, 9'900u);
}

TEST(FlowCache, TableGrowsAndStillFindsEveryFlow) {
  FlowCacheOptions o = opts(600'000, 600'000, 1'000'000);
  o.tcp_end_timeout_ms = 0;  // the RST flows below are removed at once
  FlowCache cache(o);
  auto key = [](uint32_t i) {
    FlowKey k = udpKey(static_cast<uint8_t>(i), static_cast<uint16_t>(i >> 8));
    k.dst_addr[3] = static_cast<uint8_t>(i >> 24);
    return k;
  };
  for (uint32_t i = 0; i < 200'000; ++i) cache.update(packet(key(i), 1, 10));
  for (uint32_t i = 0; i < 200'000; ++i) cache.update(packet(key(i), 2, 20));
  EXPECT_EQ(cache.activeFlows(), 200'000u);
  EXPECT_EQ(cache.counters().flows_created, 200'000u);
  // Remove every other flow (backward-shift deletion), then look the rest up again.
  for (uint32_t i = 0; i < 200'000; i += 2) {
    FlowKey k = key(i);
    k.protocol = 6;
    cache.update(packet(k, 3, 40, 0x04));  // a different key: new TCP flow ended by RST
  }
  EXPECT_EQ(cache.activeFlows(), 200'000u);
  for (uint32_t i = 0; i < 200'000; ++i) cache.update(packet(key(i), 4, 30));
  EXPECT_EQ(cache.counters().flows_created, 300'000u);
  cache.flushAll();
  auto out = take(cache);
  size_t udp = 0;
  for (const auto& r : out) {
    if (r.key.protocol != 17) continue;
    ++udp;
    EXPECT_EQ(r.packets, 3u);
    EXPECT_EQ(r.octets, 60u);
  }
  EXPECT_EQ(udp, 200'000u);
}

TEST(FlowCache, ExpiryWorkPerCallIsBounded) {
  FlowCacheOptions o = opts(60'000, 1'000, 100'000);
  o.max_expiry_work = 1000;
  FlowCache cache(o);
  for (uint32_t i = 0; i < 50'000; ++i) cache.update(packet(udpKey(static_cast<uint8_t>(i), static_cast<uint16_t>(i >> 8)), 0));
  EXPECT_TRUE(cache.expire(5'000));
  EXPECT_EQ(take(cache).size(), 1000u);
  size_t calls = 1;
  while (cache.expire(5'000)) ++calls;
  EXPECT_EQ(take(cache).size(), 49'000u);
  EXPECT_GE(calls, 49u);
  EXPECT_EQ(cache.activeFlows(), 0u);
}

TEST(FlowCache, ClockJumpsBackwardAndForwardDoNotBreakExpiry) {
  FlowCache cache(opts(60'000, 15'000));
  cache.update(packet(udpKey(1, 1), 1'000'000));
  cache.update(packet(udpKey(2, 1), 500'000));  // 500 s in the past
  cache.expire(1'000'100);  // one wheel tick later
  // The flow from the past is long idle relative to now.
  auto out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, udpKey(2, 1));
  // A jump a day ahead expires the other one in a bounded number of calls.
  int calls = 0;
  while (cache.expire(1'000'000 + 86'400'000ULL)) ++calls;
  EXPECT_LT(calls, 10);
  out = take(cache);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, udpKey(1, 1));
  // And the cache works normally afterwards.
  cache.update(packet(udpKey(3, 1), 1'000 + 86'400'000ULL + 1'000'000));
  cache.expire(1'000 + 86'400'000ULL + 1'000'000 + 16'000);
  EXPECT_EQ(take(cache).size(), 1u);
}

// The entry keeps first/last as 32-bit millisecond offsets from the interval
// start: a span of days is exact, and one the offsets cannot hold (a month
// ahead of the interval start, or first and last 2^32 ms apart: a
// clock jump between two packets with no expire() in between) splits the
// flow with an active-timeout record instead of wrapping.
TEST(FlowCache, TimesStayExactOverDaysAndAJumpOfWeeksSplitsTheFlow) {
  constexpr uint64_t kDay = 86'400'000;
  const uint64_t t0 = 1'700'000'000'000;  // 2023, in Unix milliseconds
  FlowCache cache(opts(7 * kDay, 7 * kDay));
  const auto days = udpKey(1, 1);
  cache.update(packet(days, t0 + 3 * kDay + 7, 100));
  cache.update(packet(days, t0, 200));                // earlier: the new first
  cache.update(packet(days, t0 + 6 * kDay + 1, 300));  // later: the new last
  const auto ahead = udpKey(2, 1);
  cache.update(packet(ahead, t0, 100));
  cache.update(packet(ahead, t0 + 30 * kDay, 200));
  const auto behind = udpKey(3, 1);
  cache.update(packet(behind, t0, 100));
  cache.update(packet(behind, t0 - 60 * kDay, 200));  // first..last over 2^32 ms
  EXPECT_EQ(cache.counters().ended_active, 2u);
  cache.flushAll();
  std::map<std::pair<uint8_t, uint64_t>, FlowRecord> by_key_and_octets;
  for (const FlowRecord& r : take(cache)) by_key_and_octets[{r.key.src_addr[3], r.octets}] = r;
  ASSERT_EQ(by_key_and_octets.size(), 5u);
  const FlowRecord& d = by_key_and_octets.at({1, 600});
  EXPECT_EQ(d.packets, 3u);
  EXPECT_EQ(d.first_ms, t0);
  EXPECT_EQ(d.last_ms, t0 + 6 * kDay + 1);
  for (const uint8_t host : {2, 3}) {
    const FlowRecord& before = by_key_and_octets.at({host, 100});
    const FlowRecord& after = by_key_and_octets.at({host, 200});
    EXPECT_EQ(before.end_reason, FlowEndReason::kActiveTimeout);
    EXPECT_EQ(before.first_ms, t0);
    EXPECT_EQ(before.last_ms, t0);
    EXPECT_EQ(after.end_reason, FlowEndReason::kForcedEnd);
    const uint64_t later = host == 2 ? t0 + 30 * kDay : t0 - 60 * kDay;
    EXPECT_EQ(after.first_ms, later);
    EXPECT_EQ(after.last_ms, later);
    EXPECT_EQ(before.packets + after.packets, 2u);
  }
}

// Found by fuzz_flowcache: update() with packet times more than a wheel turn
// ahead of the last expire() filed flows beyond the wheel's span, where
// evictOne() did not look; a full cache then found no victim and allocated
// past max_flows (an assert in debug builds).
TEST(FlowCache, EvictsWhenPacketTimesRunAheadOfExpiry) {
  FlowCache cache(opts(15'000, 15'000, 1));
  cache.update(packet(udpKey(1, 1), 1'000'000));
  cache.update(packet(udpKey(2, 1), 1'028'784));  // evicts 1; filed > 1 turn ahead
  cache.update(packet(udpKey(3, 1), 1'028'784));  // must evict 2
  EXPECT_EQ(cache.activeFlows(), 1u);
  for (int i = 0; i < 50; ++i) {
    cache.update(packet(udpKey(static_cast<uint8_t>(10 + i), 1), 1'100'000 + 60'000ULL * i));
    ASSERT_LE(cache.activeFlows(), 1u);
  }
  cache.flushAll();
  uint64_t packets = 0;
  for (const auto& r : take(cache)) packets += r.packets;
  EXPECT_EQ(packets, 53u);
  EXPECT_EQ(cache.counters().evicted, 52u);
}

// Found by fuzz_flowcache: a flow filed for a later turn of the wheel was
// stranded when expire() skipped ahead after a clock jump, and then never
// expired at all.
TEST(FlowCache, FlowFiledBeyondTheWheelStillExpiresAfterAClockJump) {
  FlowCache cache(opts(15'000, 15'000));
  cache.update(packet(udpKey(1, 1), 1'000'000));
  cache.update(packet(udpKey(2, 1), 1'050'000));  // 50 s ahead: beyond the wheel's span
  cache.expire(1'100'000);                        // a jump of more than one turn
  cache.expire(1'200'000);
  EXPECT_EQ(cache.activeFlows(), 0u);
  auto out = take(cache);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].key, udpKey(2, 1));
  EXPECT_EQ(out[1].end_reason, FlowEndReason::kIdleTimeout);
}

// A randomized conservation check against a simple model: whatever the
// timeouts, FIN/RST and evictions do, the sums per key must come out exact.
class FlowCacheConservation : public ::testing::TestWithParam<uint64_t> {};

TEST_P(FlowCacheConservation, ConservesPacketsAndOctetsPerKeyUnderRandomTraffic) {
  std::mt19937 rng(1234);
  FlowCacheOptions o = opts(5'000, 2'000, 100);
  o.tcp_end_timeout_ms = GetParam();
  FlowCache cache(o);
  std::map<std::tuple<uint8_t, uint16_t, uint8_t>, std::pair<uint64_t, uint64_t>> truth, seen;
  uint64_t t = 0;
  for (int i = 0; i < 200'000; ++i) {
    t += rng() % 20;
    // A few hot keys (active timeouts) and a long tail (idle expiry, eviction).
    const bool hot = rng() % 10 < 8;
    FlowKey k = hot ? udpKey(static_cast<uint8_t>(rng() % 4), static_cast<uint16_t>(rng() % 5))
                    : udpKey(static_cast<uint8_t>(rng() % 40), static_cast<uint16_t>(rng() % 60));
    k.protocol = (rng() % 2) ? 6 : 17;
    const uint32_t len = 40 + rng() % 1460;
    const uint32_t f = rng() % 400;
    const uint8_t flags = f < 8 ? 0x01 : f < 13 ? 0x04 : f < 18 ? 0x02 : f < 20 ? 0x12 : 0x10;  // FIN RST SYN SYN-ACK
    cache.update(packet(k, t, len, flags));
    auto& tr = truth[{k.src_addr[3], k.src_port, k.protocol}];
    tr.first++;
    tr.second += len;
    if (i % 7 == 0) cache.expire(t);
    for (const auto& r : take(cache)) {
      auto& s = seen[{r.key.src_addr[3], r.key.src_port, r.key.protocol}];
      s.first += r.packets;
      s.second += r.octets;
      ASSERT_GT(r.packets, 0u);
    }
  }
  cache.flushAll();
  for (const auto& r : take(cache)) {
    auto& s = seen[{r.key.src_addr[3], r.key.src_port, r.key.protocol}];
    s.first += r.packets;
    s.second += r.octets;
  }
  EXPECT_EQ(seen, truth);
  const auto& c = cache.counters();
  EXPECT_GT(c.evicted, 0u);
  EXPECT_GT(c.ended_idle + c.ended_active, 0u);
  EXPECT_EQ(c.packets_folded, 200'000u);
  EXPECT_GT(c.ended_tcp, 0u);
  EXPECT_EQ(c.records, c.ended_idle + c.ended_active + c.ended_tcp + c.evicted + c.flushed);
  if (GetParam() != 0) {
    EXPECT_GT(c.tcp_end_reused, 0u);
    EXPECT_GT(c.tcp_end_cut, 0u);
  }
}

// tcp_end_timeout off, shorter than the idle timeout, and longer (acts as it).
INSTANTIATE_TEST_SUITE_P(TcpEnd, FlowCacheConservation, ::testing::Values(0, 500, 10'000));

}  // namespace
}  // namespace flowfold
