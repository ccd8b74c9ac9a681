#pragma once
// NetFlow v9 (RFC 3954) encoder: a pure function from flow records to export
// datagrams. All mutable protocol state (sequence number, template timers)
// lives in an explicit EncoderState the caller passes in and gets back, so a
// test can feed fixed inputs and compare golden bytes. No I/O, no clock.
//
// VLANs: SRC_VLAN 58 carries the outer (first) tag, DST_VLAN 59 the inner
// (customer) tag of a QinQ frame, 0 without one. A probe has no egress VLAN
// for 59 to mean, and 59 is what collectors display as the second VLAN:
// nfdump 1.7.1 as "dst vlan" (%dvln), Wireshark as "Post Vlan Id".
// Not exported, for want of a NetFlow v9 field (RFC 3954 and Cisco's v9 list):
// the flow end reason (IPFIX-only, element 136).
// MAC addresses use IN_SRC_MAC 56 and IN_DST_MAC 80 (the frame's own
// destination as it arrived; OUT_DST_MAC 57 is the egress rewrite); nfdump
// prints them as %ismc / %idmc, Wireshark as SRC_MAC / DESTINATION_MAC.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/flowcache/flow_record.h"

namespace flowfold::netflow9 {

// Field types (RFC 3954 section 8; 52/53 and 80 are the Cisco v9 additions
// that nfdump and Wireshark decode under the same ids).
inline constexpr uint16_t kInBytes = 1;            // IN_BYTES
inline constexpr uint16_t kInPkts = 2;             // IN_PKTS
inline constexpr uint16_t kProtocol = 4;           // PROTOCOL
inline constexpr uint16_t kSrcTos = 5;             // SRC_TOS
inline constexpr uint16_t kTcpFlags = 6;           // TCP_FLAGS
inline constexpr uint16_t kL4SrcPort = 7;          // L4_SRC_PORT
inline constexpr uint16_t kIpv4SrcAddr = 8;        // IPV4_SRC_ADDR
inline constexpr uint16_t kInputSnmp = 10;         // INPUT_SNMP
inline constexpr uint16_t kL4DstPort = 11;         // L4_DST_PORT
inline constexpr uint16_t kIpv4DstAddr = 12;       // IPV4_DST_ADDR
inline constexpr uint16_t kLastSwitched = 21;      // LAST_SWITCHED
inline constexpr uint16_t kFirstSwitched = 22;     // FIRST_SWITCHED
inline constexpr uint16_t kIpv6SrcAddr = 27;       // IPV6_SRC_ADDR
inline constexpr uint16_t kIpv6DstAddr = 28;       // IPV6_DST_ADDR
inline constexpr uint16_t kIcmpType = 32;          // ICMP_TYPE (type*256+code, ICMP and ICMPv6)
inline constexpr uint16_t kMinTtl = 52;            // MIN_TTL
inline constexpr uint16_t kMaxTtl = 53;            // MAX_TTL
inline constexpr uint16_t kInSrcMac = 56;          // IN_SRC_MAC
inline constexpr uint16_t kSrcVlan = 58;           // SRC_VLAN
inline constexpr uint16_t kDstVlan = 59;           // DST_VLAN
inline constexpr uint16_t kIpProtocolVersion = 60; // IP_PROTOCOL_VERSION
inline constexpr uint16_t kMplsLabel1 = 70;        // MPLS_LABEL_1 (label<<4 | exp<<1 | S), top entry
inline constexpr uint16_t kMplsLabel2 = 71;        // MPLS_LABEL_2, the entry below it
inline constexpr uint16_t kMplsLabel3 = 72;        // MPLS_LABEL_3
inline constexpr uint16_t kInDstMac = 80;          // IN_DST_MAC
inline constexpr uint16_t kDirection = 61;         // DIRECTION (0 ingress, 1 egress), with local_networks
inline constexpr uint16_t kFlowId = 148;           // flowId (IPFIX 148, 8 bytes): v9 types up to 127 are
                                                   // RFC 3954's, the rest follow IANA's IPFIX numbers

/// One field specifier of a template record: v9 field type and length in bytes.
struct TemplateField {
  uint16_t type;
  uint16_t length;
};

/// The IPv4 data template (id 256). The record writer is generated from this
/// table at compile time, so the two cannot drift apart.
inline constexpr std::array<TemplateField, 24> kIPv4TemplateFields{{
    {kIpv4SrcAddr, 4},        // 8  IPV4_SRC_ADDR
    {kIpv4DstAddr, 4},        // 12 IPV4_DST_ADDR
    {kL4SrcPort, 2},          // 7  L4_SRC_PORT (0 for ICMP)
    {kL4DstPort, 2},          // 11 L4_DST_PORT (type*256+code for ICMP, as v5 did)
    {kProtocol, 1},           // 4  PROTOCOL
    {kIpProtocolVersion, 1},  // 60 IP_PROTOCOL_VERSION
    {kSrcTos, 1},             // 5  SRC_TOS
    {kTcpFlags, 1},           // 6  TCP_FLAGS
    {kIcmpType, 2},           // 32 ICMP_TYPE (0 unless ICMP)
    {kInPkts, 8},             // 2  IN_PKTS
    {kInBytes, 8},            // 1  IN_BYTES
    {kFirstSwitched, 4},      // 22 FIRST_SWITCHED (sysUptime ms)
    {kLastSwitched, 4},       // 21 LAST_SWITCHED (sysUptime ms)
    {kSrcVlan, 2},            // 58 SRC_VLAN (outer VLAN)
    {kDstVlan, 2},            // 59 DST_VLAN (inner VLAN of QinQ, else 0)
    {kInputSnmp, 2},          // 10 INPUT_SNMP (capture interface index)
    {kMinTtl, 1},             // 52 MIN_TTL
    {kMaxTtl, 1},             // 53 MAX_TTL
    {kInSrcMac, 6},           // 56 IN_SRC_MAC
    {kInDstMac, 6},           // 80 IN_DST_MAC
    {kMplsLabel1, 3},         // 70 MPLS_LABEL_1
    {kMplsLabel2, 3},         // 71 MPLS_LABEL_2
    {kMplsLabel3, 3},         // 72 MPLS_LABEL_3
    {kFlowId, 8},             // 148 flowId: the flow's id, the same in each of its records
}};

/// The IPv6 data template (id 257): the IPv4 one with 16-byte addresses.
inline constexpr std::array<TemplateField, 24> kIPv6TemplateFields{{
    {kIpv6SrcAddr, 16},       // 27 IPV6_SRC_ADDR
    {kIpv6DstAddr, 16},       // 28 IPV6_DST_ADDR
    {kL4SrcPort, 2},          // 7  L4_SRC_PORT (0 for ICMPv6)
    {kL4DstPort, 2},          // 11 L4_DST_PORT (type*256+code for ICMPv6)
    {kProtocol, 1},           // 4  PROTOCOL
    {kIpProtocolVersion, 1},  // 60 IP_PROTOCOL_VERSION
    {kSrcTos, 1},             // 5  SRC_TOS (traffic class)
    {kTcpFlags, 1},           // 6  TCP_FLAGS
    {kIcmpType, 2},           // 32 ICMP_TYPE (0 unless ICMPv6)
    {kInPkts, 8},             // 2  IN_PKTS
    {kInBytes, 8},            // 1  IN_BYTES
    {kFirstSwitched, 4},      // 22 FIRST_SWITCHED (sysUptime ms)
    {kLastSwitched, 4},       // 21 LAST_SWITCHED (sysUptime ms)
    {kSrcVlan, 2},            // 58 SRC_VLAN (outer VLAN)
    {kDstVlan, 2},            // 59 DST_VLAN (inner VLAN of QinQ, else 0)
    {kInputSnmp, 2},          // 10 INPUT_SNMP (capture interface index)
    {kMinTtl, 1},             // 52 MIN_TTL (hop limit)
    {kMaxTtl, 1},             // 53 MAX_TTL (hop limit)
    {kInSrcMac, 6},           // 56 IN_SRC_MAC
    {kInDstMac, 6},           // 80 IN_DST_MAC
    {kMplsLabel1, 3},         // 70 MPLS_LABEL_1
    {kMplsLabel2, 3},         // 71 MPLS_LABEL_2
    {kMplsLabel3, 3},         // 72 MPLS_LABEL_3
    {kFlowId, 8},             // 148 flowId: the flow's id, the same in each of its records
}};

template <size_t N>
constexpr size_t recordLength(const std::array<TemplateField, N>& fields) {
  size_t n = 0;
  for (const auto& f : fields) n += f.length;
  return n;
}

inline constexpr size_t kHeaderLength = 20;
inline constexpr size_t kIPv4RecordLength = recordLength(kIPv4TemplateFields);  // 79
inline constexpr size_t kIPv6RecordLength = recordLength(kIPv6TemplateFields);  // 103
/// The template FlowSet carrying both templates: set header + 2 x (id, count, fields).
inline constexpr size_t kTemplateFlowSetLength =
    4 + (4 + 4 * kIPv4TemplateFields.size()) + (4 + 4 * kIPv6TemplateFields.size());
/// With local_networks: templates 258 and 259 are 256 and 257 with
/// DIRECTION (61, 1 byte) appended, for the flows that have a direction
/// (local_networks.h); the template FlowSet carries all four.
inline constexpr size_t kTemplateFlowSetLengthWithDirection =
    kTemplateFlowSetLength + (4 + 4 * (kIPv4TemplateFields.size() + 1)) + (4 + 4 * (kIPv6TemplateFields.size() + 1));
/// Largest UDP payload over IPv4.
inline constexpr size_t kMaxUdpPayload = 65507;
/// Smallest max_datagram that still fits header, templates and one IPv6 record
/// (332; 540 with local_networks).
inline constexpr size_t kMinDatagram = kHeaderLength + kTemplateFlowSetLength + ((4 + kIPv6RecordLength + 3) & ~size_t{3});
/// The same with local_networks.
inline constexpr size_t kMinDatagramWithDirection =
    kHeaderLength + kTemplateFlowSetLengthWithDirection + ((4 + kIPv6RecordLength + 1 + 3) & ~size_t{3});
static_assert(kMinDatagram == 332 && kMinDatagramWithDirection == 540,
              "the smallest v9 mtu changed: update README.md (Templates, Direction) and the tests");

struct EncoderConfig {
  uint32_t source_id = 0;                   // header Source ID (observation domain)
  size_t max_datagram = 1400;               // UDP payload limit, header included
  uint32_t template_refresh_packets = 20;   // resend templates every N datagrams (0: never)
  uint64_t template_refresh_ms = 60000;     // ... and after T ms of pipeline time (0: never)
  /// The exporter's "boot" (Unix epoch ms). It is floored to a whole second so
  /// that unix_secs*1000 - sysUptime equals it exactly and a collector
  /// rebuilds each flow's absolute times to the millisecond.
  uint64_t boot_ms = 0;
  /// Set and not empty: flows with a direction go to FlowSets 258/259 with
  /// DIRECTION (61). Not owned; must outlive the encode() calls.
  const LocalNetworks* local_networks = nullptr;
  bool withDirection() const { return local_networks != nullptr && !local_networks->empty(); }
};

/// Protocol state carried from one encode() call to the next.
struct EncoderState {
  uint32_t sequence = 0;                // export packets produced so far = next header sequence
  bool templates_sent = false;          // false: the next datagram carries the templates
  uint64_t last_template_ms = 0;        // now_ms of the last datagram that carried templates
  uint32_t last_template_sequence = 0;  // its sequence number
};

/// Datagrams produced by one encode() call, stored back to back in one buffer
/// so that a reused EncodedDatagrams does not allocate in steady state.
struct EncodedDatagrams {
  struct Entry {
    size_t offset = 0;
    size_t size = 0;
    size_t records = 0;  // data records in this datagram
    bool has_templates = false;
  };
  std::vector<uint8_t> bytes;
  std::vector<Entry> entries;

  size_t size() const { return entries.size(); }
  std::span<const uint8_t> datagram(size_t i) const {
    return {bytes.data() + entries[i].offset, entries[i].size};
  }
  void clear() {
    bytes.clear();
    entries.clear();
  }
};

/// Throws std::invalid_argument when max_datagram is below kMinDatagram or
/// above kMaxUdpPayload.
void validateConfig(const EncoderConfig& config);

/// Encodes records, in order, into datagrams (out is cleared first). Each
/// datagram holds as many records as fit in config.max_datagram; IPv4 and
/// IPv6 records go to FlowSets 256 and 257, several of which may share a
/// datagram; each FlowSet is zero-padded to a 4-byte boundary. Templates lead
/// a datagram when state says they are due. Stops after max_datagrams
/// datagrams; returns how many records were consumed (all of them unless the
/// limit was hit). The config must have passed validateConfig().
size_t encode(const EncoderConfig& config, EncoderState& state,
              std::span<const FlowRecord> records, uint64_t now_ms, EncodedDatagrams& out,
              size_t max_datagrams = SIZE_MAX);

/// What an options datagram reports (RFC 3954 section 6.1, scope System):
/// template 264, TOTAL_BYTES_EXP (40), TOTAL_PKTS_EXP (41: datagrams) and
/// TOTAL_FLOWS_EXP (42), the exporter's counts before this datagram, and with
/// sampling SAMPLING_INTERVAL (34); with sampling also template 266,
/// SAMPLING_INTERVAL and SAMPLING_ALGORITHM (35: 1 deterministic, 2 random).
/// Two templates because nfdump 1.7.1 takes no sampler from a template that
/// has SAMPLING_ALGORITHM, and applies 34 alone to every flow; nfacctd reads
/// either. Each options datagram carries the options templates before their
/// records, so a collector that restarts decodes the next one.
struct OptionsValues {
  uint64_t bytes = 0;
  uint64_t datagrams = 0;
  uint64_t flows = 0;
  bool sampling = false;
  bool random = false;
  uint32_t interval = 1;
};

inline constexpr uint16_t kStatisticsOptionsTemplateId = 264;
inline constexpr uint16_t kSamplingOptionsTemplateId = 266;

/// Encodes one options datagram into out (cleared first), numbered in
/// state's sequence (which it advances) with the header's times as encode()
/// writes them for now_ms.
void encodeOptions(const EncoderConfig& config, EncoderState& state, const OptionsValues& values, uint64_t now_ms,
                   EncodedDatagrams& out);

}  // namespace flowfold::netflow9
