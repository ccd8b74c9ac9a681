#include "flowfold/exporters/log.h"

#include <atomic>
#include <cstdio>

namespace flowfold {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

void vlog(LogLevel level, const char* tag, const char* fmt, va_list ap) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  char line[2048];
  int n = std::snprintf(line, sizeof line, "flowfold: %s", tag);
  if (n < 0) return;
  std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n), fmt, ap);
  std::fprintf(stderr, "%s\n", line);  // one fprintf call: lines do not interleave
}
}  // namespace

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
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
