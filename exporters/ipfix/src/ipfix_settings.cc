#include "flowfold/exporters/ipfix_options.h"

namespace flowfold {

namespace {

using namespace value_spec;
namespace shared = exporter_value;

constexpr std::string_view kEncoders[] = {"libfixbuf", "direct"};

// clang-format off
const Setting<IpfixOptions> kIpfixSettings[] = {
    {"", "path", "", kName, [](IpfixOptions& o, const SettingValue& v) { o.path = v.text; }},
    {"", "observation_domain", "--observation-domain", shared::kObservationDomain,
     [](IpfixOptions& o, const SettingValue& v) { o.observation_domain = static_cast<uint32_t>(v.number); }},
    {"", "mtu", "--mtu", shared::kMtu, [](IpfixOptions& o, const SettingValue& v) { o.mtu = v.number; }},
    {"", "template_refresh", "", shared::kTemplateRefresh,
     [](IpfixOptions& o, const SettingValue& v) { o.template_refresh_ms = v.number; }},
    {"", "template_refresh_packets", "", shared::kTemplateRefreshPackets,
     [](IpfixOptions& o, const SettingValue& v) { o.template_refresh_packets = static_cast<uint32_t>(v.number); }},
    {"", "encoder", "--ipfix-encoder", choice(kEncoders, "IPFIX encoder"),
     [](IpfixOptions& o, const SettingValue& v) {
       o.encoder = v.text == "direct" ? IpfixOptions::Encoder::kDirect : IpfixOptions::Encoder::kLibfixbuf;
     }},
    {"", "rate_limit", "--export-rate", shared::kRateLimit,
     [](IpfixOptions& o, const SettingValue& v) { o.max_messages_per_second = v.number; }},
    {"", "tcp_buffer_mb", "", whole(1, 65'536),
     [](IpfixOptions& o, const SettingValue& v) { o.tcp_buffer_bytes = size_t{v.number} << 20; }},
    {"", "biflow", "", kBoolean, [](IpfixOptions& o, const SettingValue& v) { o.biflow = v.boolean; }},
    {"", "biflow_wait", "", duration(0, 3'600'000),
     [](IpfixOptions& o, const SettingValue& v) { o.biflow_wait_ms = v.number; }},
    {"", "options_interval", "", shared::kOptionsInterval,
     [](IpfixOptions& o, const SettingValue& v) { o.options_interval_ms = v.number; }},
    {"", "rotate", "", shared::kRotate,
     [](IpfixOptions& o, const SettingValue& v) { o.rotation.interval_ms = v.number; }},
    {"", "max_files", "", shared::kMaxFiles,
     [](IpfixOptions& o, const SettingValue& v) { o.rotation.max_files = static_cast<uint32_t>(v.number); }},
    {"", "max_age", "", shared::kMaxAge,
     [](IpfixOptions& o, const SettingValue& v) { o.rotation.max_age_ms = v.number; }},
};
// clang-format on

}  // namespace

std::span<const Setting<IpfixOptions>> ipfixSettings() { return kIpfixSettings; }

}  // namespace flowfold
