#include "flowfold/probe/settings.h"

#include <algorithm>
#include <optional>
#include <type_traits>

namespace flowfold {

namespace {

using namespace value_spec;

constexpr std::string_view kTunnelModes[] = {"outer", "inner", "both"};
constexpr std::string_view kSamplingModes[] = {"count", "random"};
constexpr std::string_view kLogLevels[] = {"error", "warn", "info", "debug"};

template <class T>
T narrow(const SettingValue& v) {
  return static_cast<T>(v.number);
}

// clang-format off
const Setting<Config> kProbeSettings[] = {
    {"input", "file", "", kName, [](Config& c, const SettingValue& v) { c.read_file = v.text; }},
    {"input", "filter", "", kText, [](Config& c, const SettingValue& v) { c.bpf_filter = v.text; }},
    {"input", "snaplen", "", whole(64, 262'144),
     [](Config& c, const SettingValue& v) { c.snaplen = narrow<uint32_t>(v); }},
    {"input", "promiscuous", "", kBoolean, [](Config& c, const SettingValue& v) { c.promiscuous = v.boolean; }},
    {"input", "buffer_size", "", whole(1 << 20, 4ull << 30),
     [](Config& c, const SettingValue& v) { c.buffer_size = v.number; }},
    {"cache", "max_flows", "-m", whole(1, 1u << 30),
     [](Config& c, const SettingValue& v) { c.cache.max_flows = narrow<uint32_t>(v); }},
    {"cache", "active_timeout", "--active-timeout", duration(1, 7 * kDayMs),
     [](Config& c, const SettingValue& v) { c.cache.active_timeout_ms = v.number; }},
    {"cache", "idle_timeout", "--idle-timeout", duration(1, 7 * kDayMs),
     [](Config& c, const SettingValue& v) { c.cache.idle_timeout_ms = v.number; }},
    {"cache", "tcp_end_timeout", "--tcp-end-timeout", duration(0, 7 * kDayMs),
     [](Config& c, const SettingValue& v) { c.cache.tcp_end_timeout_ms = v.number; }},
    {"cache", "split_interval", "--split-interval", duration(0, kDayMs),
     [](Config& c, const SettingValue& v) { c.cache.split_interval_ms = v.number; }},
    {"cache", "workers", "--workers", whole(1, 64),
     [](Config& c, const SettingValue& v) { c.workers = narrow<uint32_t>(v); }},
    {"cache", "stop_timeout", "", duration(1, 3'600'000),
     [](Config& c, const SettingValue& v) { c.stop_timeout_ms = v.number; }},
    {"", "sampling", "--sampling", whole(1, 1u << 30),
     [](Config& c, const SettingValue& v) { c.sampling.interval = narrow<uint32_t>(v); }},
    {"", "sampling_mode", "--sampling-mode", choice(kSamplingModes, "sampling mode"),
     [](Config& c, const SettingValue& v) { parseSamplingMode(v.text, c.sampling.mode); }},
    {"", "dpi", "", kBoolean, [](Config& c, const SettingValue& v) { c.dpi = v.boolean; }},
    {"decoder", "tunnels", "--tunnels", choice(kTunnelModes, "tunnels mode"),
     [](Config& c, const SettingValue& v) { probe::parseTunnelMode(v.text, c.tunnels); }},
    {"recorder", "max_size", "--record-size", bytes(1 << 20, uint64_t{1} << 60),
     [](Config& c, const SettingValue& v) { c.recorder.max_size = v.number; }},
    {"recorder", "max_age", "", duration(1'000, 3'650 * kDayMs, 1'000),
     [](Config& c, const SettingValue& v) { c.recorder.max_age_ms = v.number; }},
    {"recorder", "segment_size", "", bytes(64 << 10, uint64_t{64} << 30),
     [](Config& c, const SettingValue& v) { c.recorder.segment_size = v.number; }},
    {"recorder", "snaplen", "", whole(64, 262'144),
     [](Config& c, const SettingValue& v) { c.recorder.snaplen = narrow<uint32_t>(v); }},
    {"recorder", "buffer_size", "", bytes(1 << 20, uint64_t{16} << 30),
     [](Config& c, const SettingValue& v) { c.recorder.buffer_size = v.number; }},
    {"", "run_as_root", "", kBoolean, [](Config& c, const SettingValue& v) { c.run_as_root = v.boolean; }},
    {"metrics", "allow_remote", "", kBoolean,
     [](Config& c, const SettingValue& v) { c.metrics_allow_remote = v.boolean; }},
    {"log", "level", "--log-level", choice(kLogLevels, "log level"),
     [](Config& c, const SettingValue& v) { c.log_level = v.text; }},
    {"log", "syslog", "", kBoolean, [](Config& c, const SettingValue& v) { c.log_syslog = v.boolean; }},
    // Counted in whole seconds.
    {"log", "stats_interval", "", duration(0, kDayMs, 1000),
     [](Config& c, const SettingValue& v) { c.stats_interval_s = v.number / 1000; }},
};

// clang-format on

// The entry of `table` with this option, as an ExporterOption.
template <class Options>
std::optional<ExporterOption> optionIn(std::span<const Setting<Options>> table, std::string_view option) {
  const Setting<Options>* s = settingForOption(table, option);
  if (!s) return std::nullopt;
  return ExporterOption{s->key, s->value};
}

}  // namespace

std::span<const Setting<Config>> probeSettings() { return kProbeSettings; }
const Setting<Config>* probeSettingForOption(std::string_view option) {
  return settingForOption(probeSettings(), option);
}

const Setting<Config>* probeSetting(std::string_view section, std::string_view key) {
  return settingForKey(probeSettings(), section, key);
}

std::optional<ExporterOption> exporterOption(std::string_view option) {
  if (auto o = optionIn(ipfixSettings(), option)) return o;
  if (auto o = optionIn(netflow9Settings(), option)) return o;
  return optionIn(textSettings(), option);
}

bool applyExporterSetting(ExporterConfig& e, std::string_view key, const std::string& text) {
  return std::visit(
      [&](auto& options) {
        using Options = std::decay_t<decltype(options)>;
        if constexpr (std::is_same_v<Options, MysqlOptions>) {
          const auto& keys = mysqlOptionKeys();
          if (std::find(keys.begin(), keys.end(), key) == keys.end()) return false;
          setMysqlOption(options, key, text);
          return true;
        } else {
          const Setting<Options>* s = settingForKey(settingsOf(options), "", key);
          if (!s) return false;
          s->apply(options, parseSettingValue(s->value, text));
          return true;
        }
      },
      e.options);
}

}  // namespace flowfold
