#pragma once
// Minimal printf-style logging to stderr (the journal picks it up under
// systemd). Levels: error, warn, info, debug. Thread-safe per line.

#include <cstdarg>

namespace flowfold {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void setLogLevel(LogLevel level);
LogLevel logLevel();

/// Sends log lines to syslog (facility daemon) instead of stderr.
void logToSyslog(bool enabled);

/// Under systemd, stderr is a stream to the journal, which systemd names in
/// $JOURNAL_STREAM (device:inode). When stderr is that stream, each line
/// starts with its priority as the journal reads it ("<3>" error, "<4>"
/// warning, "<6>" info, "<7>" debug), so `journalctl -p err` shows the
/// errors. Looked at once, at start-up (and again by tests); returns whether
/// it is so.
bool detectJournalStream();

/// Lets a recurring condition (collector down, interface flapping) log at
/// most `burst` lines per `interval_s`; the next line after a quiet spell says
/// how many were suppressed. Not thread-safe: one per call site and thread.
class LogRateLimiter {
 public:
  explicit LogRateLimiter(unsigned burst = 5, unsigned interval_s = 60) : burst_(burst), interval_s_(interval_s) {}
  /// True when this occurrence may be logged; `suppressed` is how many were
  /// swallowed since the last logged one.
  bool allow(unsigned long long& suppressed);

 private:
  unsigned burst_, interval_s_;
  long long window_start_ = -1;
  unsigned in_window_ = 0;
  unsigned long long suppressed_ = 0;
};

void logError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logWarn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logInfo(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logDebug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace flowfold
