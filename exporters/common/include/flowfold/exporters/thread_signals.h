#pragma once
// Threads that do I/O for exporters leave the process's signals (SIGINT,
// SIGTERM, SIGHUP, SIGUSR1) to the thread that waits for them. Caught on
// another thread, a signal interrupts whatever system call that thread is in:
// a sendmmsg() that has sent part of its messages returns early, which looks
// like an ICMP refusal (udp_sender.cc), and a blocking call returns EINTR.

#include <pthread.h>
#include <signal.h>

namespace flowfold {

/// Called first thing in a thread that must not take the process's signals.
inline void leaveProcessSignalsToOtherThreads() {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace flowfold
