// Pacer: a token bucket in wall-clock time. Only lower bounds on waiting are
// asserted (a sleep is never shorter than asked); nothing here times speed.

#include "flowfold/exporters/pacer.h"

#include <gtest/gtest.h>

#include <chrono>

namespace flowfold {
namespace {

TEST(Pacer, UnpacedNeverWaits) {
  Pacer pacer(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(pacer.tryAcquire());
}

TEST(Pacer, TryAcquireTakesTheBurstThenRefusesInsteadOfWaiting) {
  // 10 a second: the burst is one send (at most 5 ms worth, at least one),
  // and the next token is 100 ms away.
  Pacer pacer(10);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(pacer.tryAcquire());
  EXPECT_FALSE(pacer.tryAcquire());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100))
      << "the host stalled for the whole token interval: the refusal above proves nothing";
  pacer.acquire();  // waits for that token
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(90));
}

TEST(Pacer, AWaitLastsUntilHalfTheBurstIsBack) {
  // 10000 a second: the burst is 50 sends (5 ms worth), a token every 100 us.
  Pacer pacer(10000);
  int burst = 0;
  while (pacer.tryAcquire()) ++burst;
  ASSERT_EQ(burst, 50);
  // A few tokens come back (as they do while a caller sends what it was
  // allowed); acquire() must still wait for half the burst, so that the
  // next sends go out together rather than one per wait.
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
  while (std::chrono::steady_clock::now() < spin_until) {
  }
  pacer.acquire();
  for (int i = 0; i < 24; ++i) EXPECT_TRUE(pacer.tryAcquire()) << "send " << i << " after the wait";
}

}  // namespace
}  // namespace flowfold
