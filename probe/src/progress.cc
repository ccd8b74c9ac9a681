#include "flowfold/probe/progress.h"

#include <cstdio>
#include <string>

namespace flowfold {

ProgressBar::ProgressBar(bool enabled, uint64_t total_bytes)
    : enabled_(enabled), total_(total_bytes), start_(Clock::now()), last_draw_(start_) {}

void ProgressBar::update(uint64_t bytes, uint64_t packets) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(250)) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double pps = secs > 0 ? static_cast<double>(packets) / secs : 0;
  char line[160];
  if (total_ > 0) {
    const double frac = bytes >= total_ ? 1.0 : static_cast<double>(bytes) / static_cast<double>(total_);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    std::snprintf(line, sizeof line, "\r[%s] %5.1f%%  %llu packets  %.2f Mpps ", bar.c_str(), frac * 100.0,
                  static_cast<unsigned long long>(packets), pps / 1e6);
  } else {
    std::snprintf(line, sizeof line, "\r%llu packets  %.2f Mpps ", static_cast<unsigned long long>(packets),
                  pps / 1e6);
  }
  std::fputs(line, stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) std::fputs("\r\033[K", stderr);
  drawn_ = false;
}

}  // namespace flowfold
