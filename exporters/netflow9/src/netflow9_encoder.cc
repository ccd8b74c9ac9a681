#include "flowfold/exporters/netflow9_encoder.h"

#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flowfold/exporters/template_ids.h"
#include "flowfold/flowcache/wire.h"

namespace flowfold::netflow9 {
namespace {

constexpr uint16_t kVersion = 9;
constexpr uint16_t kTemplateFlowSetId = 0;

constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

inline uint8_t* put8(uint8_t* p, uint8_t v) {
  *p = v;
  return p + 1;
}
inline uint8_t* put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
  return p + 2;
}
inline uint8_t* put24(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 16);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v);
  return p + 3;
}
inline uint8_t* put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
  return p + 4;
}
inline uint8_t* put64(uint8_t* p, uint64_t v) {
  put32(p, static_cast<uint32_t>(v >> 32));
  return put32(p + 4, static_cast<uint32_t>(v));
}
inline uint8_t* putBytes(uint8_t* p, const uint8_t* src, size_t n) {
  std::memcpy(p, src, n);
  return p + n;
}

// Values derived from a record once, before its fields are written.
struct Derived {
  uint32_t first_switched;
  uint32_t last_switched;
  uint16_t icmp_type;
};

// sysUptime-relative time of an epoch-ms instant. Instants before boot clamp
// to 0 (never a huge wrapped value); beyond 2^32 ms it wraps as a router's
// sysUptime would.
inline uint32_t relativeMs(uint64_t t_ms, uint64_t boot_ms) {
  return t_ms > boot_ms ? static_cast<uint32_t>(t_ms - boot_ms) : 0;
}

inline Derived derive(const FlowRecord& r, uint64_t boot_ms) {
  const bool icmp = r.key.protocol == (r.key.isIPv6() ? kProtoIcmpv6 : kProtoIcmp);
  return Derived{relativeMs(r.first_ms, boot_ms), relativeMs(r.last_ms, boot_ms),
                 static_cast<uint16_t>(icmp ? r.key.dst_port : 0)};
}

template <uint16_t>
inline constexpr bool kNoWriterFor = false;

// Writes one field. Every (type, length) a template table lists must have a
// branch here; a missing one or a length mismatch fails to compile.
template <uint16_t Type, uint16_t Len>
inline uint8_t* putField(uint8_t* p, const FlowRecord& r, const Derived& d) {
  if constexpr (Type == kInBytes) {
    static_assert(Len == 8);
    return put64(p, r.octets);
  } else if constexpr (Type == kInPkts) {
    static_assert(Len == 8);
    return put64(p, r.packets);
  } else if constexpr (Type == kProtocol) {
    static_assert(Len == 1);
    return put8(p, r.key.protocol);
  } else if constexpr (Type == kSrcTos) {
    static_assert(Len == 1);
    return put8(p, r.tos);
  } else if constexpr (Type == kTcpFlags) {
    static_assert(Len == 1);
    return put8(p, r.tcp_flags);
  } else if constexpr (Type == kL4SrcPort) {
    static_assert(Len == 2);
    return put16(p, r.key.src_port);
  } else if constexpr (Type == kL4DstPort) {
    static_assert(Len == 2);
    return put16(p, r.key.dst_port);
  } else if constexpr (Type == kIpv4SrcAddr) {
    static_assert(Len == 4);
    return putBytes(p, r.key.src_addr.data(), 4);
  } else if constexpr (Type == kIpv4DstAddr) {
    static_assert(Len == 4);
    return putBytes(p, r.key.dst_addr.data(), 4);
  } else if constexpr (Type == kIpv6SrcAddr) {
    static_assert(Len == 16);
    return putBytes(p, r.key.src_addr.data(), 16);
  } else if constexpr (Type == kIpv6DstAddr) {
    static_assert(Len == 16);
    return putBytes(p, r.key.dst_addr.data(), 16);
  } else if constexpr (Type == kInputSnmp) {
    static_assert(Len == 2);
    return put16(p, r.key.ingress_if);
  } else if constexpr (Type == kFirstSwitched) {
    static_assert(Len == 4);
    return put32(p, d.first_switched);
  } else if constexpr (Type == kLastSwitched) {
    static_assert(Len == 4);
    return put32(p, d.last_switched);
  } else if constexpr (Type == kIcmpType) {
    static_assert(Len == 2);
    return put16(p, d.icmp_type);
  } else if constexpr (Type == kMinTtl) {
    static_assert(Len == 1);
    return put8(p, r.min_ttl);
  } else if constexpr (Type == kMaxTtl) {
    static_assert(Len == 1);
    return put8(p, r.max_ttl);
  } else if constexpr (Type == kInSrcMac) {
    static_assert(Len == 6);
    return putBytes(p, r.src_mac.data(), 6);
  } else if constexpr (Type == kInDstMac) {
    static_assert(Len == 6);
    return putBytes(p, r.dst_mac.data(), 6);
  } else if constexpr (Type == kSrcVlan) {
    static_assert(Len == 2);
    return put16(p, r.key.vlan_id);
  } else if constexpr (Type == kDstVlan) {
    static_assert(Len == 2);
    return put16(p, r.key.inner_vlan_id);
  } else if constexpr (Type == kIpProtocolVersion) {
    static_assert(Len == 1);
    return put8(p, r.key.ip_version);
  } else if constexpr (Type == kFlowId) {
    static_assert(Len == 8);
    return put64(p, r.flow_id);
  } else if constexpr (Type == kMplsLabel1 || Type == kMplsLabel2 || Type == kMplsLabel3) {
    // The stack entry as on the wire without its TTL: label | EXP | S. An
    // entry the stack does not reach (or a flow without MPLS) is all zero.
    static_assert(Len == 3);
    return put24(p, mplsSection(r.mpls_stack[Type - kMplsLabel1]));
  } else {
    static_assert(kNoWriterFor<Type>, "template field without a writer");
    return p;
  }
}

template <const auto& Fields, size_t... I>
inline uint8_t* writeRecordImpl(uint8_t* p, const FlowRecord& r, const Derived& d,
                                std::index_sequence<I...>) {
  ((p = putField<Fields[I].type, Fields[I].length>(p, r, d)), ...);
  return p;
}

template <const auto& Fields>
inline uint8_t* writeRecord(uint8_t* p, const FlowRecord& r, const Derived& d) {
  return writeRecordImpl<Fields>(p, r, d, std::make_index_sequence<Fields.size()>{});
}

template <size_t N>
uint8_t* putTemplate(uint8_t* p, uint16_t id, const std::array<TemplateField, N>& fields,
                     bool with_direction = false) {
  p = put16(p, id);
  p = put16(p, static_cast<uint16_t>(N + (with_direction ? 1 : 0)));
  for (const auto& f : fields) {
    p = put16(p, f.type);
    p = put16(p, f.length);
  }
  if (with_direction) {  // DIRECTION, 1 octet, after the fields of the plain template
    p = put16(p, kDirection);
    p = put16(p, 1);
  }
  return p;
}

// The template FlowSet never changes: build it once.
const std::array<uint8_t, kTemplateFlowSetLength>& templateFlowSet() {
  static const auto bytes = [] {
    std::array<uint8_t, kTemplateFlowSetLength> b{};
    uint8_t* p = b.data();
    p = put16(p, kTemplateFlowSetId);
    p = put16(p, static_cast<uint16_t>(kTemplateFlowSetLength));
    p = putTemplate(p, kIpv4TemplateId, kIPv4TemplateFields);
    putTemplate(p, kIpv6TemplateId, kIPv6TemplateFields);
    return b;
  }();
  return bytes;
}

// With local_networks: the four templates.
const std::array<uint8_t, kTemplateFlowSetLengthWithDirection>& templateFlowSetWithDirection() {
  static const auto bytes = [] {
    std::array<uint8_t, kTemplateFlowSetLengthWithDirection> b{};
    uint8_t* p = b.data();
    p = put16(p, kTemplateFlowSetId);
    p = put16(p, static_cast<uint16_t>(kTemplateFlowSetLengthWithDirection));
    p = putTemplate(p, kIpv4TemplateId, kIPv4TemplateFields);
    p = putTemplate(p, kIpv6TemplateId, kIPv6TemplateFields);
    p = putTemplate(p, kIpv4DirectionTemplateId, kIPv4TemplateFields, /*with_direction=*/true);
    putTemplate(p, kIpv6DirectionTemplateId, kIPv6TemplateFields, /*with_direction=*/true);
    return b;
  }();
  return bytes;
}

bool templatesDue(const EncoderConfig& config, const EncoderState& state, uint64_t now_ms) {
  if (!state.templates_sent) return true;
  if (config.template_refresh_packets > 0 &&
      static_cast<uint32_t>(state.sequence - state.last_template_sequence) >=
          config.template_refresh_packets) {
    return true;
  }
  if (config.template_refresh_ms > 0 &&
      (now_ms < state.last_template_ms ||  // clock stepped back: resend, harmless
       now_ms - state.last_template_ms >= config.template_refresh_ms)) {
    return true;
  }
  return false;
}

}  // namespace

void validateConfig(const EncoderConfig& config) {
  const size_t min = config.withDirection() ? kMinDatagramWithDirection : kMinDatagram;
  if (config.max_datagram < min || config.max_datagram > kMaxUdpPayload) {
    throw std::invalid_argument("netflow9: max datagram size " +
                                std::to_string(config.max_datagram) + " must be between " +
                                std::to_string(min) + " and " +
                                std::to_string(kMaxUdpPayload) + " bytes");
  }
}

size_t encode(const EncoderConfig& config, EncoderState& state,
              std::span<const FlowRecord> records, uint64_t now_ms, EncodedDatagrams& out,
              size_t max_datagrams) {
  validateConfig(config);  // also guarantees every datagram takes at least one record
  out.clear();
  const uint64_t boot_ms = config.boot_ms - config.boot_ms % 1000;
  const uint64_t unix_secs = now_ms / 1000;
  // sysUptime at the instant unix_secs names, so that the collector's
  // unix_secs*1000 - sysUptime is exactly boot_ms.
  const uint32_t sys_uptime = relativeMs(unix_secs * 1000, boot_ms);
  const size_t max = config.max_datagram;
  const bool with_direction = config.withDirection();

  size_t i = 0;
  while (i < records.size() && out.entries.size() < max_datagrams) {
    const size_t start = out.bytes.size();
    out.bytes.resize(start + max);
    uint8_t* const base = out.bytes.data() + start;
    EncodedDatagrams::Entry entry;
    entry.offset = start;

    uint8_t* p = base;
    p = put16(p, kVersion);
    p = put16(p, 0);  // count, patched below
    p = put32(p, sys_uptime);
    p = put32(p, static_cast<uint32_t>(unix_secs));
    p = put32(p, state.sequence);
    p = put32(p, config.source_id);
    uint16_t count = 0;

    if (templatesDue(config, state, now_ms)) {
      if (with_direction) {
        const auto& t = templateFlowSetWithDirection();
        p = putBytes(p, t.data(), t.size());
        count += 4;
      } else {
        const auto& t = templateFlowSet();
        p = putBytes(p, t.data(), t.size());
        count += 2;
      }
      entry.has_templates = true;
      state.templates_sent = true;
      state.last_template_ms = now_ms;
      state.last_template_sequence = state.sequence;
    }

    uint8_t* set_start = nullptr;  // open data FlowSet, if any
    uint16_t set_id = 0;
    auto closeSet = [&] {
      if (set_start == nullptr) return;
      const size_t len = static_cast<size_t>(p - set_start);
      const size_t padded = align4(len);
      std::memset(p, 0, padded - len);
      p = set_start + padded;
      put16(set_start + 2, static_cast<uint16_t>(padded));
      set_start = nullptr;
    };

    while (i < records.size()) {
      const FlowRecord& r = records[i];
      const bool v6 = r.key.isIPv6();
      const FlowDirection direction = with_direction ? config.local_networks->direction(r.key) : FlowDirection::kNone;
      const bool directed = direction != FlowDirection::kNone;
      const uint16_t id = directed ? (v6 ? kIpv6DirectionTemplateId : kIpv4DirectionTemplateId)
                                   : (v6 ? kIpv6TemplateId : kIpv4TemplateId);
      const size_t rec_len = (v6 ? kIPv6RecordLength : kIPv4RecordLength) + (directed ? 1 : 0);
      const bool same_set = set_start != nullptr && set_id == id;
      size_t end;  // datagram length if this record is added and its set closed
      if (same_set) {
        end = static_cast<size_t>(set_start - base) + align4(static_cast<size_t>(p - set_start) + rec_len);
      } else {
        const size_t closed =
            set_start != nullptr
                ? static_cast<size_t>(set_start - base) + align4(static_cast<size_t>(p - set_start))
                : static_cast<size_t>(p - base);
        end = closed + align4(4 + rec_len);
      }
      if (end > max) break;
      if (!same_set) {
        closeSet();
        set_start = p;
        set_id = id;
        p = put16(p, id);
        p = put16(p, 0);  // length, patched by closeSet
      }
      const Derived d = derive(r, boot_ms);
      p = v6 ? writeRecord<kIPv6TemplateFields>(p, r, d) : writeRecord<kIPv4TemplateFields>(p, r, d);
      if (directed) p = put8(p, static_cast<uint8_t>(direction));
      ++count;
      ++entry.records;
      ++i;
    }
    closeSet();

    put16(base + 2, count);
    entry.size = static_cast<size_t>(p - base);
    out.bytes.resize(start + entry.size);
    out.entries.push_back(entry);
    ++state.sequence;
  }
  return i;
}

namespace {

constexpr uint16_t kOptionsTemplateFlowSetId = 1;
constexpr uint16_t kScopeSystem = 1;
constexpr uint16_t kSamplingInterval = 34;   // SAMPLING_INTERVAL
constexpr uint16_t kSamplingAlgorithm = 35;  // SAMPLING_ALGORITHM
constexpr uint16_t kTotalBytesExp = 40;      // TOTAL_BYTES_EXP
constexpr uint16_t kTotalPktsExp = 41;       // TOTAL_PKTS_EXP
constexpr uint16_t kTotalFlowsExp = 42;      // TOTAL_FLOWS_EXP

struct OptionsTemplate {
  uint16_t id;
  std::vector<TemplateField> options;  // after the one scope field, System (4 octets: the source id)
};

std::vector<OptionsTemplate> optionsTemplates(bool sampling) {
  std::vector<OptionsTemplate> t;
  t.push_back({kStatisticsOptionsTemplateId, {{kTotalBytesExp, 8}, {kTotalPktsExp, 8}, {kTotalFlowsExp, 8}}});
  if (sampling) {
    t.back().options.push_back({kSamplingInterval, 4});
    t.push_back({kSamplingOptionsTemplateId, {{kSamplingInterval, 4}, {kSamplingAlgorithm, 1}}});
  }
  return t;
}

uint8_t* padTo4(uint8_t* set_start, uint8_t* p) {
  const size_t len = static_cast<size_t>(p - set_start);
  const size_t padded = align4(len);
  std::memset(p, 0, padded - len);
  put16(set_start + 2, static_cast<uint16_t>(padded));
  return set_start + padded;
}

}  // namespace

void encodeOptions(const EncoderConfig& config, EncoderState& state, const OptionsValues& values, uint64_t now_ms,
                   EncodedDatagrams& out) {
  out.clear();
  const uint64_t boot_ms = config.boot_ms - config.boot_ms % 1000;
  const uint64_t unix_secs = now_ms / 1000;
  const std::vector<OptionsTemplate> templates = optionsTemplates(values.sampling);
  out.bytes.resize(512);  // header 20, templates at most 60, records at most 56
  uint8_t* const base = out.bytes.data();
  uint8_t* p = base;
  p = put16(p, kVersion);
  p = put16(p, static_cast<uint16_t>(2 * templates.size()));  // each template and its one record
  p = put32(p, relativeMs(unix_secs * 1000, boot_ms));
  p = put32(p, static_cast<uint32_t>(unix_secs));
  p = put32(p, state.sequence);
  p = put32(p, config.source_id);
  uint8_t* set = p;
  p = put16(p, kOptionsTemplateFlowSetId);
  p = put16(p, 0);
  for (const OptionsTemplate& t : templates) {
    p = put16(p, t.id);
    p = put16(p, 4);  // option scope length: one scope field
    p = put16(p, static_cast<uint16_t>(4 * t.options.size()));
    p = put16(p, kScopeSystem);
    p = put16(p, 4);
    for (const TemplateField& f : t.options) {
      p = put16(p, f.type);
      p = put16(p, f.length);
    }
  }
  p = padTo4(set, p);
  for (const OptionsTemplate& t : templates) {
    set = p;
    p = put16(p, t.id);
    p = put16(p, 0);
    p = put32(p, config.source_id);
    for (const TemplateField& f : t.options) {
      switch (f.type) {
        case kTotalBytesExp: p = put64(p, values.bytes); break;
        case kTotalPktsExp: p = put64(p, values.datagrams); break;
        case kTotalFlowsExp: p = put64(p, values.flows); break;
        case kSamplingInterval: p = put32(p, values.interval); break;
        case kSamplingAlgorithm: p = put8(p, values.random ? 2 : 1); break;
      }
    }
    p = padTo4(set, p);
  }
  EncodedDatagrams::Entry entry;
  entry.size = static_cast<size_t>(p - base);
  out.bytes.resize(entry.size);
  out.entries.push_back(entry);
  ++state.sequence;
}

}  // namespace flowfold::netflow9
