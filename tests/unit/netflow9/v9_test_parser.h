#pragma once
// A small NetFlow v9 decoder written for the tests, independent of the
// encoder: it learns templates from the datagrams themselves and checks the
// framing rules of RFC 3954 (set lengths, 4-byte padding, header count) as it
// goes, reporting violations as test failures.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

namespace v9test {

inline uint64_t readBE(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

struct Record {
  uint16_t template_id = 0;
  std::map<uint16_t, std::vector<uint8_t>> fields;  // field type -> raw bytes

  uint64_t num(uint16_t type) const {
    auto it = fields.find(type);
    if (it == fields.end()) {
      ADD_FAILURE() << "record of template " << template_id << " lacks field " << type;
      return 0;
    }
    return readBE(it->second.data(), it->second.size());
  }
  std::vector<uint8_t> bytes(uint16_t type) const {
    auto it = fields.find(type);
    return it == fields.end() ? std::vector<uint8_t>{} : it->second;
  }
};

struct Datagram {
  uint16_t version = 0;
  uint16_t count = 0;
  uint32_t sys_uptime = 0;
  uint32_t unix_secs = 0;
  uint32_t sequence = 0;
  uint32_t source_id = 0;
  int template_records = 0;
  std::vector<Record> records;
  size_t size = 0;
};

class Parser {
 public:
  using Template = std::vector<std::pair<uint16_t, uint16_t>>;  // (type, length)

  Datagram parse(std::span<const uint8_t> d) {
    Datagram out;
    out.size = d.size();
    if (d.size() < 20) {
      ADD_FAILURE() << "datagram shorter than a header: " << d.size();
      return out;
    }
    out.version = static_cast<uint16_t>(readBE(&d[0], 2));
    out.count = static_cast<uint16_t>(readBE(&d[2], 2));
    out.sys_uptime = static_cast<uint32_t>(readBE(&d[4], 4));
    out.unix_secs = static_cast<uint32_t>(readBE(&d[8], 4));
    out.sequence = static_cast<uint32_t>(readBE(&d[12], 4));
    out.source_id = static_cast<uint32_t>(readBE(&d[16], 4));
    size_t pos = 20;
    while (pos < d.size()) {
      if (d.size() - pos < 4) {
        ADD_FAILURE() << "trailing bytes after last FlowSet at " << pos;
        break;
      }
      const uint16_t set_id = static_cast<uint16_t>(readBE(&d[pos], 2));
      const uint16_t len = static_cast<uint16_t>(readBE(&d[pos + 2], 2));
      if (len < 4 || pos + len > d.size()) {
        ADD_FAILURE() << "FlowSet " << set_id << " length " << len << " out of bounds at " << pos;
        break;
      }
      EXPECT_EQ(len % 4, 0) << "FlowSet " << set_id << " not padded to 4 bytes";
      const uint8_t* body = &d[pos + 4];
      const size_t body_len = len - 4u;
      if (set_id == 0) {
        parseTemplates(body, body_len, out);
      } else if (set_id == 1) {
        parseOptionsTemplates(body, body_len, out);
      } else if (set_id >= 256) {
        parseData(set_id, body, body_len, out);
      } else {
        ADD_FAILURE() << "unexpected FlowSet id " << set_id;
      }
      pos += len;
    }
    EXPECT_EQ(out.count, out.template_records + out.records.size()) << "header count";
    return out;
  }

  const std::map<uint16_t, Template>& templates() const { return templates_; }

 /// Scope fields of options templates are kept as kScope | scope type
  /// (1 System, 2 Interface, ...), apart from the field types.
  static constexpr uint16_t kScope = 0xF000;

 private:
  // RFC 3954 section 6.1: id, scope length and option length in bytes, the
  // scope fields, the option fields; the FlowSet padded to 4 bytes.
  void parseOptionsTemplates(const uint8_t* p, size_t n, Datagram& out) {
    size_t pos = 0;
    while (n - pos >= 6 + 4) {
      const uint16_t id = static_cast<uint16_t>(readBE(p + pos, 2));
      const size_t scope_len = readBE(p + pos + 2, 2), option_len = readBE(p + pos + 4, 2);
      pos += 6;
      if (scope_len % 4 != 0 || option_len % 4 != 0 || n - pos < scope_len + option_len) {
        ADD_FAILURE() << "options template " << id << " malformed";
        return;
      }
      Template t;
      for (size_t i = 0; i < scope_len; i += 4, pos += 4)
        t.emplace_back(static_cast<uint16_t>(kScope | readBE(p + pos, 2)), static_cast<uint16_t>(readBE(p + pos + 2, 2)));
      for (size_t i = 0; i < option_len; i += 4, pos += 4)
        t.emplace_back(static_cast<uint16_t>(readBE(p + pos, 2)), static_cast<uint16_t>(readBE(p + pos + 2, 2)));
      templates_[id] = t;
      ++out.template_records;
    }
    EXPECT_LT(n - pos, 4u) << "more than padding after the options templates";
  }

  void parseTemplates(const uint8_t* p, size_t n, Datagram& out) {
    size_t pos = 0;
    while (n - pos >= 4) {
      const uint16_t id = static_cast<uint16_t>(readBE(p + pos, 2));
      const uint16_t fields = static_cast<uint16_t>(readBE(p + pos + 2, 2));
      pos += 4;
      if (n - pos < fields * 4u) {
        ADD_FAILURE() << "template " << id << " truncated";
        return;
      }
      Template t;
      for (uint16_t i = 0; i < fields; ++i, pos += 4) {
        t.emplace_back(static_cast<uint16_t>(readBE(p + pos, 2)),
                       static_cast<uint16_t>(readBE(p + pos + 2, 2)));
      }
      templates_[id] = t;
      ++out.template_records;
    }
    EXPECT_EQ(pos, n) << "template FlowSet has stray bytes";
  }

  void parseData(uint16_t id, const uint8_t* p, size_t n, Datagram& out) {
    auto it = templates_.find(id);
    if (it == templates_.end()) {
      ADD_FAILURE() << "data FlowSet " << id << " before its template";
      return;
    }
    size_t rec_len = 0;
    for (const auto& f : it->second) rec_len += f.second;
    size_t pos = 0;
    while (n - pos >= rec_len) {
      Record r;
      r.template_id = id;
      for (const auto& [type, len] : it->second) {
        r.fields[type].assign(p + pos, p + pos + len);
        pos += len;
      }
      out.records.push_back(std::move(r));
    }
    EXPECT_LT(n - pos, 4u) << "more than padding left in data FlowSet " << id;
    for (; pos < n; ++pos) EXPECT_EQ(p[pos], 0) << "padding must be zero";
  }

  std::map<uint16_t, Template> templates_;
};

}  // namespace v9test
