#pragma once
// Runs a test body in a forked child, for steps that cannot be undone in the
// test process itself (setuid, a private network namespace). The child
// reports through its exit status; a throw is kChildThrew.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

namespace flowfold::test_support {

inline constexpr int kChildThrew = 100;
inline constexpr int kChildSkip = 77;

/// Exit status of body() run in a child; -signal when it was killed.
template <class Body>
int runInChild(Body body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1000;
  if (pid == 0) {
    int code = kChildThrew;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    } catch (...) {
    }
    std::fflush(nullptr);
    _exit(code);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace flowfold::test_support
