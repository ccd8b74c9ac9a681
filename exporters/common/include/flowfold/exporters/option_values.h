#pragma once
// The values of settings, read one way wherever they are written: the YAML
// file, the command line, a MySQL sink's keys and DSN query. Whole numbers,
// durations and booleans have one grammar each, here.
//
// A bad value throws ValueError, which says what is wrong with the text but
// not which setting it was given to: each front end puts the setting's name
// to it in its own words ("'retry_max' = 010 has a leading zero ..." in the
// file, "mysql option retry_max: 010 has a leading zero ..." for the sink).

#include <cstdint>
#include <stdexcept>
#include <string>

namespace flowfold {

class ValueError : public std::invalid_argument {
 public:
  enum class Kind {
    kExpected,     // not a value of the kind at all; detail: what was expected ("a whole number")
    kProblem,      // of the kind but refused; detail: why ("is out of range [1, 64]")
    kUnknownUnit,  // a duration with a unit it does not know; detail: that unit
  };
  ValueError(Kind kind, std::string text, std::string detail);
  Kind kind;
  std::string text;  // the value as written
  std::string detail;
};

/// The units a duration may carry, as messages list them.
inline constexpr const char* kDurationUnits = "ms, s, m, h or d";

/// A decimal whole number in [min, max]. "010" is refused: YAML 1.1 readers
/// (and people) take it for octal 8.
uint64_t parseWholeNumber(const std::string& text, uint64_t min, uint64_t max);

/// A decimal number of seconds ("15", "0.5") or one with a unit ("500ms",
/// "15s", "2m", "1h", "7d"), read exactly, digit by digit: strtod would also
/// take "0x10" (16), "1e3", "inf" and " 15". `step_ms` is the finest value
/// the setting can hold (1000 where only whole seconds count): anything finer
/// would be cut off silently, so it is refused.
uint64_t parseDurationMs(const std::string& text, uint64_t min_ms, uint64_t max_ms, uint64_t step_ms = 1);

/// true, yes, on, 1 / false, no, off, 0.
bool parseBoolean(const std::string& text);

/// A size in bytes: a whole number, or one with k, M, G or T (binary
/// multiples: "512M", "1G", "1GiB" and "1GB" all mean 2^30 here, as du -h
/// suggests), in [min, max].
uint64_t parseByteSize(const std::string& text, uint64_t min = 0, uint64_t max = UINT64_MAX);

}  // namespace flowfold
