#pragma once
// Token-bucket pacing for datagram transports. A capture file can expire a
// million flows in one burst; a UDP collector (nfcapd) whose socket buffer
// overflows drops them silently. Pacing the sender in wall-clock time costs
// no CPU (the thread sleeps) and keeps the collector whole.

#include <chrono>
#include <cstdint>

namespace flowfold {

class Pacer {
 public:
  /// rate 0 means unlimited. burst is how many sends may go back to back.
  explicit Pacer(uint64_t per_second = 0, uint64_t burst = 64);

  /// Takes one send, sleeping first until half the burst is allowed when
  /// fewer than that are (so waits come once per half burst).
  void acquire();
  /// Takes one send without waiting; false when that would have to wait.
  bool tryAcquire();

  uint64_t rate() const { return per_second_; }

 private:
  using Clock = std::chrono::steady_clock;
  void refill();
  uint64_t per_second_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

}  // namespace flowfold
