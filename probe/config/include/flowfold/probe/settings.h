#pragma once
// One table of the settings the YAML file and the command line share: each
// setting's key, its option, the kind of value with its range or choices,
// and where it goes in Config, written once. parseConfig() and
// parseCommandLine() both walk it, so a range or a default cannot differ
// between the two (the workers range was written twice; the command line
// built a YAML document to read a duration).
//
// Settings with a structure of their own stay with their reader: the list of
// interfaces, user/group and metrics.listen (which remember where they were
// written), an exporter's type, collector and transport, and the command
// line's exporters (-n, --text, ...), which it builds whole.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "flowfold/probe/config.h"

namespace flowfold {

struct ValueSpec {
  enum class Kind {
    kWhole,     // parseWholeNumber in [min, max]
    kDuration,  // parseDurationMs in [min, max] ms, a multiple of step ms
    kBoolean,   // parseBoolean
    kChoice,    // one of `choices`
    kName,      // a file or interface name: not empty
    kText,      // anything
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
  /// Exporter settings: the kinds of exporter that have it (bits of
  /// exporterKindBit()); another kind refuses it, at its line and column.
  unsigned kinds = ~0u;
};

/// The bit of an exporter kind in Setting::kinds.
constexpr unsigned exporterKindBit(ExporterConfig::Type t) { return 1u << static_cast<unsigned>(t); }

/// Settings of the probe as a whole (input, cache, decoder, log, ...).
std::span<const Setting<Config>> probeSettings();
/// Settings every exporter of the file has; the command line's options
/// among them apply to every exporter.
std::span<const Setting<ExporterConfig>> exporterSettings();

/// The entry with this command-line option; nullptr when there is none.
const Setting<Config>* probeSettingForOption(std::string_view option);
const Setting<ExporterConfig>* exporterSettingForOption(std::string_view option);
/// The entry with this section and key; nullptr when there is none.
const Setting<Config>* probeSetting(std::string_view section, std::string_view key);

/// Reads `text` as `spec` says. Throws ValueError (option_values.h); a
/// choice not in the list throws ValueError(kExpected, text, "").
SettingValue parseSettingValue(const ValueSpec& spec, const std::string& text);

}  // namespace flowfold
