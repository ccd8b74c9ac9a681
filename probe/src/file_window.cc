#include "flowfold/probe/file_window.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

namespace flowfold {

namespace {

// The guard's table of mapped windows. The SIGBUS handler reads it without a
// lock (a handler may not take one): an entry is published by storing
// `begin` last and withdrawn by clearing it first.
struct GuardedRange {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> truncated{false};
  std::atomic<bool> in_use{false};
};
GuardedRange g_ranges[FileWindow::kMaxWindows];
struct sigaction g_previous_sigbus;
std::once_flag g_install_once;
uintptr_t g_page_size = 4096;

void onSigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (GuardedRange& range : g_ranges) {
    const uintptr_t begin = range.begin.load(std::memory_order_acquire);
    const uintptr_t end = range.end.load(std::memory_order_relaxed);
    if (begin == 0 || addr < begin || addr >= end) continue;
    // The file ends before this page now. Zero pages over the rest of the
    // window let the access (and any after it) complete; the reader sees
    // `truncated` and stops there.
    const uintptr_t page = addr & ~(g_page_size - 1);
    void* zeros = mmap(reinterpret_cast<void*>(page), end - page, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (zeros == MAP_FAILED) break;
    range.truncated.store(true, std::memory_order_relaxed);
    return;
  }
  // Not a window's fault: whatever handled SIGBUS before (a sanitizer's), or
  // the default action, taken when the faulting access runs again.
  if ((g_previous_sigbus.sa_flags & SA_SIGINFO) != 0 && g_previous_sigbus.sa_sigaction != nullptr) {
    g_previous_sigbus.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
    return;
  }
  signal(SIGBUS, SIG_DFL);
}

void installGuard() {
  g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction sa {};
  sa.sa_sigaction = onSigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous_sigbus);
}

int acquireSlot() {
  for (int i = 0; i < FileWindow::kMaxWindows; ++i) {
    bool expected = false;
    if (g_ranges[i].in_use.compare_exchange_strong(expected, true)) return i;
  }
  return -1;
}

}  // namespace

const std::atomic<bool> FileWindow::kNeverTruncated{false};

FileWindow::MapResult FileWindow::map(int fd, uint64_t offset, size_t length) {
  unmap();
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return MapResult::kUnavailable;
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (offset >= file_size) return MapResult::kEnd;
  std::call_once(g_install_once, installGuard);
  const int slot = acquireSlot();
  if (slot < 0) return MapResult::kUnavailable;

  const uint64_t start = offset & ~static_cast<uint64_t>(g_page_size - 1);
  const auto bytes = static_cast<size_t>(std::min<uint64_t>(length + (offset - start), file_size - start));
  // MAP_POPULATE: the window's pages are mapped in one call, not faulted in
  // sixteen at a time as the reader reaches them.
  void* m = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, static_cast<off_t>(start));
  if (m == MAP_FAILED) {
    g_ranges[slot].in_use.store(false);
    return MapResult::kUnavailable;
  }
  map_ = static_cast<uint8_t*>(m);
  map_bytes_ = bytes;
  data_ = map_ + (offset - start);
  size_ = bytes - (offset - start);

  GuardedRange& range = g_ranges[slot];
  range.truncated.store(false, std::memory_order_relaxed);
  range.end.store(reinterpret_cast<uintptr_t>(map_) + (bytes + g_page_size - 1) / g_page_size * g_page_size,
                  std::memory_order_relaxed);
  range.begin.store(reinterpret_cast<uintptr_t>(map_), std::memory_order_release);
  slot_ = slot;
  guard_ = &range.truncated;
  return MapResult::kMapped;
}

void FileWindow::unmap() {
  if (map_ == nullptr) return;
  GuardedRange& range = g_ranges[slot_];
  range.begin.store(0, std::memory_order_release);
  range.end.store(0, std::memory_order_relaxed);
  munmap(map_, map_bytes_);
  range.in_use.store(false, std::memory_order_release);
  guard_ = &kNeverTruncated;
  map_ = nullptr;
  map_bytes_ = 0;
  data_ = nullptr;
  size_ = 0;
  slot_ = -1;
}

}  // namespace flowfold
