#include "ipfix_options_records.h"

#include <cstring>
#include <vector>

namespace flowfold::ipfix {

namespace {


struct Element {
  uint16_t id;
  uint16_t length;
};

// The elements of each template in order, scope first (one scope element each).
constexpr Element kMeteringStatistics[] = {
    {149, 4},  // observationDomainId (scope)
    {160, 8},  // systemInitTimeMilliseconds
    {323, 8},  // observationTimeMilliseconds
    {41, 8},   // exportedMessageTotalCount
    {42, 8},   // exportedFlowRecordTotalCount
    {40, 8},   // exportedOctetTotalCount
    {164, 8},  // ignoredPacketTotalCount
};
constexpr Element kExportingReliability[] = {
    {144, 4},  // exportingProcessId (scope)
    {166, 8},  // notSentFlowTotalCount
    {323, 8},  // observationTimeMilliseconds
};
constexpr Element kSelector[] = {
    {302, 8},  // selectorId (scope)
    {304, 2},  // selectorAlgorithm
    {305, 4},  // samplingPacketInterval
    {306, 4},  // samplingPacketSpace
    {34, 4},   // samplingInterval
    {35, 1},   // samplingAlgorithm
    {318, 8},  // selectorIdTotalPktsObserved
    {319, 8},  // selectorIdTotalPktsSelected
};
constexpr Element kSamplingRate[] = {
    {149, 4},  // observationDomainId (scope)
    {305, 4},  // samplingPacketInterval
    {306, 4},  // samplingPacketSpace
};

struct OptionsTemplate {
  uint16_t id;
  std::span<const Element> elements;
};

std::vector<OptionsTemplate> templates(bool sampling) {
  std::vector<OptionsTemplate> t = {{kMeteringStatisticsTemplateId, kMeteringStatistics},
                                    {kExportingReliabilityTemplateId, kExportingReliability}};
  if (sampling) {
    t.push_back({kSelectorTemplateId, kSelector});
    t.push_back({kSamplingRateTemplateId, kSamplingRate});
  }
  return t;
}

size_t recordSize(const OptionsTemplate& t) {
  size_t n = 0;
  for (const Element& e : t.elements) n += e.length;
  return n;
}

// Big-endian writes that move the cursor.
struct Writer {
  uint8_t* p;
  void u8(uint8_t v) { *p++ = v; }
  void u16(uint16_t v) {
    v = toNetwork(v);
    std::memcpy(p, &v, 2);
    p += 2;
  }
  void u32(uint32_t v) {
    v = toNetwork(v);
    std::memcpy(p, &v, 4);
    p += 4;
  }
  void u64(uint64_t v) {
    v = toNetwork(v);
    std::memcpy(p, &v, 8);
    p += 8;
  }
};

// One record's values, in its template's order.
void writeRecord(Writer& w, uint16_t id, const OptionsValues& v) {
  switch (id) {
    case kMeteringStatisticsTemplateId:
      w.u32(v.observation_domain);
      w.u64(v.system_init_ms);
      w.u64(v.observation_ms);
      w.u64(v.messages);
      w.u64(v.flow_records);
      w.u64(v.octets);
      w.u64(v.ignored_packets);
      break;
    case kExportingReliabilityTemplateId:
      w.u32(v.exporting_process);
      w.u64(v.not_sent_flows);
      w.u64(v.observation_ms);
      break;
    case kSelectorTemplateId:
      w.u64(1);  // the probe's one selector
      w.u16(v.random ? kSelectorUniformProbabilistic : kSelectorSystematicCount);
      w.u32(1);
      w.u32(v.interval - 1);
      w.u32(v.interval);
      w.u8(v.random ? kSamplingRandom : kSamplingDeterministic);
      w.u64(v.packets_observed);
      w.u64(v.packets_selected);
      break;
    case kSamplingRateTemplateId:
      w.u32(v.observation_domain);
      w.u32(1);
      w.u32(v.interval - 1);
      break;
  }
}

}  // namespace

size_t optionsTemplateCount(bool sampling) { return templates(sampling).size(); }

size_t optionsTemplateSetsSize(bool sampling) {
  size_t n = 0;
  for (const OptionsTemplate& t : templates(sampling)) n += kSetHeaderSize + 6 + 4 * t.elements.size();
  return n;
}

size_t writeOptionsTemplateSets(uint8_t* out, bool sampling) {
  Writer w{out};
  for (const OptionsTemplate& t : templates(sampling)) {
    w.u16(kOptionsTemplateSetId);
    w.u16(static_cast<uint16_t>(kSetHeaderSize + 6 + 4 * t.elements.size()));
    w.u16(t.id);
    w.u16(static_cast<uint16_t>(t.elements.size()));
    w.u16(1);  // scope field count: the first element
    for (const Element& e : t.elements) {
      w.u16(e.id);
      w.u16(e.length);
    }
  }
  return static_cast<size_t>(w.p - out);
}

size_t optionsMessageSize(bool sampling) {
  size_t n = kMessageHeaderSize;
  for (const OptionsTemplate& t : templates(sampling)) n += kSetHeaderSize + recordSize(t);
  return n;
}

size_t writeOptionsMessage(uint8_t* out, const OptionsValues& v, uint32_t export_time, uint32_t sequence) {
  const size_t size = optionsMessageSize(v.sampling);
  Writer w{out};
  w.u16(kIpfixVersion);
  w.u16(static_cast<uint16_t>(size));
  w.u32(export_time);
  w.u32(sequence);
  w.u32(v.observation_domain);
  for (const OptionsTemplate& t : templates(v.sampling)) {
    w.u16(t.id);
    w.u16(static_cast<uint16_t>(kSetHeaderSize + recordSize(t)));
    writeRecord(w, t.id, v);
  }
  return size;
}

size_t withdrawalMessageSize(std::span<const uint16_t> data_templates, bool sampling) {
  return kMessageHeaderSize + 2 * kSetHeaderSize + 4 * (data_templates.size() + optionsTemplateCount(sampling));
}

size_t writeWithdrawalMessage(uint8_t* out, std::span<const uint16_t> data_templates, bool sampling,
                              uint32_t observation_domain, uint32_t export_time, uint32_t sequence) {
  const size_t size = withdrawalMessageSize(data_templates, sampling);
  Writer w{out};
  w.u16(kIpfixVersion);
  w.u16(static_cast<uint16_t>(size));
  w.u32(export_time);
  w.u32(sequence);
  w.u32(observation_domain);
  w.u16(2);
  w.u16(static_cast<uint16_t>(kSetHeaderSize + 4 * data_templates.size()));
  for (const uint16_t id : data_templates) {
    w.u16(id);
    w.u16(0);
  }
  const std::vector<OptionsTemplate> options = templates(sampling);
  w.u16(kOptionsTemplateSetId);
  w.u16(static_cast<uint16_t>(kSetHeaderSize + 4 * options.size()));
  for (const OptionsTemplate& t : options) {
    w.u16(t.id);
    w.u16(0);
  }
  return size;
}

}  // namespace flowfold::ipfix
