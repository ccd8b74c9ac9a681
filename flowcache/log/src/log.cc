#include "flowfold/log.h"

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace flowfold {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_syslog{false};
std::atomic<bool> g_journal{false};

void vlog(LogLevel level, const char* tag, const char* fmt, va_list ap) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  if (g_syslog.load(std::memory_order_relaxed)) {
    static const int kPriority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    vsyslog(kPriority[static_cast<int>(level)], fmt, ap);
    return;
  }
  char line[2048];
  static const char* const kJournalPriority[] = {"<3>", "<4>", "<6>", "<7>"};
  const char* priority = g_journal.load(std::memory_order_relaxed) ? kJournalPriority[static_cast<int>(level)] : "";
  int n = std::snprintf(line, sizeof line, "%sflowfold: %s", priority, tag);
  if (n < 0) return;
  std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n), fmt, ap);
  std::fprintf(stderr, "%s\n", line);  // one fprintf call: lines do not interleave
}
}  // namespace

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void logToSyslog(bool enabled) {
  if (enabled && !g_syslog.load()) openlog("flowfold", LOG_PID, LOG_DAEMON);
  g_syslog.store(enabled);
}

bool detectJournalStream() {
  bool journal = false;
  const char* stream = std::getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  struct stat st {};
  if (stream && std::sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && ::fstat(STDERR_FILENO, &st) == 0)
    journal = static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
  g_journal.store(journal);
  return journal;
}

bool LogRateLimiter::allow(unsigned long long& suppressed) {
  const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
  if (window_start_ < 0 || now - window_start_ >= static_cast<long long>(interval_s_)) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ < burst_) {
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}
LogLevel logLevel() { return static_cast<LogLevel>(g_level.load()); }

#define FLOWFOLD_DEFINE_LOG(fn, level, tag) \
  void fn(const char* fmt, ...) {           \
    va_list ap;                             \
    va_start(ap, fmt);                      \
    vlog(level, tag, fmt, ap);              \
    va_end(ap);                             \
  }
FLOWFOLD_DEFINE_LOG(logError, LogLevel::kError, "error: ")
FLOWFOLD_DEFINE_LOG(logWarn, LogLevel::kWarn, "warning: ")
FLOWFOLD_DEFINE_LOG(logInfo, LogLevel::kInfo, "")
FLOWFOLD_DEFINE_LOG(logDebug, LogLevel::kDebug, "debug: ")
#undef FLOWFOLD_DEFINE_LOG

}  // namespace flowfold
