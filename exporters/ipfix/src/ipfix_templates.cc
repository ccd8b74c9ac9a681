#include "ipfix_application.h"
#include "ipfix_encoder.h"

namespace flowfold::ipfix {

std::vector<TemplateLayout> templateLayouts(bool with_direction, bool biflow, bool applications) {
  std::vector<TemplateLayout> t;
  if (applications) {
    t.push_back({kIpv4ApplicationTemplateId, kIpv4Fields, kApplicationFields});
    t.push_back({kIpv6ApplicationTemplateId, kIpv6Fields, kApplicationFields});
    if (with_direction) {
      t.push_back({kIpv4DirectionApplicationTemplateId, kIpv4Fields, kDirectionApplicationFields});
      t.push_back({kIpv6DirectionApplicationTemplateId, kIpv6Fields, kDirectionApplicationFields});
    }
    return t;
  }
  if (biflow) {
    t.push_back({kIpv4BiflowTemplateId, kIpv4Fields, kBiflowTail});
    t.push_back({kIpv6BiflowTemplateId, kIpv6Fields, kBiflowTail});
    if (with_direction) {
      t.push_back({kIpv4BiflowDirectionTemplateId, kIpv4Fields, kBiflowDirectionTail});
      t.push_back({kIpv6BiflowDirectionTemplateId, kIpv6Fields, kBiflowDirectionTail});
    }
    return t;
  }
  t.push_back({kIpv4TemplateId, kIpv4Fields, {}});
  t.push_back({kIpv6TemplateId, kIpv6Fields, {}});
  if (with_direction) {
    t.push_back({kIpv4DirectionTemplateId, kIpv4Fields, kDirectionFields});
    t.push_back({kIpv6DirectionTemplateId, kIpv6Fields, kDirectionFields});
  }
  return t;
}

size_t templateRecordSize(const TemplateLayout& t) {
  size_t size = 4 + 4 * t.fieldCount();
  for (const FieldSpec& f : t.tail) size += f.enterprise != 0 ? 4 : 0;
  for (const FieldSpec& f : t.ip) size += f.enterprise != 0 ? 4 : 0;
  return size;
}

size_t templateMessageSize(bool with_direction, bool biflow, bool sampling, bool applications) {
  size_t size = kMessageHeaderSize + kSetHeaderSize;
  for (const TemplateLayout& t : templateLayouts(with_direction, biflow, applications)) size += templateRecordSize(t);
  return size + optionsTemplateSetsSize(sampling);
}

}  // namespace flowfold::ipfix
