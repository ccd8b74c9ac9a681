#include "flowfold/flowcache/flow_key.h"

#include <gtest/gtest.h>

#include <unordered_set>
#include <vector>

namespace flowfold {
namespace {

TEST(FlowKey, EqualKeysHashEqual) {
  FlowKey a;
  a.ip_version = 4;
  a.protocol = 17;
  a.src_addr[0] = 10;
  a.src_port = 53;
  FlowKey b = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(hashFlowKey(a), hashFlowKey(b));
}

// Restores the process's seed after a test that changes it.
struct SeedGuard {
  uint64_t saved = flowHashSeed();
  ~SeedGuard() { setFlowHashSeed(saved); }
};

TEST(FlowKey, TheSeedChangesEveryHashAndTheSameSeedGivesTheSameHash) {
  SeedGuard guard;
  FlowKey k;
  k.ip_version = 6;
  k.src_port = 443;
  setFlowHashSeed(1);
  const uint64_t with_1 = hashFlowKey(k);
  setFlowHashSeed(2);
  EXPECT_NE(hashFlowKey(k), with_1);
  setFlowHashSeed(1);
  EXPECT_EQ(hashFlowKey(k), with_1);
}

TEST(FlowKey, KeysCraftedToCollideUnderOneSeedSpreadUnderAnother) {
  // An attacker who knew the hash would send flows that share a home slot.
  // Find such a set for seed 1 (home = low 12 bits == 0), then show that
  // under another seed they spread like any keys.
  SeedGuard guard;
  setFlowHashSeed(1);
  std::vector<FlowKey> crafted;
  FlowKey k;
  k.ip_version = 4;
  k.protocol = 6;
  for (uint32_t i = 0; crafted.size() < 64; ++i) {
    k.src_addr[2] = static_cast<uint8_t>(i >> 16);
    k.src_addr[3] = static_cast<uint8_t>(i >> 8);
    k.src_port = static_cast<uint16_t>(i);
    if ((hashFlowKey(k) & 0xFFF) == 0) crafted.push_back(k);
  }
  setFlowHashSeed(0x5eed5eed5eed5eedULL);
  std::unordered_set<uint64_t> homes;
  for (const FlowKey& c : crafted) homes.insert(hashFlowKey(c) & 0xFFF);
  EXPECT_GE(homes.size(), 60u);  // 64 keys over 4096 slots: a handful of collisions at most
}

TEST(FlowKey, EveryByteChangesTheHash) {
  FlowKey base;
  const uint64_t h0 = hashFlowKey(base);
  for (size_t i = 0; i < sizeof(FlowKey); ++i) {
    FlowKey k = base;
    reinterpret_cast<uint8_t*>(&k)[i] = 1;
    EXPECT_NE(hashFlowKey(k), h0) << "byte " << i;
  }
}

TEST(FlowKey, SequentialPortsSpreadOverLowBits) {
  // The table uses the low bits as the home slot: nearby keys must not collide.
  std::unordered_set<uint64_t> homes;
  FlowKey k;
  k.ip_version = 4;
  for (uint16_t p = 0; p < 4096; ++p) {
    k.src_port = p;
    homes.insert(hashFlowKey(k) & 0xFFFF);
  }
  EXPECT_GT(homes.size(), 3900u);
}

TEST(FlowKey, FormatsBothFamilies) {
  std::array<uint8_t, 16> v4{192, 0, 2, 1};
  EXPECT_EQ(formatAddress(v4, 4), "192.0.2.1");
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  EXPECT_EQ(formatAddress(v6, 6), "2001:db8::1");
}

}  // namespace
}  // namespace flowfold
