#pragma once
// The data template of each record kind, the same id in NetFlow v9 and
// IPFIX (both number data templates from 256), so that a collector that
// hears both formats from the probe sees the same ids.

#include <cstdint>

namespace flowfold {

inline constexpr uint16_t kIpv4TemplateId = 256;  ///< records of IPv4 flows
inline constexpr uint16_t kIpv6TemplateId = 257;  ///< records of IPv6 flows
// With local_networks set (local_networks.h): the same records with the
// flow's direction (IPFIX flowDirection / v9 DIRECTION, 61) appended, for the
// flows that have one. Not announced otherwise.
inline constexpr uint16_t kIpv4DirectionTemplateId = 258;
inline constexpr uint16_t kIpv6DirectionTemplateId = 259;
// IPFIX with `biflow: true` (RFC 5103): one record per conversation, the
// initiator's fields forward and the responder's as reverse elements; with
// local_networks, the same with flowDirection. Not announced otherwise.
inline constexpr uint16_t kIpv4BiflowTemplateId = 260;
inline constexpr uint16_t kIpv6BiflowTemplateId = 261;
inline constexpr uint16_t kIpv4BiflowDirectionTemplateId = 262;
inline constexpr uint16_t kIpv6BiflowDirectionTemplateId = 263;
// (264..267: options templates, ipfix_options_records.h and netflow9_encoder.h.)
// With DPI labels (`dpi: true`): 256..259 with the flow's application
// appended (ipfix_application.h). Announced instead of 256..259.
inline constexpr uint16_t kIpv4ApplicationTemplateId = 268;
inline constexpr uint16_t kIpv6ApplicationTemplateId = 269;
inline constexpr uint16_t kIpv4DirectionApplicationTemplateId = 270;
inline constexpr uint16_t kIpv6DirectionApplicationTemplateId = 271;

}  // namespace flowfold
