#include "flowfold/flowcache/flow_key.h"

#include <gtest/gtest.h>

#include <unordered_set>

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
