#pragma once
// CPU time of the calling thread, for the stats line's per-thread figures:
// which of the packet and export threads a run's CPU went to is the first
// question about its speed (bench/PROFILE.md), and the answer should not
// need a profiler.

#include <time.h>

#include <cstdint>

namespace flowfold {

/// Nanoseconds of CPU (user + system) the calling thread has used so far.
inline uint64_t threadCpuNs() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace flowfold
