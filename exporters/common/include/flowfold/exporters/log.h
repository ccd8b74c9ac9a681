#pragma once
// Minimal printf-style logging to stderr (the journal picks it up under
// systemd). Levels: error, warn, info, debug. Thread-safe per line.

#include <cstdarg>

namespace flowfold {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void setLogLevel(LogLevel level);
LogLevel logLevel();

void logError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logWarn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logInfo(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void logDebug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace flowfold
