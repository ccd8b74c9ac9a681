#include "flowfold/exporters/text_options.h"

namespace flowfold {

namespace {

namespace shared = exporter_value;

// clang-format off
const Setting<TextOptions> kTextSettings[] = {
    {"", "path", "", value_spec::kName, [](TextOptions& o, const SettingValue& v) { o.path = v.text; }},
    {"", "rotate", "", shared::kRotate,
     [](TextOptions& o, const SettingValue& v) { o.rotation.interval_ms = v.number; }},
    {"", "max_files", "", shared::kMaxFiles,
     [](TextOptions& o, const SettingValue& v) { o.rotation.max_files = static_cast<uint32_t>(v.number); }},
    {"", "max_age", "", shared::kMaxAge,
     [](TextOptions& o, const SettingValue& v) { o.rotation.max_age_ms = v.number; }},
};
// clang-format on

}  // namespace

std::span<const Setting<TextOptions>> textSettings() { return kTextSettings; }

}  // namespace flowfold
