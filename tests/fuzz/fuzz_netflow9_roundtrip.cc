// fuzz_netflow9_roundtrip: bytes -> flow records and an encoder
// configuration -> netflow9::encode() over several calls (time may step
// back, max_datagrams may cut a call short) -> every datagram parsed by a
// small RFC 3954 reader written here -> the records read back equal the
// inputs field by field (what v9 carries), in order, none lost or repeated.
//
// Also checked: every datagram fits max_datagram, sequence numbers are
// consecutive (modulo 2^32) from the initial state, header fields, the
// templates (learned from the datagrams, compared with the field list
// below), their refresh by datagram count and by time, and that a datagram
// closed while records were left had no room for the next one.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <vector>

#include "flowfold/exporters/netflow9_encoder.h"
#include "fuzz_util.h"

namespace {

namespace nf9 = flowfold::netflow9;
using flowfold::FlowEndReason;
using flowfold::FlowRecord;

using Fields = std::map<uint16_t, std::vector<uint8_t>>;  // field type -> bytes
using Template = std::vector<std::pair<uint16_t, uint16_t>>;  // (type, length)

void putBE(Fields& f, uint16_t type, uint64_t v, size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
  f[type] = std::move(b);
}

uint32_t relative(uint64_t t_ms, uint64_t boot_floor_ms) {
  return t_ms > boot_floor_ms ? static_cast<uint32_t>(t_ms - boot_floor_ms) : 0;
}

// What a v9 record must carry for `r` (RFC 3954 section 8 field types; the
// numbers are written out here, not taken from the encoder's tables).
Fields expectedFields(const FlowRecord& r, uint64_t boot_floor_ms) {
  const bool v6 = r.key.ip_version == 6;
  Fields f;
  const size_t alen = v6 ? 16 : 4;
  f[v6 ? 27 : 8].assign(r.key.src_addr.begin(), r.key.src_addr.begin() + alen);  // *_SRC_ADDR
  f[v6 ? 28 : 12].assign(r.key.dst_addr.begin(), r.key.dst_addr.begin() + alen);  // *_DST_ADDR
  putBE(f, 7, r.key.src_port, 2);     // L4_SRC_PORT
  putBE(f, 11, r.key.dst_port, 2);    // L4_DST_PORT
  putBE(f, 4, r.key.protocol, 1);     // PROTOCOL
  putBE(f, 60, r.key.ip_version, 1);  // IP_PROTOCOL_VERSION
  putBE(f, 5, r.tos, 1);              // SRC_TOS
  putBE(f, 6, r.tcp_flags, 1);        // TCP_FLAGS
  const bool icmp = r.key.protocol == (v6 ? 58 : 1);
  putBE(f, 32, icmp ? r.key.dst_port : 0, 2);  // ICMP_TYPE
  putBE(f, 2, r.packets, 8);                   // IN_PKTS
  putBE(f, 1, r.octets, 8);                    // IN_BYTES
  putBE(f, 22, relative(r.first_ms, boot_floor_ms), 4);  // FIRST_SWITCHED
  putBE(f, 21, relative(r.last_ms, boot_floor_ms), 4);   // LAST_SWITCHED
  putBE(f, 58, r.key.vlan_id, 2);     // SRC_VLAN
  putBE(f, 59, r.key.inner_vlan_id, 2);  // DST_VLAN: the inner (customer) tag, where nfdump shows it
  putBE(f, 10, r.key.ingress_if, 2);  // INPUT_SNMP
  putBE(f, 52, r.min_ttl, 1);         // MIN_TTL
  putBE(f, 53, r.max_ttl, 1);         // MAX_TTL
  f[56].assign(r.src_mac.begin(), r.src_mac.end());  // IN_SRC_MAC
  f[80].assign(r.dst_mac.begin(), r.dst_mac.end());  // IN_DST_MAC
  // MPLS entries 1-3: the low 24 bits (label | TC | S); an absent entry is 0
  for (int i = 0; i < 3; ++i) putBE(f, 70 + i, r.mpls_stack[i] & 0xffffff, 3);
  putBE(f, 148, r.flow_id, 8);        // flowId
  return f;
}

std::map<uint16_t, uint16_t> expectedTemplate(bool v6) {
  FlowRecord r;
  r.key.ip_version = v6 ? 6 : 4;
  std::map<uint16_t, uint16_t> t;
  for (const auto& [type, bytes] : expectedFields(r, 0)) t[type] = static_cast<uint16_t>(bytes.size());
  return t;
}

// ---- an independent RFC 3954 reader ------------------------------------

struct Datagram {
  uint16_t version = 0, count = 0;
  uint32_t sys_uptime = 0, unix_secs = 0, sequence = 0, source_id = 0;
  int template_records = 0;
  std::vector<std::pair<uint16_t, Fields>> records;  // (template id, fields)
};

class Reader {
 public:
  Datagram parse(std::span<const uint8_t> d) {
    Datagram out;
    FUZZ_CHECK(d.size() >= 20);
    out.version = static_cast<uint16_t>(fuzz::readBE(&d[0], 2));
    out.count = static_cast<uint16_t>(fuzz::readBE(&d[2], 2));
    out.sys_uptime = static_cast<uint32_t>(fuzz::readBE(&d[4], 4));
    out.unix_secs = static_cast<uint32_t>(fuzz::readBE(&d[8], 4));
    out.sequence = static_cast<uint32_t>(fuzz::readBE(&d[12], 4));
    out.source_id = static_cast<uint32_t>(fuzz::readBE(&d[16], 4));
    size_t pos = 20;
    while (pos < d.size()) {
      FUZZ_CHECK(d.size() - pos >= 4);  // no stray bytes after the last FlowSet
      const auto set_id = static_cast<uint16_t>(fuzz::readBE(&d[pos], 2));
      const auto len = static_cast<size_t>(fuzz::readBE(&d[pos + 2], 2));
      FUZZ_CHECK(len >= 4 && len <= d.size() - pos);
      FUZZ_CHECK(len % 4 == 0);  // flowfold pads every FlowSet
      const uint8_t* body = &d[pos + 4];
      if (set_id == 0) {
        templates(body, len - 4, out);
      } else {
        FUZZ_CHECK(set_id >= 256);  // no options templates (1) or reserved ids
        data(set_id, body, len - 4, out);
      }
      pos += len;
    }
    FUZZ_CHECK_EQ(size_t{out.count}, out.template_records + out.records.size());
    return out;
  }

  const std::map<uint16_t, Template>& learned() const { return templates_; }

 private:
  void templates(const uint8_t* p, size_t n, Datagram& out) {
    size_t pos = 0;
    while (n - pos >= 4) {
      const auto id = static_cast<uint16_t>(fuzz::readBE(p + pos, 2));
      const auto count = static_cast<size_t>(fuzz::readBE(p + pos + 2, 2));
      pos += 4;
      FUZZ_CHECK(id >= 256 && count > 0 && n - pos >= count * 4);
      Template t;
      for (size_t i = 0; i < count; ++i, pos += 4)
        t.emplace_back(static_cast<uint16_t>(fuzz::readBE(p + pos, 2)),
                       static_cast<uint16_t>(fuzz::readBE(p + pos + 2, 2)));
      templates_[id] = std::move(t);
      ++out.template_records;
    }
    FUZZ_CHECK(pos == n);  // the template FlowSet needs no padding
  }

  void data(uint16_t id, const uint8_t* p, size_t n, Datagram& out) {
    auto it = templates_.find(id);
    FUZZ_CHECK(it != templates_.end());  // data before its template
    size_t rec_len = 0;
    for (const auto& f : it->second) rec_len += f.second;
    FUZZ_CHECK(rec_len > 0);
    size_t pos = 0;
    while (n - pos >= rec_len) {
      Fields f;
      for (const auto& [type, flen] : it->second) {
        FUZZ_CHECK(f.count(type) == 0);
        f[type].assign(p + pos, p + pos + flen);
        pos += flen;
      }
      out.records.emplace_back(id, std::move(f));
    }
    FUZZ_CHECK(n - pos < 4);  // only padding is left, and it is zero
    for (; pos < n; ++pos) FUZZ_CHECK(p[pos] == 0);
  }

  std::map<uint16_t, Template> templates_;
};

// ---- inputs from the fuzzer's bytes --------------------------------------

FlowRecord makeRecord(FuzzedDataProvider& in, uint64_t boot_ms) {
  static constexpr uint8_t kProtocols[] = {1, 6, 17, 58, 132};
  FlowRecord r;
  const uint8_t kind = in.ConsumeIntegral<uint8_t>();
  // Mostly IPv4 / IPv6; sometimes a version the encoder files under IPv4.
  r.key.ip_version = (kind & 7) < 4 ? 4 : (kind & 7) < 7 ? 6 : in.ConsumeIntegral<uint8_t>();
  const size_t alen = r.key.ip_version == 6 ? 16 : 4;
  for (size_t i = 0; i < alen; ++i) r.key.src_addr[i] = in.ConsumeIntegral<uint8_t>();
  for (size_t i = 0; i < alen; ++i) r.key.dst_addr[i] = in.ConsumeIntegral<uint8_t>();
  r.key.protocol = (kind & 0x18) != 0x18 ? kProtocols[(kind >> 5) % 5] : in.ConsumeIntegral<uint8_t>();
  r.key.src_port = in.ConsumeIntegral<uint16_t>();
  r.key.dst_port = in.ConsumeIntegral<uint16_t>();
  r.key.vlan_id = in.ConsumeIntegral<uint16_t>() & 0x0fff;
  r.key.inner_vlan_id = in.ConsumeIntegral<uint16_t>() & 0x0fff;  // DST_VLAN
  r.key.ingress_if = in.ConsumeIntegral<uint16_t>();
  r.packets = in.ConsumeIntegral<uint64_t>();
  r.octets = in.ConsumeIntegral<uint64_t>();
  // Around boot (before it clamps to 0), or anywhere (wraps past 2^32 ms).
  if (in.ConsumeBool()) {
    r.first_ms = boot_ms + in.ConsumeIntegralInRange<uint64_t>(0, 10'000'000) - 5'000'000;
    r.last_ms = r.first_ms + in.ConsumeIntegralInRange<uint64_t>(0, 3'600'000);
  } else {
    r.first_ms = in.ConsumeIntegral<uint64_t>();
    r.last_ms = in.ConsumeIntegral<uint64_t>();
  }
  for (auto& e : r.mpls_stack) e = in.ConsumeIntegral<uint32_t>() & 0x1ffffff;
  for (auto& b : r.src_mac) b = in.ConsumeIntegral<uint8_t>();
  for (auto& b : r.dst_mac) b = in.ConsumeIntegral<uint8_t>();
  r.tcp_flags = in.ConsumeIntegral<uint8_t>();
  r.tos = in.ConsumeIntegral<uint8_t>();
  r.min_ttl = in.ConsumeIntegral<uint8_t>();
  r.max_ttl = in.ConsumeIntegral<uint8_t>();
  r.end_reason = static_cast<FlowEndReason>(in.ConsumeIntegralInRange<uint8_t>(1, 5));
  r.flow_id = in.ConsumeIntegral<uint64_t>();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);

  nf9::EncoderConfig cfg;
  cfg.source_id = in.ConsumeIntegral<uint32_t>();
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:  // invalid: must be refused
      cfg.max_datagram = in.ConsumeBool() ? in.ConsumeIntegralInRange<size_t>(0, nf9::kMinDatagram - 1)
                                          : in.ConsumeIntegralInRange<size_t>(nf9::kMaxUdpPayload + 1, 1 << 20);
      try {
        nf9::validateConfig(cfg);
      } catch (const std::invalid_argument&) {
        return 0;
      }
      FUZZ_CHECK(!"validateConfig accepted an out-of-range max_datagram");
      return 0;
    case 1:
      cfg.max_datagram = in.ConsumeIntegralInRange<size_t>(nf9::kMinDatagram, nf9::kMaxUdpPayload);
      break;
    default:  // small datagrams: many of them per call
      cfg.max_datagram = in.ConsumeIntegralInRange<size_t>(nf9::kMinDatagram, nf9::kMinDatagram + 600);
      break;
  }
  cfg.template_refresh_packets = in.ConsumeIntegralInRange<uint32_t>(0, 6);
  cfg.template_refresh_ms = in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<uint64_t>(1, 300'000);
  uint64_t now_ms = in.ConsumeBool() ? in.ConsumeIntegral<uint64_t>()
                                     : 1'700'000'000'000 + in.ConsumeIntegralInRange<uint64_t>(0, 1'000'000);
  cfg.boot_ms = in.ConsumeBool() ? now_ms - in.ConsumeIntegralInRange<uint64_t>(0, 10'000'000)
                                 : in.ConsumeIntegral<uint64_t>();
  const uint64_t boot_floor = cfg.boot_ms - cfg.boot_ms % 1000;

  nf9::EncoderState state;
  state.sequence = in.ConsumeIntegral<uint32_t>();
  uint32_t next_sequence = state.sequence;
  bool seen_templates = false;
  uint32_t last_template_sequence = 0;
  uint64_t last_template_ms = 0;

  const auto v4_template = expectedTemplate(false);
  const auto v6_template = expectedTemplate(true);

  Reader reader;
  nf9::EncodedDatagrams out;
  std::vector<FlowRecord> records;  // every record offered so far
  size_t consumed_total = 0;        // records encoded so far
  for (int call = 0; call < 24 && (in.remaining_bytes() > 0 || consumed_total < records.size()); ++call) {
    const size_t fresh = in.ConsumeIntegralInRange<size_t>(0, 48);
    for (size_t i = 0; i < fresh && in.remaining_bytes() > 0; ++i) records.push_back(makeRecord(in, cfg.boot_ms));
    // Pipeline time: forward mostly, sometimes back.
    const uint64_t step = in.ConsumeIntegralInRange<uint64_t>(0, 200'000);
    now_ms = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? now_ms - step / 10 : now_ms + step;
    const size_t max_datagrams = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? in.ConsumeIntegralInRange<size_t>(0, 3)
                                                                         : SIZE_MAX;

    const std::span<const FlowRecord> offered(records.data() + consumed_total, records.size() - consumed_total);
    const size_t consumed = nf9::encode(cfg, state, offered, now_ms, out, max_datagrams);
    FUZZ_CHECK(consumed <= offered.size());
    FUZZ_CHECK(out.size() <= max_datagrams);
    if (out.size() < max_datagrams) FUZZ_CHECK_EQ(consumed, offered.size());
    FUZZ_CHECK(out.entries.size() == out.size());

    size_t at = 0;  // index in `offered`
    for (size_t d = 0; d < out.size(); ++d) {
      const auto bytes = out.datagram(d);
      const auto& entry = out.entries[d];
      FUZZ_CHECK(bytes.size() <= cfg.max_datagram);
      FUZZ_CHECK(bytes.size() % 4 == 0);
      FUZZ_CHECK(entry.records > 0);  // encode() never sends an empty datagram
      const Datagram dg = reader.parse(bytes);
      FUZZ_CHECK_EQ(dg.version, 9);
      FUZZ_CHECK_EQ(dg.sequence, next_sequence);
      ++next_sequence;
      FUZZ_CHECK_EQ(dg.source_id, cfg.source_id);
      FUZZ_CHECK_EQ(dg.unix_secs, static_cast<uint32_t>(now_ms / 1000));
      FUZZ_CHECK_EQ(dg.sys_uptime, relative(now_ms / 1000 * 1000, boot_floor));
      FUZZ_CHECK_EQ(dg.template_records != 0, entry.has_templates);
      FUZZ_CHECK_EQ(dg.records.size(), entry.records);

      // Templates: first datagram, then every template_refresh_packets
      // datagrams and every template_refresh_ms of pipeline time.
      if (!seen_templates) FUZZ_CHECK(entry.has_templates);
      if (seen_templates && cfg.template_refresh_packets > 0 &&
          static_cast<uint32_t>(dg.sequence - last_template_sequence) >= cfg.template_refresh_packets)
        FUZZ_CHECK(entry.has_templates);
      if (seen_templates && cfg.template_refresh_ms > 0 &&
          (now_ms < last_template_ms || now_ms - last_template_ms >= cfg.template_refresh_ms))
        FUZZ_CHECK(entry.has_templates);
      if (entry.has_templates) {
        FUZZ_CHECK_EQ(dg.template_records, 2);
        seen_templates = true;
        last_template_sequence = dg.sequence;
        last_template_ms = now_ms;
        for (const auto& [id, want] : {std::pair{uint16_t{256}, &v4_template}, std::pair{uint16_t{257}, &v6_template}}) {
          const auto it = reader.learned().find(id);
          FUZZ_CHECK(it != reader.learned().end());
          std::map<uint16_t, uint16_t> got;
          for (const auto& [type, len] : it->second) got[type] = len;
          FUZZ_CHECK(got == *want && got.size() == it->second.size());
        }
      }

      for (const auto& [tid, fields] : dg.records) {
        FUZZ_CHECK(at < consumed);
        const FlowRecord& want = offered[at++];
        FUZZ_CHECK_EQ(tid, want.key.ip_version == 6 ? 257 : 256);
        FUZZ_CHECK(fields == expectedFields(want, boot_floor));
      }
      // Closed with records left: the next one had no room.
      if (at < offered.size()) {
        size_t next_len = 0;  // the record's length, from the expected template
        for (const auto& [type, len] : offered[at].key.ip_version == 6 ? v6_template : v4_template) next_len += len;
        FUZZ_CHECK(bytes.size() + 4 + next_len + 3 > cfg.max_datagram);
      }
    }
    FUZZ_CHECK_EQ(at, consumed);
    FUZZ_CHECK_EQ(state.sequence, next_sequence);
    consumed_total += consumed;
  }
  return 0;
}
