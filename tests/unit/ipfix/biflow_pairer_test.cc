// The biflow pairing rules (biflow_pairer.h), on hand-built records.
#include "biflow_pairer.h"

#include <gtest/gtest.h>

#include <vector>

namespace flowfold::ipfix {
namespace {

FlowRecord flow(uint8_t protocol, uint16_t src_port, uint16_t dst_port, uint64_t first_ms, uint8_t tcp_flags = 0) {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = protocol;
  r.key.src_addr = {10, 0, 0, 1};
  r.key.dst_addr = {10, 0, 0, 2};
  r.key.src_port = src_port;
  r.key.dst_port = dst_port;
  r.packets = 1;
  r.octets = 100 + src_port;
  r.first_ms = first_ms;
  r.last_ms = first_ms + 10;
  r.tcp_flags = tcp_flags;
  r.end_reason = FlowEndReason::kIdleTimeout;
  return r;
}

// The other direction, addresses and ports swapped by hand.
FlowRecord back(const FlowRecord& r, uint64_t first_ms, uint8_t tcp_flags = 0) {
  FlowRecord b = r;
  b.key.src_addr = r.key.dst_addr;
  b.key.dst_addr = r.key.src_addr;
  b.key.src_port = r.key.dst_port;
  b.key.dst_port = r.key.src_port;
  b.octets = r.octets + 1;
  b.first_ms = first_ms;
  b.last_ms = first_ms + 10;
  b.tcp_flags = tcp_flags;
  return b;
}

TEST(BiflowPairer, ReverseKeySwapsEndsAndPairsIcmpRequestsWithReplies) {
  const FlowRecord tcp = flow(6, 40000, 443, 0);
  EXPECT_EQ(reverseKey(tcp.key), back(tcp, 0).key);
  EXPECT_EQ(reverseKey(reverseKey(tcp.key)), tcp.key);
  FlowRecord echo = flow(1, 0, 8 * 256, 0);  // ICMP echo request: type 8, code 0
  FlowKey reply = echo.key;
  std::swap(reply.src_addr, reply.dst_addr);
  reply.dst_port = 0;  // echo reply
  EXPECT_EQ(reverseKey(echo.key), reply);
  EXPECT_EQ(reverseKey(reply), echo.key);
  FlowRecord unreachable = flow(1, 0, 3 * 256 + 3, 0);  // no reply type: only the addresses swap
  FlowKey other = unreachable.key;
  std::swap(other.src_addr, other.dst_addr);
  EXPECT_EQ(reverseKey(unreachable.key), other);
  FlowRecord echo6 = flow(58, 0, 128 * 256, 0);
  echo6.key.ip_version = 6;
  EXPECT_EQ(reverseKey(echo6.key).dst_port, 129 * 256);
}

TEST(BiflowPairer, InitiatorIsTheSideThatAloneSentASyn) {
  // The SYN side started later in the records (its SYN was retransmitted
  // after the other side's first packet was seen): the SYN decides.
  const FlowRecord client = flow(6, 40000, 443, 500, 0x02 | 0x10);
  const FlowRecord server = back(client, 100, 0x10);
  EXPECT_EQ(pairRecords(server, client).initiator.key, client.key);
  EXPECT_EQ(pairRecords(client, server).initiator.key, client.key);
}

TEST(BiflowPairer, InitiatorIsTheFirstPacketWhenBothOrNeitherSentASyn) {
  const FlowRecord a = flow(6, 40000, 443, 100, 0x02 | 0x10);
  const FlowRecord b = back(a, 101, 0x12);
  EXPECT_EQ(pairRecords(b, a).initiator.key, a.key);
  const FlowRecord u = flow(17, 5353, 53, 200);
  const FlowRecord v = back(u, 150);
  EXPECT_EQ(pairRecords(u, v).initiator.key, v.key);
  EXPECT_EQ(pairRecords(u, v).responder.key, u.key);
}

TEST(BiflowPairer, AtTheSameMillisecondTheHigherSourcePortInitiates) {
  const FlowRecord client = flow(6, 51000, 443, 100, 0x12);
  const FlowRecord server = back(client, 100, 0x12);
  EXPECT_EQ(pairRecords(server, client).initiator.key, client.key);
  EXPECT_EQ(pairRecords(client, server).initiator.key, client.key);
}

TEST(BiflowPairer, TheNextIntervalOfAConnectionKeepsItsInitiator) {
  BiflowPairer pairer(5'000, 100);
  std::vector<Biflow> out;
  FlowRecord client = flow(6, 40000, 443, 100, 0x02 | 0x10);
  client.end_reason = FlowEndReason::kActiveTimeout;  // the connection goes on
  pairer.add(std::vector<FlowRecord>{client, back(client, 101, 0x12 | 0x10)}, 60'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].initiator.key, client.key);
  // The next active-timeout interval: no SYN, and the server's first packet
  // of it came first.
  out.clear();
  FlowRecord later = client;
  later.tcp_flags = 0x10;
  later.first_ms = 60'050;
  pairer.add(std::vector<FlowRecord>{later, back(client, 60'010, 0x10)}, 120'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].initiator.key, client.key);
  // Without that memory the first packet decides.
  EXPECT_EQ(pairRecords(later, back(client, 60'010, 0x10)).initiator.key, back(client, 0).key);
}

TEST(BiflowPairer, EachSideKeepsItsOwnEndReason) {
  FlowRecord a = flow(6, 40000, 443, 100, 0x02);
  FlowRecord b = back(a, 110, 0x12);
  a.end_reason = FlowEndReason::kEndOfFlow;
  b.end_reason = FlowEndReason::kIdleTimeout;
  const Biflow f = pairRecords(b, a);
  EXPECT_EQ(f.initiator.end_reason, FlowEndReason::kEndOfFlow);  // a sent the only SYN
  EXPECT_EQ(f.responder.end_reason, FlowEndReason::kIdleTimeout);
  EXPECT_EQ(f.direction, BiflowDirection::kInitiator);
  // On the wire: flowEndReason the initiator's, reverseFlowEndReason the responder's.
  Ipv4BiflowRecord r{};
  writeBiflowRecord(f.initiator, &f.responder, f.direction, FlowDirection::kNone, r);
  EXPECT_EQ(r.flow.end_reason, 3);
  EXPECT_EQ(r.rev.end_reason, 1);
  EXPECT_EQ(r.bi.biflow_direction, 1);
  writeBiflowRecord(f.initiator, nullptr, f.direction, FlowDirection::kNone, r);
  EXPECT_EQ(r.rev.end_reason, 0);  // heard one way only: no reverse side
}

TEST(BiflowPairer, AOneSidedRecordOfTheSideThatDidNotInitiateSaysSo) {
  BiflowPairer pairer(5'000, 100);
  std::vector<Biflow> out;
  FlowRecord client = flow(6, 40000, 443, 100, 0x02 | 0x10);
  client.end_reason = FlowEndReason::kActiveTimeout;
  pairer.add(std::vector<FlowRecord>{client, back(client, 101, 0x12 | 0x10)}, 60'000, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].initiator.key, client.key);
  // The next interval: only the server sends (the client is silent).
  out.clear();
  pairer.add(std::vector<FlowRecord>{back(client, 60'010, 0x10)}, 120'000, out);
  pairer.flushAll(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].paired);
  EXPECT_EQ(out[0].initiator.key, back(client, 0).key);
  EXPECT_EQ(out[0].direction, BiflowDirection::kReverseInitiator);
  // And only the client, in the interval after: its own side, direction 1.
  out.clear();
  FlowRecord later = client;
  later.first_ms = 180'010;
  pairer.add(std::vector<FlowRecord>{later}, 240'000, out);
  pairer.flushAll(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].direction, BiflowDirection::kInitiator);
}

TEST(BiflowPairer, RecordsWaitForTheirReverseUpToTheWaitThenGoAlone) {
  BiflowPairer pairer(5'000, 100);
  std::vector<Biflow> out;
  const FlowRecord a = flow(17, 1000, 53, 0);
  const FlowRecord lonely = flow(17, 2000, 53, 0);
  pairer.add(std::vector<FlowRecord>{a, lonely}, 10'000, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(pairer.waiting(), 2u);
  pairer.add(std::vector<FlowRecord>{back(a, 1)}, 14'000, out);  // 4 s later: pairs
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].paired);
  EXPECT_EQ(out[0].initiator.key, a.key);  // its first packet came first
  EXPECT_EQ(out[0].responder.key, back(a, 1).key);
  out.clear();
  pairer.add({}, 15'000, out);  // exactly the wait: not over yet
  EXPECT_TRUE(out.empty());
  pairer.add({}, 15'001, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].paired);
  EXPECT_EQ(out[0].initiator.key, lonely.key);
  EXPECT_EQ(out[0].direction, BiflowDirection::kInitiator);  // nothing remembered: its own first packet
  EXPECT_EQ(pairer.waiting(), 0u);
}

TEST(BiflowPairer, ASecondRecordOfTheSameKeySendsTheFirstAlone) {
  BiflowPairer pairer(5'000, 100);
  std::vector<Biflow> out;
  FlowRecord first = flow(6, 1000, 80, 0);
  FlowRecord next = first;
  next.octets = 9;  // the next active-timeout interval of the same flow
  pairer.add(std::vector<FlowRecord>{first, next}, 0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].initiator.octets, first.octets);
  EXPECT_FALSE(out[0].paired);
  out.clear();
  pairer.add(std::vector<FlowRecord>{back(first, 3)}, 1, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].paired);
  EXPECT_EQ(out[0].initiator.octets + out[0].responder.octets, next.octets + back(first, 3).octets);
}

TEST(BiflowPairer, BoundedWaitingSendsTheOldestAloneAndFlushSendsTheRest) {
  BiflowPairer pairer(60'000, 3);
  std::vector<Biflow> out;
  std::vector<FlowRecord> records;
  for (uint16_t p = 1; p <= 5; ++p) records.push_back(flow(17, p, 53, 0));
  pairer.add(records, 0, out);
  ASSERT_EQ(out.size(), 2u);  // beyond 3 waiting, the oldest two
  EXPECT_EQ(out[0].initiator.key.src_port, 1);
  EXPECT_EQ(out[1].initiator.key.src_port, 2);
  out.clear();
  pairer.flushAll(out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].initiator.key.src_port, 3);
  EXPECT_EQ(out[2].initiator.key.src_port, 5);
  EXPECT_EQ(pairer.waiting(), 0u);
}

TEST(BiflowPairer, AFlowThatIsItsOwnReverseGoesOutAtOnce) {
  BiflowPairer pairer(5'000, 100);
  std::vector<Biflow> out;
  FlowRecord self = flow(17, 7, 7, 0);
  self.key.dst_addr = self.key.src_addr;
  pairer.add(std::vector<FlowRecord>{self}, 0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].paired);
}

}  // namespace
}  // namespace flowfold::ipfix
