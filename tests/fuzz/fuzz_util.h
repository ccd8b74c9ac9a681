#pragma once
// Helpers shared by the fuzz targets: a check that aborts (so libFuzzer
// records the input as a crash) and big-endian reads for the wire parsers.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

#define FUZZ_CHECK_EQ(a, b)                                                                   \
  do {                                                                                        \
    const auto fuzz_a_ = (a);                                                                 \
    const auto fuzz_b_ = (b);                                                                 \
    if (!(fuzz_a_ == fuzz_b_)) {                                                              \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s == %s (%llu vs %llu)\n", __FILE__,   \
                   __LINE__, #a, #b, static_cast<unsigned long long>(fuzz_a_),                \
                   static_cast<unsigned long long>(fuzz_b_));                                 \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace fuzz {

inline uint64_t readBE(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace fuzz
