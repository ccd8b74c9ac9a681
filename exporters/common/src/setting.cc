#include "flowfold/exporters/setting.h"

#include <algorithm>

namespace flowfold {

SettingValue parseSettingValue(const ValueSpec& spec, const std::string& text) {
  using Kind = ValueSpec::Kind;
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
    case Kind::kBytes: v.number = parseByteSize(text, spec.min, spec.max); break;
  }
  return v;
}

}  // namespace flowfold
