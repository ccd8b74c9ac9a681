#include "flowfold/flowcache/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace flowfold {
namespace {

std::vector<uint64_t> selectedPositions(Sampler& s, uint64_t packets) {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < packets; ++i)
    if (s.select()) out.push_back(i);
  return out;
}

TEST(Sampler, CountModeSelectsTheFirstOfEveryN) {
  for (const uint32_t n : {2u, 3u, 10u, 1000u}) {
    Sampler s({n, SamplingMode::kCount});
    const std::vector<uint64_t> got = selectedPositions(s, 10'000);
    std::vector<uint64_t> want;
    for (uint64_t i = 0; i < 10'000; i += n) want.push_back(i);
    EXPECT_EQ(got, want) << n;
    EXPECT_EQ(s.passedOver(), 10'000 - want.size()) << n;
  }
}

TEST(Sampler, IntervalOneSelectsEveryPacket) {
  for (const SamplingMode mode : {SamplingMode::kCount, SamplingMode::kRandom}) {
    Sampler s({1, mode});
    EXPECT_EQ(selectedPositions(s, 1000).size(), 1000u);
    EXPECT_EQ(s.passedOver(), 0u);
  }
}

// Each packet is selected with probability 1/N: the number selected out of
// P is binomial; five standard deviations either side, and two seeds must
// not select the same packets.
TEST(Sampler, RandomModeSelectsOneInNOnAverage) {
  constexpr uint64_t kPackets = 2'000'000;
  for (const uint32_t n : {10u, 100u, 1000u}) {
    Sampler a({n, SamplingMode::kRandom}, 1), b({n, SamplingMode::kRandom}, 2);
    const auto selected = selectedPositions(a, kPackets);
    const double p = 1.0 / n, mean = kPackets * p, sd = std::sqrt(kPackets * p * (1 - p));
    EXPECT_LT(std::abs(static_cast<double>(selected.size()) - mean), 5 * sd) << n;
    EXPECT_EQ(a.passedOver() + selected.size(), kPackets);
    EXPECT_NE(selected, selectedPositions(b, kPackets)) << n;
  }
}

TEST(Sampler, ModesParseByName) {
  SamplingMode m = SamplingMode::kCount;
  EXPECT_TRUE(parseSamplingMode("random", m));
  EXPECT_EQ(m, SamplingMode::kRandom);
  EXPECT_TRUE(parseSamplingMode("count", m));
  EXPECT_EQ(m, SamplingMode::kCount);
  EXPECT_FALSE(parseSamplingMode("Random", m));
  EXPECT_FALSE(parseSamplingMode("", m));
}

}  // namespace
}  // namespace flowfold
