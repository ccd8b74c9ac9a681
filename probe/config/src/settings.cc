#include "flowfold/probe/settings.h"

#include <algorithm>

#include "flowfold/exporters/option_values.h"

namespace flowfold {

namespace {

using Kind = ValueSpec::Kind;

constexpr ValueSpec whole(uint64_t min, uint64_t max) { return {Kind::kWhole, min, max}; }
constexpr ValueSpec duration(uint64_t min_ms, uint64_t max_ms, uint64_t step_ms = 1) {
  return {Kind::kDuration, min_ms, max_ms, step_ms};
}
constexpr ValueSpec kBoolean{Kind::kBoolean};
constexpr ValueSpec kName{Kind::kName};
constexpr ValueSpec kText{Kind::kText};

constexpr uint64_t kDayMs = 86'400'000;

constexpr std::string_view kTunnelModes[] = {"outer", "inner", "both"};
constexpr std::string_view kLogLevels[] = {"error", "warn", "info", "debug"};
constexpr std::string_view kIpfixEncoders[] = {"libfixbuf", "direct"};

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
    {"cache", "workers", "--workers", whole(1, 64),
     [](Config& c, const SettingValue& v) { c.workers = narrow<uint32_t>(v); }},
    {"cache", "stop_timeout", "", duration(1, 3'600'000),
     [](Config& c, const SettingValue& v) { c.stop_timeout_ms = v.number; }},
    {"decoder", "tunnels", "--tunnels", {Kind::kChoice, 0, 0, 1, kTunnelModes, "tunnels mode"},
     [](Config& c, const SettingValue& v) { probe::parseTunnelMode(v.text, c.tunnels); }},
    {"", "run_as_root", "", kBoolean, [](Config& c, const SettingValue& v) { c.run_as_root = v.boolean; }},
    {"metrics", "allow_remote", "", kBoolean,
     [](Config& c, const SettingValue& v) { c.metrics_allow_remote = v.boolean; }},
    {"log", "level", "--log-level", {Kind::kChoice, 0, 0, 1, kLogLevels, "log level"},
     [](Config& c, const SettingValue& v) { c.log_level = v.text; }},
    {"log", "syslog", "", kBoolean, [](Config& c, const SettingValue& v) { c.log_syslog = v.boolean; }},
    // Counted in whole seconds.
    {"log", "stats_interval", "", duration(0, kDayMs, 1000),
     [](Config& c, const SettingValue& v) { c.stats_interval_s = v.number / 1000; }},
};

using Type = ExporterConfig::Type;
constexpr unsigned kIpfix = exporterKindBit(Type::kIpfix);
constexpr unsigned kCollectors = kIpfix | exporterKindBit(Type::kNetflow9);  // export to a collector
constexpr unsigned kFiles = kIpfix | exporterKindBit(Type::kText) | exporterKindBit(Type::kJson);  // write a file

const Setting<ExporterConfig> kExporterSettings[] = {
    {"", "path", "", kName, [](ExporterConfig& e, const SettingValue& v) { e.path = v.text; }, kFiles},
    {"", "observation_domain", "--observation-domain", whole(0, UINT32_MAX),
     [](ExporterConfig& e, const SettingValue& v) { e.observation_domain = narrow<uint32_t>(v); }, kCollectors},
    {"", "mtu", "--mtu", whole(256, 65'000),
     [](ExporterConfig& e, const SettingValue& v) { e.mtu = narrow<uint32_t>(v); }, kCollectors},
    {"", "template_refresh", "", duration(1'000, kDayMs),
     [](ExporterConfig& e, const SettingValue& v) { e.template_refresh_ms = v.number; }, kCollectors},
    {"", "template_refresh_packets", "", whole(1, 1'000'000),
     [](ExporterConfig& e, const SettingValue& v) { e.template_refresh_packets = narrow<uint32_t>(v); }, kCollectors},
    {"", "encoder", "--ipfix-encoder", {Kind::kChoice, 0, 0, 1, kIpfixEncoders, "IPFIX encoder"},
     [](ExporterConfig& e, const SettingValue& v) {
       e.ipfix_encoder = v.text == "direct" ? ExporterConfig::IpfixEncoder::kDirect
                                            : ExporterConfig::IpfixEncoder::kLibfixbuf;
     }, kIpfix},
    {"", "rate_limit", "--export-rate", whole(0, 100'000'000),
     [](ExporterConfig& e, const SettingValue& v) { e.rate_limit = v.number; }, kCollectors},
    {"", "tcp_buffer_mb", "", whole(1, 65'536),
     [](ExporterConfig& e, const SettingValue& v) { e.tcp_buffer_mb = narrow<uint32_t>(v); }, kIpfix},
    // File outputs: see rotating_output.h; checked together by the file's reader.
    {"", "rotate", "", duration(1'000, kDayMs, 1'000),
     [](ExporterConfig& e, const SettingValue& v) { e.rotation.interval_ms = v.number; }, kFiles},
    {"", "max_files", "", whole(1, 10'000'000),
     [](ExporterConfig& e, const SettingValue& v) { e.rotation.max_files = narrow<uint32_t>(v); }, kFiles},
    {"", "max_age", "", duration(1'000, 36'500 * kDayMs),
     [](ExporterConfig& e, const SettingValue& v) { e.rotation.max_age_ms = v.number; }, kFiles},
};
// clang-format on

template <class Target>
const Setting<Target>* withOption(std::span<const Setting<Target>> table, std::string_view option) {
  auto it = std::find_if(table.begin(), table.end(), [&](const auto& s) { return s.option == option; });
  return option.empty() || it == table.end() ? nullptr : &*it;
}

}  // namespace

std::span<const Setting<Config>> probeSettings() { return kProbeSettings; }
std::span<const Setting<ExporterConfig>> exporterSettings() { return kExporterSettings; }

const Setting<Config>* probeSettingForOption(std::string_view option) { return withOption(probeSettings(), option); }
const Setting<ExporterConfig>* exporterSettingForOption(std::string_view option) {
  return withOption(exporterSettings(), option);
}

const Setting<Config>* probeSetting(std::string_view section, std::string_view key) {
  for (const auto& s : kProbeSettings)
    if (s.section == section && s.key == key) return &s;
  return nullptr;
}

SettingValue parseSettingValue(const ValueSpec& spec, const std::string& text) {
  SettingValue v;
  switch (spec.kind) {
    case Kind::kWhole: v.number = parseWholeNumber(text, spec.min, spec.max); break;
    case Kind::kDuration: v.number = parseDurationMs(text, spec.min, spec.max, spec.step); break;
    case Kind::kBoolean: v.boolean = parseBoolean(text); break;
    case Kind::kChoice:
      if (std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end())
        throw ValueError(ValueError::Kind::kExpected, text, "");
      v.text = text;
      break;
    case Kind::kName:
      if (text.empty()) throw ValueError(ValueError::Kind::kProblem, text, "is empty");
      v.text = text;
      break;
    case Kind::kText: v.text = text; break;
  }
  return v;
}

}  // namespace flowfold
