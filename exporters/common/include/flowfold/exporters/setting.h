#pragma once
// A table of settings: each setting's key in the YAML file, its command-line
// option, the kind of value with its range or choices, and where it goes in
// its target, written once. The probe's own settings (probe/config) and each
// exporter's (ipfixSettings(), netflow9Settings(), textSettings()) are tables
// of this shape, so the file's reader and the command line read every value
// one way: a range or a default cannot differ between the two.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "flowfold/exporters/option_values.h"

namespace flowfold {

struct ValueSpec {
  enum class Kind {
    kWhole,     // parseWholeNumber in [min, max]
    kDuration,  // parseDurationMs in [min, max] ms, a multiple of step ms
    kBoolean,   // parseBoolean
    kChoice,    // one of `choices`
    kName,      // a file or interface name: not empty
    kText,      // anything
    kBytes,     // parseByteSize in [min, max]
  };
  Kind kind = Kind::kText;
  uint64_t min = 0, max = 0, step = 1;
  std::span<const std::string_view> choices = {};
  std::string_view noun = {};  // kChoice, in the file's message: "unknown log level 'loud'"
};

/// A value read and checked by the spec, for the setter.
struct SettingValue {
  uint64_t number = 0;  // kWhole, kDuration (ms)
  bool boolean = false;
  std::string text;     // kChoice, kName, kText
};

template <class Target>
struct Setting {
  std::string_view section;  // the mapping it is under in the file: "cache", "" = top level (or the exporter's own)
  std::string_view key;      // its key there
  std::string_view option;   // its command-line option, "" = the file only
  ValueSpec value;
  void (*apply)(Target&, const SettingValue&);
};

/// Reads `text` as `spec` says. Throws ValueError (option_values.h); a
/// choice not in the list throws ValueError(kExpected, text, "").
SettingValue parseSettingValue(const ValueSpec& spec, const std::string& text);

/// The entry of `table` with this command-line option; nullptr when none.
template <class Target>
const Setting<Target>* settingForOption(std::span<const Setting<Target>> table, std::string_view option) {
  if (option.empty()) return nullptr;
  for (const Setting<Target>& s : table)
    if (s.option == option) return &s;
  return nullptr;
}

/// The entry of `table` with this section and key; nullptr when none.
template <class Target>
const Setting<Target>* settingForKey(std::span<const Setting<Target>> table, std::string_view section,
                                     std::string_view key) {
  for (const Setting<Target>& s : table)
    if (s.section == section && s.key == key) return &s;
  return nullptr;
}

namespace value_spec {

constexpr ValueSpec whole(uint64_t min, uint64_t max) { return {ValueSpec::Kind::kWhole, min, max}; }
constexpr ValueSpec duration(uint64_t min_ms, uint64_t max_ms, uint64_t step_ms = 1) {
  return {ValueSpec::Kind::kDuration, min_ms, max_ms, step_ms};
}
constexpr ValueSpec bytes(uint64_t min, uint64_t max) { return {ValueSpec::Kind::kBytes, min, max}; }
constexpr ValueSpec choice(std::span<const std::string_view> choices, std::string_view noun) {
  return {ValueSpec::Kind::kChoice, 0, 0, 1, choices, noun};
}
inline constexpr ValueSpec kBoolean{ValueSpec::Kind::kBoolean};
inline constexpr ValueSpec kName{ValueSpec::Kind::kName};
inline constexpr ValueSpec kText{ValueSpec::Kind::kText};
inline constexpr uint64_t kDayMs = 86'400'000;

}  // namespace value_spec

/// Keys that several kinds of exporter have, with one range each: the
/// exporters' tables use these, so `mtu` cannot mean one range for IPFIX and
/// another for NetFlow v9.
namespace exporter_value {

inline constexpr ValueSpec kObservationDomain = value_spec::whole(0, UINT32_MAX);
inline constexpr ValueSpec kMtu = value_spec::whole(256, 65'000);
inline constexpr ValueSpec kTemplateRefresh = value_spec::duration(1'000, value_spec::kDayMs);
inline constexpr ValueSpec kTemplateRefreshPackets = value_spec::whole(1, 1'000'000);
// 0: options records only at the start of a session and at the end.
inline constexpr ValueSpec kOptionsInterval = value_spec::duration(0, value_spec::kDayMs);
inline constexpr ValueSpec kRateLimit = value_spec::whole(0, 100'000'000);
// File outputs (rotating_output.h); checked together by the file's reader.
inline constexpr ValueSpec kRotate = value_spec::duration(1'000, value_spec::kDayMs, 1'000);
inline constexpr ValueSpec kMaxFiles = value_spec::whole(1, 10'000'000);
inline constexpr ValueSpec kMaxAge = value_spec::duration(1'000, 36'500 * value_spec::kDayMs);

}  // namespace exporter_value

}  // namespace flowfold
