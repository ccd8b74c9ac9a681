// fuzz_ipfix_roundtrip: bytes -> flow records and a sequence of encoder
// operations (append IPv4 / IPv6 records, finish a message, send the
// templates, change the export time) -> the direct MessageEncoder, driven the
// way IpfixExporter drives it (on a full message: finish, then append again)
// -> every message parsed by a small RFC 7011 reader written here -> the
// records read back equal the inputs element by element, in order.
//
// Also checked: every message fits max_message, its header (length, export
// time, observation domain, sequence = data records in earlier messages,
// modulo 2^32), pendingRecords(), the templates (learned from the messages,
// compared with the element list below), and that append() refused a record
// only when it really did not fit. When the input asks for it, the libfixbuf
// encoder runs the same operations and must return the same bytes.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_util.h"
#include "ipfix_encoder.h"

namespace {

namespace ipfix = flowfold::ipfix;
using flowfold::FlowEndReason;
using flowfold::FlowRecord;

using Fields = std::map<uint16_t, std::vector<uint8_t>>;  // element id -> bytes

void putBE(Fields& f, uint16_t id, uint64_t v, size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
  f[id] = std::move(b);
}

// What an IPFIX record must carry for `r` (IANA element ids and lengths
// written out here, not taken from ipfix_fields.h).
Fields expectedFields(const FlowRecord& r) {
  const bool v6 = r.key.ip_version == 6;
  Fields f;
  const size_t alen = v6 ? 16 : 4;
  f[v6 ? 27 : 8].assign(r.key.src_addr.begin(), r.key.src_addr.begin() + alen);   // source*Address
  f[v6 ? 28 : 12].assign(r.key.dst_addr.begin(), r.key.dst_addr.begin() + alen);  // destination*Address
  const bool icmp = r.key.protocol == (v6 ? 58 : 1);
  putBE(f, v6 ? 139 : 32, icmp ? r.key.dst_port : 0, 2);  // icmpTypeCodeIPv6 / IPv4
  putBE(f, 1, r.octets, 8);                // octetDeltaCount
  putBE(f, 2, r.packets, 8);               // packetDeltaCount
  putBE(f, 152, r.first_ms, 8);            // flowStartMilliseconds
  putBE(f, 153, r.last_ms, 8);             // flowEndMilliseconds
  putBE(f, 148, r.flow_id, 8);             // flowId
  putBE(f, 10, r.key.ingress_if, 4);       // ingressInterface
  putBE(f, 7, r.key.src_port, 2);          // sourceTransportPort
  putBE(f, 11, r.key.dst_port, 2);         // destinationTransportPort
  putBE(f, 58, r.key.vlan_id, 2);          // vlanId
  putBE(f, 59, r.key.inner_vlan_id, 2);    // postVlanId: the inner tag again, where nfdump shows it
  putBE(f, 245, r.key.inner_vlan_id, 2);   // dot1qCustomerVlanId
  putBE(f, 6, r.tcp_flags, 2);             // tcpControlBits
  f[56].assign(r.src_mac.begin(), r.src_mac.end());  // sourceMacAddress
  f[80].assign(r.dst_mac.begin(), r.dst_mac.end());  // destinationMacAddress
  // MPLS entries 1-3: the low 24 bits (label | TC | S); an absent entry is 0
  for (int i = 0; i < 3; ++i) putBE(f, 70 + i, r.mpls_stack[i] & 0xffffff, 3);
  putBE(f, 4, r.key.protocol, 1);          // protocolIdentifier
  putBE(f, 5, r.tos, 1);                   // ipClassOfService
  putBE(f, 52, r.min_ttl, 1);              // minimumTTL
  putBE(f, 53, r.max_ttl, 1);              // maximumTTL
  putBE(f, 136, static_cast<uint8_t>(r.end_reason), 1);  // flowEndReason
  putBE(f, 60, r.key.ip_version, 1);       // ipVersion
  return f;
}

std::map<uint16_t, uint16_t> expectedTemplate(bool v6) {
  FlowRecord r;
  r.key.ip_version = v6 ? 6 : 4;
  std::map<uint16_t, uint16_t> t;
  for (const auto& [id, bytes] : expectedFields(r)) t[id] = static_cast<uint16_t>(bytes.size());
  return t;
}

size_t recordLength(bool v6) {
  size_t n = 0;
  for (const auto& [id, len] : expectedTemplate(v6)) n += len;
  return n;
}

// ---- an independent RFC 7011 reader ---------------------------------------

struct Message {
  uint16_t version = 0, length = 0;
  uint32_t export_time = 0, sequence = 0, domain = 0;
  int template_records = 0;
  int options_templates = 0;
  uint16_t last_set = 0;
  std::vector<std::pair<uint16_t, Fields>> records;  // (template id, fields)
};

class Reader {
 public:
  using Template = std::vector<std::pair<uint16_t, uint16_t>>;  // (element id, length)

  Message parse(std::span<const uint8_t> m) {
    Message out;
    FUZZ_CHECK(m.size() >= 16);
    out.version = static_cast<uint16_t>(fuzz::readBE(&m[0], 2));
    out.length = static_cast<uint16_t>(fuzz::readBE(&m[2], 2));
    out.export_time = static_cast<uint32_t>(fuzz::readBE(&m[4], 4));
    out.sequence = static_cast<uint32_t>(fuzz::readBE(&m[8], 4));
    out.domain = static_cast<uint32_t>(fuzz::readBE(&m[12], 4));
    FUZZ_CHECK_EQ(size_t{out.length}, m.size());
    size_t pos = 16;
    FUZZ_CHECK(pos < m.size());  // no empty messages
    while (pos < m.size()) {
      FUZZ_CHECK(m.size() - pos >= 4);
      const auto set_id = static_cast<uint16_t>(fuzz::readBE(&m[pos], 2));
      const auto len = static_cast<size_t>(fuzz::readBE(&m[pos + 2], 2));
      FUZZ_CHECK(len > 4 && len <= m.size() - pos);
      const uint8_t* body = &m[pos + 4];
      if (set_id == 2) {
        templates(body, len - 4, out);
      } else if (set_id == 3) {
        optionsTemplate(body, len - 4, out);
      } else {
        FUZZ_CHECK(set_id >= 256);  // no reserved ids
        data(set_id, body, len - 4, out);
      }
      out.last_set = set_id;
      pos += len;
    }
    return out;
  }

  const std::map<uint16_t, Template>& learned() const { return templates_; }

 private:
  void templates(const uint8_t* p, size_t n, Message& out) {
    size_t pos = 0;
    while (n - pos >= 4) {
      const auto id = static_cast<uint16_t>(fuzz::readBE(p + pos, 2));
      const auto count = static_cast<size_t>(fuzz::readBE(p + pos + 2, 2));
      pos += 4;
      FUZZ_CHECK(id >= 256 && count > 0 && n - pos >= count * 4);
      Template t;
      for (size_t i = 0; i < count; ++i, pos += 4) {
        const auto element = static_cast<uint16_t>(fuzz::readBE(p + pos, 2));
        const auto length = static_cast<uint16_t>(fuzz::readBE(p + pos + 2, 2));
        FUZZ_CHECK((element & 0x8000) == 0 && length != 0xffff);  // no enterprise / variable-length
        t.emplace_back(element, length);
      }
      templates_[id] = std::move(t);
      ++out.template_records;
    }
    FUZZ_CHECK(pos == n);
  }

  // One options template a set (nfdump and nfacctd read no more), its one
  // scope field first.
  void optionsTemplate(const uint8_t* p, size_t n, Message& out) {
    FUZZ_CHECK(n >= 6);
    const auto id = static_cast<uint16_t>(fuzz::readBE(p, 2));
    const auto count = static_cast<size_t>(fuzz::readBE(p + 2, 2));
    const auto scope = static_cast<size_t>(fuzz::readBE(p + 4, 2));
    FUZZ_CHECK(id >= 256 && count > 0 && scope == 1 && n == 6 + 4 * count);
    Template t;
    for (size_t i = 0; i < count; ++i)
      t.emplace_back(static_cast<uint16_t>(fuzz::readBE(p + 6 + 4 * i, 2)),
                     static_cast<uint16_t>(fuzz::readBE(p + 8 + 4 * i, 2)));
    templates_[id] = std::move(t);
    ++out.options_templates;
  }

  void data(uint16_t id, const uint8_t* p, size_t n, Message& out) {
    auto it = templates_.find(id);
    FUZZ_CHECK(it != templates_.end());  // data before its template
    size_t rec_len = 0;
    for (const auto& f : it->second) rec_len += f.second;
    FUZZ_CHECK(rec_len > 0 && n % rec_len == 0);  // flowfold does not pad data sets
    for (size_t pos = 0; pos < n;) {
      Fields f;
      for (const auto& [element, flen] : it->second) {
        FUZZ_CHECK(f.count(element) == 0);
        f[element].assign(p + pos, p + pos + flen);
        pos += flen;
      }
      out.records.emplace_back(id, std::move(f));
    }
  }

  std::map<uint16_t, Template> templates_;
};

FlowRecord makeRecord(FuzzedDataProvider& in, bool v6) {
  static constexpr uint8_t kProtocols[] = {1, 6, 17, 58, 132, 0};
  FlowRecord r;
  r.key.ip_version = v6 ? 6 : 4;
  const size_t alen = v6 ? 16 : 4;
  for (size_t i = 0; i < alen; ++i) r.key.src_addr[i] = in.ConsumeIntegral<uint8_t>();
  for (size_t i = 0; i < alen; ++i) r.key.dst_addr[i] = in.ConsumeIntegral<uint8_t>();
  const uint8_t p = in.ConsumeIntegral<uint8_t>();
  r.key.protocol = p < 192 ? kProtocols[p % 6] : p;
  r.key.src_port = in.ConsumeIntegral<uint16_t>();
  r.key.dst_port = in.ConsumeIntegral<uint16_t>();
  r.key.vlan_id = in.ConsumeIntegral<uint16_t>() & 0x0fff;
  r.key.inner_vlan_id = in.ConsumeIntegral<uint16_t>() & 0x0fff;
  r.key.ingress_if = in.ConsumeIntegral<uint16_t>();
  r.packets = in.ConsumeIntegral<uint64_t>();
  r.octets = in.ConsumeIntegral<uint64_t>();
  r.first_ms = in.ConsumeIntegral<uint64_t>();
  r.last_ms = in.ConsumeIntegral<uint64_t>();
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

class Harness {
 public:
  Harness(uint32_t domain, size_t max_message, bool compare)
      : domain_(domain), max_message_(max_message),
        direct_(ipfix::makeDirectEncoder(domain, max_message)),
        fixbuf_(compare ? ipfix::makeFixbufEncoder(domain, max_message) : nullptr),
        v4_template_(expectedTemplate(false)), v6_template_(expectedTemplate(true)) {}

  void setExportTime(uint32_t seconds) {
    export_time_ = seconds;
    direct_->setExportTime(seconds);
    if (fixbuf_) fixbuf_->setExportTime(seconds);
  }

  void templates() {
    finish();
    message_time_ = export_time_;
    const auto bytes = direct_->encodeTemplates();
    if (fixbuf_) compareBytes(bytes, fixbuf_->encodeTemplates());
    const Message m = check(bytes);
    FUZZ_CHECK_EQ(m.template_records, 2);
    FUZZ_CHECK_EQ(m.options_templates, 2);  // the statistics, 264 and 265
    FUZZ_CHECK(m.records.empty());
    for (const auto& [id, want] : {std::pair{uint16_t{256}, &v4_template_}, std::pair{uint16_t{257}, &v6_template_}}) {
      const auto it = reader_.learned().find(id);
      FUZZ_CHECK(it != reader_.learned().end());
      std::map<uint16_t, uint16_t> got;
      for (const auto& [element, len] : it->second) got[element] = len;
      FUZZ_CHECK(got == *want && got.size() == it->second.size());
    }
    templates_sent_ = true;
  }

  void append(const FlowRecord& r) {
    if (!templates_sent_) templates();
    if (pending_.empty()) message_time_ = export_time_;  // a message takes the time it opens at
    if (!tryAppend(r)) {
      // Refused: the open message must really have had no room for it.
      FUZZ_CHECK(!pending_.empty());  // an empty message takes any record
      finish();
      const bool v6 = r.key.ip_version == 6;
      const size_t need = recordLength(v6) + (last_set_ == (v6 ? 257 : 256) ? 0 : 4);
      FUZZ_CHECK(last_size_ + need > max_message_);
      message_time_ = export_time_;
      FUZZ_CHECK(tryAppend(r));
    }
    pending_.push_back(r);
    FUZZ_CHECK_EQ(direct_->pendingRecords(), pending_.size());
    if (fixbuf_) FUZZ_CHECK_EQ(fixbuf_->pendingRecords(), pending_.size());
  }

  void finish() {
    const auto bytes = direct_->finish();
    if (fixbuf_) compareBytes(bytes, fixbuf_->finish());
    if (bytes.empty()) {
      FUZZ_CHECK(pending_.empty());
      return;
    }
    const Message m = check(bytes);
    FUZZ_CHECK_EQ(m.template_records, 0);
    FUZZ_CHECK_EQ(m.records.size(), pending_.size());
    for (size_t i = 0; i < pending_.size(); ++i) {
      const FlowRecord& want = pending_[i];
      FUZZ_CHECK_EQ(m.records[i].first, want.key.ip_version == 6 ? 257 : 256);
      FUZZ_CHECK(m.records[i].second == expectedFields(want));
    }
    last_size_ = bytes.size();
    last_set_ = m.last_set;
    records_sent_ += static_cast<uint32_t>(pending_.size());
    pending_.clear();
    FUZZ_CHECK_EQ(direct_->pendingRecords(), size_t{0});
  }

  // An options message between two flow messages: both encoders write the
  // same bytes, numbered in the same sequence, which it advances by its
  // records (one per options template); the values read back.
  void options(FuzzedDataProvider& in) {
    if (!templates_sent_) templates();
    finish();
    ipfix::OptionsValues v;
    v.observation_domain = domain_;
    v.system_init_ms = in.ConsumeIntegral<uint64_t>();
    v.observation_ms = in.ConsumeIntegral<uint64_t>();
    v.messages = in.ConsumeIntegral<uint64_t>();
    v.flow_records = in.ConsumeIntegral<uint64_t>();
    v.octets = in.ConsumeIntegral<uint64_t>();
    v.ignored_packets = in.ConsumeIntegral<uint64_t>();
    v.not_sent_flows = in.ConsumeIntegral<uint64_t>();
    message_time_ = export_time_;
    const auto bytes = direct_->encodeOptions(v);
    if (fixbuf_) compareBytes(bytes, fixbuf_->encodeOptions(v));
    const Message m = check(bytes);
    FUZZ_CHECK_EQ(m.records.size(), size_t{2});  // 264 and 265 (no sampling here)
    const Fields& stats = m.records[0].second;
    FUZZ_CHECK_EQ(m.records[0].first, 264);
    FUZZ_CHECK_EQ(fuzz::readBE(stats.at(42).data(), 8), v.flow_records);
    FUZZ_CHECK_EQ(fuzz::readBE(stats.at(164).data(), 8), v.ignored_packets);
    FUZZ_CHECK_EQ(fuzz::readBE(m.records[1].second.at(166).data(), 8), v.not_sent_flows);
    records_sent_ += 2;
  }

 private:
  bool tryAppend(const FlowRecord& r) {
    bool ok;
    bool ok_fixbuf = true;
    if (r.key.ip_version == 6) {
      ipfix::Ipv6Record rec;
      ipfix::writeIpv6Fields(r.key, rec.ip);
      ipfix::writeFlowFields(r, rec.flow);
      ok = direct_->append(rec);
      if (fixbuf_) ok_fixbuf = fixbuf_->append(rec);
    } else {
      ipfix::Ipv4Record rec;
      ipfix::writeIpv4Fields(r.key, rec.ip);
      ipfix::writeFlowFields(r, rec.flow);
      ok = direct_->append(rec);
      if (fixbuf_) ok_fixbuf = fixbuf_->append(rec);
    }
    if (fixbuf_) FUZZ_CHECK_EQ(ok, ok_fixbuf);
    return ok;
  }

  Message check(std::span<const uint8_t> bytes) {
    FUZZ_CHECK(bytes.size() <= max_message_);
    const Message m = reader_.parse(bytes);
    FUZZ_CHECK_EQ(m.version, 10);
    FUZZ_CHECK_EQ(m.export_time, message_time_);
    FUZZ_CHECK_EQ(m.domain, domain_);
    FUZZ_CHECK_EQ(m.sequence, records_sent_);
    return m;
  }

  static void compareBytes(std::span<const uint8_t> direct, std::span<const uint8_t> fixbuf) {
    FUZZ_CHECK_EQ(direct.size(), fixbuf.size());
    for (size_t i = 0; i < direct.size(); ++i) {
      if (direct[i] != fixbuf[i]) {
        std::fprintf(stderr, "direct and libfixbuf messages differ at byte %zu of %zu\n", i, direct.size());
        std::abort();
      }
    }
  }

  const uint32_t domain_;
  const size_t max_message_;
  std::unique_ptr<ipfix::MessageEncoder> direct_;
  std::unique_ptr<ipfix::MessageEncoder> fixbuf_;
  const std::map<uint16_t, uint16_t> v4_template_, v6_template_;
  Reader reader_;
  uint32_t export_time_ = 0;
  uint32_t message_time_ = 0;  // export time when the open message started
  uint32_t records_sent_ = 0;  // data records in finished messages (the sequence)
  bool templates_sent_ = false;
  std::vector<FlowRecord> pending_;  // records of the open message
  size_t last_size_ = 0;
  uint16_t last_set_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint8_t flags = in.ConsumeIntegral<uint8_t>();
  const bool compare = (flags & 1) != 0;
  const uint32_t domain = in.ConsumeIntegral<uint32_t>();
  // From the smallest message that holds the templates (the exporter's own
  // lower bound).
  const size_t smallest = ipfix::templateMessageSize(false, false, false);
  const size_t max_message = (flags & 6) == 0 ? in.ConsumeIntegralInRange<size_t>(smallest, 65535)
                                              : in.ConsumeIntegralInRange<size_t>(smallest, 1500);
  Harness h(domain, max_message, compare);
  // Export time 0 would mean the wall clock (not reproducible): start at 1.
  h.setExportTime(in.ConsumeIntegralInRange<uint32_t>(1, UINT32_MAX));
  for (int op = 0; op < 2000 && in.remaining_bytes() > 0; ++op) {
    const uint8_t kind = in.ConsumeIntegral<uint8_t>();
    if (kind < 200) {
      h.append(makeRecord(in, (kind & 1) != 0));
    } else if (kind < 230) {
      h.finish();
    } else if (kind < 240) {
      h.setExportTime(in.ConsumeIntegralInRange<uint32_t>(1, UINT32_MAX));
    } else if (kind < 248) {
      h.options(in);
    } else {
      h.templates();
    }
  }
  h.finish();
  return 0;
}
