#include "flowfold/exporters/netflow9_options.h"

namespace flowfold {

namespace {

namespace shared = exporter_value;

// clang-format off
const Setting<NetflowV9Options> kNetflow9Settings[] = {
    {"", "observation_domain", "--observation-domain", shared::kObservationDomain,
     [](NetflowV9Options& o, const SettingValue& v) { o.source_id = static_cast<uint32_t>(v.number); }},
    {"", "mtu", "--mtu", shared::kMtu, [](NetflowV9Options& o, const SettingValue& v) { o.max_datagram = v.number; }},
    {"", "template_refresh", "", shared::kTemplateRefresh,
     [](NetflowV9Options& o, const SettingValue& v) { o.template_refresh_ms = v.number; }},
    {"", "template_refresh_packets", "", shared::kTemplateRefreshPackets,
     [](NetflowV9Options& o, const SettingValue& v) { o.template_refresh_packets = static_cast<uint32_t>(v.number); }},
    {"", "rate_limit", "--export-rate", shared::kRateLimit,
     [](NetflowV9Options& o, const SettingValue& v) { o.max_datagrams_per_second = v.number; }},
    {"", "options_interval", "", shared::kOptionsInterval,
     [](NetflowV9Options& o, const SettingValue& v) { o.options_interval_ms = v.number; }},
};
// clang-format on

}  // namespace

std::span<const Setting<NetflowV9Options>> netflow9Settings() { return kNetflow9Settings; }

}  // namespace flowfold
