#pragma once
// The probe's table of settings (input, cache, decoder, log, ...), and the
// exporters' tables put together: each exporter library owns its keys
// (ipfixSettings(), netflow9Settings(), textSettings(); a MySQL sink's keys
// through setMysqlOption()). parseConfig() and parseCommandLine() both walk
// them (setting.h).
//
// Settings with a structure of their own stay with their reader: the list of
// interfaces, user/group and metrics.listen (which remember where they were
// written), an exporter's type, collector and transport, and the command
// line's exporters (-n, --text, ...), which it builds whole.

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "flowfold/exporters/setting.h"
#include "flowfold/probe/config.h"

namespace flowfold {

/// Settings of the probe as a whole (input, cache, decoder, log, ...).
std::span<const Setting<Config>> probeSettings();

/// The entry with this command-line option; nullptr when there is none.
const Setting<Config>* probeSettingForOption(std::string_view option);
/// The entry with this section and key; nullptr when there is none.
const Setting<Config>* probeSetting(std::string_view section, std::string_view key);

/// Each kind of exporter's table, by its options.
inline std::span<const Setting<IpfixOptions>> settingsOf(const IpfixOptions&) { return ipfixSettings(); }
inline std::span<const Setting<NetflowV9Options>> settingsOf(const NetflowV9Options&) { return netflow9Settings(); }
inline std::span<const Setting<TextOptions>> settingsOf(const TextOptions&) { return textSettings(); }

/// An exporter setting given on the command line (--mtu, --export-rate, ...)
/// applies to every exporter that has it.
struct ExporterOption {
  std::string_view key;  // its key in the exporters' tables (and a MySQL sink's, where it has it)
  ValueSpec value;       // the same in every table that has it (exporter_value)
};
/// The exporter setting with this command-line option, from the exporters'
/// tables; nullopt when none has it.
std::optional<ExporterOption> exporterOption(std::string_view option);

/// Sets `key` = `text` in `e` when its kind has that setting; false when it
/// has not. `text` was read with the option's ValueSpec already.
bool applyExporterSetting(ExporterConfig& e, std::string_view key, const std::string& text);

}  // namespace flowfold
