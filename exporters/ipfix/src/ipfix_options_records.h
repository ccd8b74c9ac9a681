#pragma once
// IPFIX options templates and records (RFC 7011 sections 3.4.2.2 and 4):
// what the exporter tells the collector about itself. Written by hand for
// both encoders (the libfixbuf one hands them its sequence number), so that
// each options template has a set of its own: nfdump 1.7.1 reads only the
// first template of an options template set, and nfacctd 1.7.7 refuses a set
// with two.
//
//  264 metering process statistics and reliability (sections 4.1 and 4.2),
//      scope observationDomainId: the exported messages, flow records and
//      octets, the packets the metering process ignored, and the window the
//      counts cover (systemInitTimeMilliseconds to observationTimeMilliseconds);
//  265 exporting process reliability (section 4.3), scope exportingProcessId:
//      the flow records not sent;
// with sampling (sampling: N):
//  266 the selector (RFC 5476), scope selectorId: selectorAlgorithm (1
//      systematic count-based, 4 uniform probabilistic), samplingPacketInterval
//      1 and samplingPacketSpace N-1 (one packet in N), the older
//      samplingInterval N and samplingAlgorithm (1 deterministic, 2 random)
//      that many collectors read, and the packets observed and selected;
//  267 the rate alone, scope observationDomainId: samplingPacketInterval and
//      samplingPacketSpace. nfdump 1.7.1 takes a sampler only from a
//      template without selectorId, selectorAlgorithm and samplingAlgorithm;
//      it then scales every flow of the exporter by it.

#include <cstddef>
#include <cstdint>
#include <span>

#include "ipfix_fields.h"

namespace flowfold::ipfix {

inline constexpr uint16_t kMeteringStatisticsTemplateId = 264;
inline constexpr uint16_t kExportingReliabilityTemplateId = 265;
inline constexpr uint16_t kSelectorTemplateId = 266;
inline constexpr uint16_t kSamplingRateTemplateId = 267;

/// selectorAlgorithm (304) values (IANA PSAMP registry).
inline constexpr uint16_t kSelectorSystematicCount = 1;
inline constexpr uint16_t kSelectorUniformProbabilistic = 4;
/// samplingAlgorithm (35) values.
inline constexpr uint8_t kSamplingDeterministic = 1;
inline constexpr uint8_t kSamplingRandom = 2;

/// Everything an options message reports, in host order.
struct OptionsValues {
  uint32_t observation_domain = 0;
  uint64_t system_init_ms = 0;  ///< when the counts below started (the exporter's first call)
  uint64_t observation_ms = 0;  ///< when they were read (the pipeline clock)
  uint64_t messages = 0;        ///< exportedMessageTotalCount: messages sent before this one
  uint64_t flow_records = 0;    ///< exportedFlowRecordTotalCount
  uint64_t octets = 0;          ///< exportedOctetTotalCount: the lengths of those messages
  uint64_t ignored_packets = 0;  ///< ignoredPacketTotalCount
  uint32_t exporting_process = 0;
  uint64_t not_sent_flows = 0;  ///< notSentFlowTotalCount
  // Sampling (templates 266 and 267 only).
  bool sampling = false;
  bool random = false;
  uint32_t interval = 1;  ///< N: one packet in N
  uint64_t packets_observed = 0;
  uint64_t packets_selected = 0;
};

/// The options templates announced: 264 and 265, and 266 and 267 with sampling.
size_t optionsTemplateCount(bool sampling);
/// Octets of the options template sets (one set each).
size_t optionsTemplateSetsSize(bool sampling);
/// Writes them at `out` (room for optionsTemplateSetsSize()); returns the octets written.
size_t writeOptionsTemplateSets(uint8_t* out, bool sampling);

/// Data records an options message carries (one per template).
inline size_t optionsRecordCount(bool sampling) { return optionsTemplateCount(sampling); }
/// Octets of an options message, header included.
size_t optionsMessageSize(bool sampling);
/// Writes a whole options message at `out` (room for optionsMessageSize()):
/// the header with this export time, sequence number and domain, then one
/// data set per template. Returns the octets written.
size_t writeOptionsMessage(uint8_t* out, const OptionsValues& v, uint32_t export_time, uint32_t sequence);

/// Octets of the message that withdraws these data templates and the
/// options templates (RFC 7011 section 8.1).
size_t withdrawalMessageSize(std::span<const uint16_t> data_templates, bool sampling);
/// Writes it at `out`: a set 2 with a withdrawal record (the template id,
/// field count 0) for each data template, a set 3 with one for each options
/// template. Returns the octets written.
size_t writeWithdrawalMessage(uint8_t* out, std::span<const uint16_t> data_templates, bool sampling,
                              uint32_t observation_domain, uint32_t export_time, uint32_t sequence);

}  // namespace flowfold::ipfix
