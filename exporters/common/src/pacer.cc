#include "flowfold/exporters/pacer.h"

#include <algorithm>
#include <thread>

namespace flowfold {

Pacer::Pacer(uint64_t per_second, uint64_t burst)
    : per_second_(per_second),
      // The burst never exceeds ~5 ms worth of sends, so a low rate stays smooth.
      burst_(static_cast<double>(std::clamp<uint64_t>(std::min(burst, per_second / 200), 1, burst ? burst : 1))),
      tokens_(burst_),
      last_(Clock::now()) {}

void Pacer::refill() {
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  tokens_ = std::min(burst_, tokens_ + elapsed * static_cast<double>(per_second_));
}

bool Pacer::tryAcquire() {
  if (per_second_ == 0) return true;
  refill();
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

void Pacer::acquire() {
  if (per_second_ == 0) return;
  // Out of tokens: sleep until half the burst is back, not just one token,
  // even when one has come back meanwhile. A sleep per datagram costs a
  // system call and a context switch each; and a caller that sends what it
  // was allowed before waiting (UdpSender) must not be let go with one token:
  // by the time its send returns, one more has come back, and it would go on
  // sending one datagram per system call instead of batches.
  const double want = std::max(1.0, burst_ / 2);
  for (refill(); tokens_ < want; refill()) {
    const double wait_s = (want - tokens_) / static_cast<double>(per_second_);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
  }
  tokens_ -= 1.0;
}

}  // namespace flowfold
