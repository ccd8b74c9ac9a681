// IP fragments: the first fragment's ports are remembered and given to the
// later fragments of the same datagram; plus the FragmentTable on its own.

#include <gtest/gtest.h>

#include "decoder_test_util.h"

namespace flowfold::probe::test {
namespace {

// A 40-byte UDP datagram (1234 -> 53) in two fragments: 16 + 24 bytes.
Bytes ipv4Fragment(uint8_t id_lo, uint8_t flags_offset_hi, uint8_t offset_lo, Bytes payload) {
  Bytes header = {
      0x45, 0x00, 0x00, static_cast<uint8_t>(20 + payload.size()),  // total length
      0xbe, id_lo, flags_offset_hi, offset_lo,                       // id 0xbe.., flags, offset
      0x40, 0x11, 0x00, 0x00,                                        // TTL 64, UDP
      0xc0, 0x00, 0x02, 0x01,                                        // 192.0.2.1
      0xc6, 0x33, 0x64, 0x02,                                        // 198.51.100.2
  };
  return cat({header, payload});
}
const Bytes kFirstPayload = {0x04, 0xd2, 0x00, 0x35, 0x00, 0x28, 0x00, 0x00,  // UDP 1234 -> 53, length 40
                             1, 2, 3, 4, 5, 6, 7, 8};
const Bytes kLaterPayload(24, 0xff);  // would read as ports 65535 if taken for a header

const Bytes kFirst = ipv4Fragment(0xef, 0x20, 0x00, kFirstPayload);  // MF, offset 0
const Bytes kLater = ipv4Fragment(0xef, 0x00, 0x02, kLaterPayload);  // offset 2 * 8 = 16, last

TEST(DecoderFragments, Ipv4LaterFragmentGetsTheFirstFragmentsPorts) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kFirst, 0, 1000), DecodeStatus::kOk);
  EXPECT_TRUE(h.info.is_fragment);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.info.key.dst_port, 53);
  EXPECT_EQ(h.info.ip_length, 36u);
  FlowKey first_key = h.info.key;

  ASSERT_EQ(h.run(kLater, 0, 1005), DecodeStatus::kOk);
  EXPECT_TRUE(h.info.is_fragment);
  EXPECT_EQ(h.info.key, first_key);  // same flow
  EXPECT_EQ(h.info.ip_length, 44u);
  EXPECT_EQ(h.info.tcp_flags, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2},
                                {"decoded", 2},
                                {"fragments_first", 1},
                                {"fragments_later", 1}}));
}

TEST(DecoderFragments, Ipv4MiddleFragmentsMatchToo) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kFirst), DecodeStatus::kOk);
  Bytes middle = ipv4Fragment(0xef, 0x20, 0x02, Bytes(8, 0xff));  // MF, offset 16
  ASSERT_EQ(h.run(middle), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
  ASSERT_EQ(h.run(kLater), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.decoder.counters().fragments_later, 2u);
  EXPECT_EQ(h.decoder.counters().fragments_unmatched, 0u);
}

TEST(DecoderFragments, Ipv4LaterFragmentWithoutFirstIsUnmatched) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({ethernet(0x08, 0x00), kLater})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 17);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0);
  EXPECT_EQ(h.info.ip_length, 44u);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1},
                                {"decoded", 1},
                                {"fragments_later", 1},
                                {"fragments_unmatched", 1}}));
}

TEST(DecoderFragments, Ipv4FragmentsOfAnotherDatagramDoNotMatch) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({ethernet(0x08, 0x00), kFirst})), DecodeStatus::kOk);
  // Other IP id.
  ASSERT_EQ(h.run(cat({ethernet(0x08, 0x00), ipv4Fragment(0xee, 0x00, 0x02, kLaterPayload)})),
            DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  // Same addresses and id on another VLAN.
  ASSERT_EQ(h.run(cat({ethernet(0x81, 0x00), {0x00, 0x05, 0x08, 0x00}, kLater})),
            DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  // Other source address.
  Bytes other_source = kLater;
  other_source[15] = 0x09;
  ASSERT_EQ(h.run(cat({ethernet(0x08, 0x00), other_source})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.decoder.counters().fragments_unmatched, 3u);
  // The right one still matches.
  ASSERT_EQ(h.run(cat({ethernet(0x08, 0x00), kLater})), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.decoder.counters().fragments_unmatched, 3u);
}

TEST(DecoderFragments, EntriesExpireAfterTheTimeout) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kFirst, 0, 1000), DecodeStatus::kOk);
  ASSERT_EQ(h.run(kLater, 0, 31000), DecodeStatus::kOk);  // exactly 30 s later: still live
  EXPECT_EQ(h.info.key.src_port, 1234);
  ASSERT_EQ(h.run(kLater, 0, 31001), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.decoder.counters().fragments_unmatched, 1u);

  Harness custom(dlt::kRaw, FragmentTableConfig{16, 500});
  ASSERT_EQ(custom.run(kFirst, 0, 1000), DecodeStatus::kOk);
  ASSERT_EQ(custom.run(kLater, 0, 1501), DecodeStatus::kOk);
  EXPECT_EQ(custom.info.key.src_port, 0);
}

TEST(DecoderFragments, FirstFragmentCutBeforeItsPortsIsNotRemembered) {
  Harness h(dlt::kRaw);
  EXPECT_EQ(h.runPrefix(kFirst, 22, 36), DecodeStatus::kTruncated);
  ASSERT_EQ(h.run(kLater), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2},
                                {"decoded", 1},
                                {"truncated_l4", 1},
                                {"fragments_later", 1},
                                {"fragments_unmatched", 1}}));
}

TEST(DecoderFragments, LaterFragmentNeedsOnlyTheFixedHeader) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kFirst), DecodeStatus::kOk);
  ASSERT_EQ(h.runPrefix(kLater, 20, 44), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.info.ip_length, 44u);
}

// IPv6: fixed header -> fragment header -> (fragmentable part) destination
// options -> UDP. The later fragment's fragment header says "next 60", the
// first fragment resolves it to UDP: both must land in the UDP flow.
const Bytes kV6First = cat({ipv6Header(8 + 8 + 12, 44),
                            {60, 0, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78},  // offset 0, M 1, id 0x12345678
                            {17, 0, 1, 4, 0, 0, 0, 0},                    // dest opts -> UDP
                            kUdp1234To53});
const Bytes kV6Later = cat({ipv6Header(8 + 16, 44),
                            {60, 0, 0x00, 0x18, 0x12, 0x34, 0x56, 0x78},  // offset 3 * 8 = 24, M 0
                            Bytes(16, 0xff)});

TEST(DecoderFragments, Ipv6LaterFragmentGetsTheFirstFragmentsPortsAndProtocol) {
  Harness h(dlt::kEn10mb);
  ASSERT_EQ(h.run(cat({ethernet(0x86, 0xdd), kV6First})), DecodeStatus::kOk);
  EXPECT_TRUE(h.info.is_fragment);
  EXPECT_EQ(h.info.key.protocol, 17);
  EXPECT_EQ(h.info.key.src_port, 1234);
  EXPECT_EQ(h.info.ip_length, 68u);
  FlowKey first_key = h.info.key;
  ASSERT_EQ(h.run(cat({ethernet(0x86, 0xdd), kV6Later})), DecodeStatus::kOk);
  EXPECT_TRUE(h.info.is_fragment);
  EXPECT_EQ(h.info.key, first_key);
  EXPECT_EQ(h.info.ip_length, 64u);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 2},
                                {"decoded", 2},
                                {"fragments_first", 1},
                                {"fragments_later", 1}}));
}

TEST(DecoderFragments, Ipv6LaterFragmentWithoutFirstIsUnmatched) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kV6Later), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.protocol, 60);  // what its fragment header says
  EXPECT_EQ(h.info.key.src_port, 0);
  EXPECT_EQ(h.info.key.dst_port, 0);
  EXPECT_EQ(h.counts(), (Counts{{"packets", 1},
                                {"decoded", 1},
                                {"fragments_later", 1},
                                {"fragments_unmatched", 1}}));
}

TEST(DecoderFragments, LastFragmentMakesTheSlotReusableWithoutEviction) {
  Harness h(dlt::kRaw, FragmentTableConfig{4, 30000});  // one bucket of four ways
  for (uint8_t id = 0; id < 4; ++id) {
    ASSERT_EQ(h.run(ipv4Fragment(id, 0x20, 0x00, kFirstPayload), 0, 1000 + id), DecodeStatus::kOk);
  }
  ASSERT_EQ(h.run(ipv4Fragment(2, 0x00, 0x02, kLaterPayload), 0, 1010), DecodeStatus::kOk);
  ASSERT_EQ(h.run(ipv4Fragment(9, 0x20, 0x00, kFirstPayload), 0, 1011), DecodeStatus::kOk);
  EXPECT_EQ(h.decoder.counters().fragments_evicted, 0u);  // id 2 was complete
  ASSERT_EQ(h.run(ipv4Fragment(0, 0x00, 0x02, kLaterPayload), 0, 1012), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);  // the oldest, incomplete, survived
}

TEST(DecoderFragments, Ipv4AndIpv6IdentifiersDoNotCollide) {
  Harness h(dlt::kRaw);
  ASSERT_EQ(h.run(kV6First), DecodeStatus::kOk);
  ASSERT_EQ(h.run(kLater), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);
}

TEST(DecoderFragments, ManyDatagramsEvictTheOldestWhenTheTableIsFull) {
  Harness h(dlt::kRaw, FragmentTableConfig{4, 30000});  // one bucket of four ways
  for (uint8_t id = 0; id < 5; ++id) {
    ASSERT_EQ(h.run(ipv4Fragment(id, 0x20, 0x00, kFirstPayload), 0, 1000 + id), DecodeStatus::kOk);
  }
  EXPECT_EQ(h.decoder.counters().fragments_evicted, 1u);
  ASSERT_EQ(h.run(ipv4Fragment(0, 0x00, 0x02, kLaterPayload), 0, 2000), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 0);  // id 0 was the oldest
  ASSERT_EQ(h.run(ipv4Fragment(4, 0x00, 0x02, kLaterPayload), 0, 2000), DecodeStatus::kOk);
  EXPECT_EQ(h.info.key.src_port, 1234);
}

// ---- FragmentTable -------------------------------------------------------------

FragmentTable::Key tableKey(uint32_t id) {
  FragmentTable::Key key;
  key.src = v4(10, 0, 0, 1);
  key.dst = v4(10, 0, 0, 2);
  key.id = id;
  key.protocol = 17;
  key.ip_version = 4;
  return key;
}

TEST(FragmentTable, CapacityIsRoundedToAPowerOfTwoOfBuckets) {
  EXPECT_EQ(FragmentTable(FragmentTableConfig{4096, 1}).capacity(), 4096u);
  EXPECT_EQ(FragmentTable(FragmentTableConfig{5, 1}).capacity(), 8u);
  EXPECT_EQ(FragmentTable(FragmentTableConfig{0, 1}).capacity(), 4u);
  EXPECT_EQ(FragmentTable().capacity(), 4096u);
}

TEST(FragmentTable, InsertFindRefreshAndExpire) {
  FragmentTable table(FragmentTableConfig{64, 100});
  FragmentTable::Value value;
  EXPECT_FALSE(table.find(tableKey(1), 0, value));
  EXPECT_FALSE(table.insert(tableKey(1), {10, 20, 6}, 1000));
  ASSERT_TRUE(table.find(tableKey(1), 1100, value));
  EXPECT_EQ(value.src_port, 10);
  EXPECT_EQ(value.dst_port, 20);
  EXPECT_EQ(value.protocol, 6);
  EXPECT_FALSE(table.find(tableKey(1), 1101, value));
  // Re-inserting the same key refreshes it and evicts nothing.
  EXPECT_FALSE(table.insert(tableKey(1), {11, 21, 6}, 1050));
  EXPECT_FALSE(table.insert(tableKey(1), {12, 22, 6}, 1090));
  ASSERT_TRUE(table.find(tableKey(1), 1190, value));
  EXPECT_EQ(value.src_port, 12);
  // A clock stepping back a little keeps the entry; far back, it is stale.
  EXPECT_TRUE(table.find(tableKey(1), 1000, value));
  EXPECT_FALSE(table.find(tableKey(1), 5, value));
}

TEST(FragmentTable, FullBucketEvictsTheOldestAndPrefersExpiredSlots) {
  FragmentTable table(FragmentTableConfig{4, 100});  // a single bucket
  for (uint32_t id = 0; id < 4; ++id) {
    EXPECT_FALSE(table.insert(tableKey(id), {static_cast<uint16_t>(id), 0, 17}, 1000 + id));
  }
  EXPECT_TRUE(table.insert(tableKey(4), {4, 0, 17}, 1010));  // evicts id 0 (oldest)
  FragmentTable::Value value;
  EXPECT_FALSE(table.find(tableKey(0), 1010, value));
  for (uint32_t id = 1; id <= 4; ++id) EXPECT_TRUE(table.find(tableKey(id), 1010, value)) << id;
  // Completed datagrams give their slot up first, and that is no eviction.
  EXPECT_TRUE(table.find(tableKey(3), 1011, value, /*last_fragment=*/true));
  EXPECT_TRUE(table.find(tableKey(3), 1012, value));  // stragglers still match
  EXPECT_FALSE(table.insert(tableKey(6), {6, 0, 17}, 1013));
  EXPECT_FALSE(table.find(tableKey(3), 1013, value));
  EXPECT_TRUE(table.find(tableKey(1), 1013, value));  // older, but incomplete
  // Everything expired: a new entry reuses a slot without an eviction.
  EXPECT_FALSE(table.insert(tableKey(5), {5, 0, 17}, 5000));
  EXPECT_TRUE(table.find(tableKey(5), 5000, value));
}

}  // namespace
}  // namespace flowfold::probe::test
