#pragma once
// A one-line progress display for offline runs on a terminal: percent of the
// file, packets, packets per second. Silent when stderr is not a TTY.

#include <chrono>
#include <cstdint>

namespace flowfold {

class ProgressBar {
 public:
  /// enabled: usually isatty(STDERR_FILENO). total_bytes 0 = unknown size.
  ProgressBar(bool enabled, uint64_t total_bytes);
  /// Redraws at most a few times per second.
  void update(uint64_t bytes, uint64_t packets);
  /// Clears the line (before the final summary).
  void finish();
  bool enabled() const { return enabled_; }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  uint64_t total_;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace flowfold
