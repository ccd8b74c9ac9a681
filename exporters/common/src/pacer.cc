#include "flowfold/exporters/pacer.h"

#include <algorithm>
#include <thread>

namespace flowfold {

Pacer::Pacer(uint64_t per_second, uint64_t burst)
    : per_second_(per_second),
      burst_(static_cast<double>(std::max<uint64_t>(burst, 1))),
      tokens_(burst_),
      last_(Clock::now()) {}

void Pacer::acquire() {
  if (per_second_ == 0) return;
  for (;;) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * static_cast<double>(per_second_));
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return;
    }
    const double wait_s = (1.0 - tokens_) / static_cast<double>(per_second_);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
  }
}

}  // namespace flowfold
