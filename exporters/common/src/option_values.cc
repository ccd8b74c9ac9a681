#include "flowfold/exporters/option_values.h"

#include <charconv>
#include <string_view>
#include <utility>

namespace flowfold {

ValueError::ValueError(Kind k, std::string t, std::string d)
    : std::invalid_argument(t + ": " + d), kind(k), text(std::move(t)), detail(std::move(d)) {}

namespace {

[[noreturn]] void expected(const std::string& text, const std::string& what) {
  throw ValueError(ValueError::Kind::kExpected, text, what);
}

[[noreturn]] void problem(const std::string& text, const std::string& what) {
  throw ValueError(ValueError::Kind::kProblem, text, what);
}

// "010", "00": digits after a leading 0.
bool hasLeadingZero(std::string_view digits) { return digits.size() > 1 && digits[0] == '0'; }

constexpr const char* kLeadingZero = "has a leading zero: write the decimal number without it";

}  // namespace

uint64_t parseWholeNumber(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) expected(text, "a whole number");
  if (hasLeadingZero(text)) problem(text, kLeadingZero);
  if (v < min || v > max)
    problem(text, "is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

uint64_t parseDurationMs(const std::string& t, uint64_t min_ms, uint64_t max_ms, uint64_t step_ms) {
  const auto grammar = [&] { expected(t, "a duration such as 15, 15s, 500ms or 2m"); };
  size_t i = 0;
  uint64_t whole = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
    whole = whole * 10 + static_cast<uint64_t>(t[i++] - '0');
    // Bounded so that whole * 86'400'000 (days) cannot wrap around.
    if (whole > 100'000'000'000ull) problem(t, "is far too long");
  }
  if (i == 0) grammar();
  if (hasLeadingZero(std::string_view(t).substr(0, i))) problem(t, kLeadingZero);
  uint64_t fraction = 0, fraction_scale = 1;
  if (i < t.size() && t[i] == '.') {
    const size_t fraction_start = ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (i - fraction_start >= 9) problem(t, "has more decimals than it can mean");
      fraction = fraction * 10 + static_cast<uint64_t>(t[i++] - '0');
      fraction_scale *= 10;
    }
    if (i == fraction_start) grammar();
  }
  const std::string unit = t.substr(i);
  uint64_t factor = 1000;
  if (unit == "ms") factor = 1;
  else if (unit == "s" || unit.empty()) factor = 1000;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit == "d") factor = 86'400'000;
  else if (unit.find_first_of("0123456789") != std::string::npos) grammar();  // 0x10, 1e3: not decimal
  else throw ValueError(ValueError::Kind::kUnknownUnit, t, unit);
  const uint64_t fraction_ms_scaled = fraction * factor;  // < 10^9 * 8.64e7: fits
  if (fraction_ms_scaled % fraction_scale != 0) problem(t, "is finer than a millisecond");
  const uint64_t ms = whole * factor + fraction_ms_scaled / fraction_scale;  // whole <= 10^11: fits
  if (ms < min_ms || ms > max_ms)
    problem(t, "is out of range [" + std::to_string(min_ms) + " ms, " + std::to_string(max_ms / 1000) + " s]");
  if (ms % step_ms != 0) problem(t, "is not a whole number of seconds, and only whole seconds count here");
  return ms;
}

bool parseBoolean(const std::string& t) {
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  expected(t, "true or false");
}

uint64_t parseByteSize(const std::string& text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end == text.data()) expected(text, "a size such as 512M or 1G");
  if (hasLeadingZero(std::string_view(text.data(), static_cast<size_t>(end - text.data()))))
    problem(text, kLeadingZero);
  std::string unit(end, text.data() + text.size());
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  int shift = 0;
  if (unit.empty()) shift = 0;
  else if (unit == "k" || unit == "K") shift = 10;
  else if (unit == "M" || unit == "m") shift = 20;
  else if (unit == "G" || unit == "g") shift = 30;
  else if (unit == "T" || unit == "t") shift = 40;
  else throw ValueError(ValueError::Kind::kUnknownUnit, text, unit);
  if (v > (UINT64_MAX >> shift)) problem(text, "is too large");
  const uint64_t bytes = v << shift;
  if (bytes < min || bytes > max)
    problem(text, "is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "] bytes");
  return bytes;
}

}  // namespace flowfold
