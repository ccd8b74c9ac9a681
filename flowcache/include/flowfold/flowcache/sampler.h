#pragma once
// Packet sampling 1:N in front of the flow cache (`sampling:`, --sampling):
// a link too fast to see whole is metered on one packet in N, and the rate
// goes to the collectors in options data (samplingPacketInterval and
// samplingPacketSpace, or samplingInterval, as they read it) so that they can
// scale the counts back up. The records themselves keep the raw counts of
// the packets selected, as collectors expect.
//
// Two selectors (RFC 5475 section 5):
//  - count: systematic count-based, deterministic: the 1st packet of every
//    N read (packets 1, N+1, 2N+1, ... of a capture);
//  - random: each packet with probability 1/N, independently (uniform
//    probabilistic). The gaps between selected packets are drawn from the
//    geometric distribution, which is the same selection with one random
//    number per selected packet instead of one per packet.
// Both are a countdown on the packet path: a decrement and a branch.

#include <cstdint>
#include <random>
#include <string_view>

namespace flowfold {

enum class SamplingMode : uint8_t { kCount, kRandom };

struct SamplingOptions {
  uint32_t interval = 1;  ///< N: one packet in N is metered; 1 = every packet (off)
  SamplingMode mode = SamplingMode::kCount;
  bool enabled() const { return interval > 1; }
};

/// "count" or "random"; false for anything else.
inline bool parseSamplingMode(std::string_view text, SamplingMode& mode) {
  if (text == "count") mode = SamplingMode::kCount;
  else if (text == "random") mode = SamplingMode::kRandom;
  else return false;
  return true;
}

inline const char* samplingModeName(SamplingMode mode) {
  return mode == SamplingMode::kRandom ? "random" : "count";
}

/// One capture's selector. One thread calls select().
class Sampler {
 public:
  /// seed: random mode only (a capture's own, so that two captures do not
  /// select in step).
  explicit Sampler(SamplingOptions options, uint64_t seed = std::random_device{}())
      : options_(options), rng_(seed), gap_(options.interval > 1 ? 1.0 / options.interval : 1.0) {
    countdown_ = options_.mode == SamplingMode::kRandom ? nextGap() : 1;
  }

  /// True for a packet that goes on to the decoder and the flow cache; a
  /// packet passed over is counted (passedOver()).
  [[gnu::always_inline]] bool select() {
    if (--countdown_ != 0) [[likely]] {
      ++passed_over_;
      return false;
    }
    countdown_ = nextGap();
    return true;
  }

  /// Packets select() turned away.
  uint64_t passedOver() const { return passed_over_; }
  const SamplingOptions& options() const { return options_; }

 private:
  uint64_t nextGap() {
    if (options_.mode == SamplingMode::kCount) return options_.interval;
    // Failures before the next success, plus that success.
    return gap_(rng_) + 1;
  }

  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::geometric_distribution<uint64_t> gap_;
  uint64_t countdown_ = 1;
  uint64_t passed_over_ = 0;
};

}  // namespace flowfold
