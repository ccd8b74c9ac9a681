#pragma once
// A small, independent IPFIX reader for the tests (RFC 7011 sections 3 and
// 8): message headers, template sets and data sets of fixed-length fields.
// It shares no code with the exporter and does not use libfixbuf. Anything
// it does not expect is a decoding error, reported as a string.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace flowfold::ipfix_test {

inline uint64_t readBig(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

struct TemplateRecord {
  uint16_t id = 0;
  uint16_t scope = 0;  // options templates (set 3): how many of the first fields are scope fields
  std::vector<std::pair<uint16_t, uint16_t>> fields;  // (element id, length); reverse (PEN 29305): id | 0x8000
};

struct DataRecord {
  uint16_t template_id = 0;
  std::map<uint16_t, std::vector<uint8_t>> fields;  // element id (reverse: id | 0x8000) -> raw value

  uint64_t number(uint16_t id) const {
    auto it = fields.find(id);
    return it == fields.end() ? ~uint64_t{0} : readBig(it->second.data(), it->second.size());
  }
};

struct Message {
  uint16_t version = 0;
  uint16_t length = 0;
  uint32_t export_time = 0;
  uint32_t sequence = 0;
  uint32_t domain = 0;
  std::vector<uint16_t> set_ids;  // in order
  std::vector<TemplateRecord> templates;
  std::vector<DataRecord> records;
  std::vector<TemplateRecord> options_templates;  // set 3
  std::vector<DataRecord> options;                // records of options templates
  std::vector<uint16_t> withdrawn;                // template ids withdrawn (field count 0)
};

/// Keeps the templates of one transport session across messages.
class Decoder {
 public:
  /// Decodes one whole message; false (and error()) on any malformation.
  bool decode(std::span<const uint8_t> bytes, Message& out) {
    out = Message{};
    if (bytes.size() < 16) return fail("message shorter than its header");
    const uint8_t* p = bytes.data();
    out.version = static_cast<uint16_t>(readBig(p, 2));
    out.length = static_cast<uint16_t>(readBig(p + 2, 2));
    out.export_time = static_cast<uint32_t>(readBig(p + 4, 4));
    out.sequence = static_cast<uint32_t>(readBig(p + 8, 4));
    out.domain = static_cast<uint32_t>(readBig(p + 12, 4));
    if (out.version != 10) return fail("version " + std::to_string(out.version));
    if (out.length != bytes.size()) {
      return fail("header length " + std::to_string(out.length) + " but message has " +
                  std::to_string(bytes.size()));
    }
    size_t pos = 16;
    while (pos < bytes.size()) {
      if (bytes.size() - pos < 4) return fail("truncated set header");
      const uint16_t set_id = static_cast<uint16_t>(readBig(p + pos, 2));
      const uint16_t set_len = static_cast<uint16_t>(readBig(p + pos + 2, 2));
      if (set_len <= 4) return fail("empty or short set " + std::to_string(set_len));
      if (set_len > bytes.size() - pos) return fail("set overruns the message");
      out.set_ids.push_back(set_id);
      const std::span<const uint8_t> body = bytes.subspan(pos + 4, set_len - 4u);
      bool ok = false;
      if (set_id == 2 || set_id == 3) {
        ok = decodeTemplates(body, out, set_id == 3);
      } else if (set_id >= 256) {
        ok = decodeData(set_id, body, out);
      } else {
        ok = fail("unexpected set id " + std::to_string(set_id));
      }
      if (!ok) return false;
      pos += set_len;
    }
    return true;
  }

  /// Splits a byte stream (file, TCP) into messages and decodes them all.
  bool decodeStream(std::span<const uint8_t> bytes, std::vector<Message>& out) {
    size_t pos = 0;
    while (pos < bytes.size()) {
      if (bytes.size() - pos < 4) return fail("truncated message in stream");
      const size_t len = readBig(bytes.data() + pos + 2, 2);
      if (len < 16 || len > bytes.size() - pos) return fail("bad message length in stream");
      Message m;
      if (!decode(bytes.subspan(pos, len), m)) return false;
      out.push_back(std::move(m));
      pos += len;
    }
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  bool fail(std::string why) {
    error_ = std::move(why);
    return false;
  }

  bool decodeTemplates(std::span<const uint8_t> body, Message& out, bool options) {
    size_t pos = 0;
    while (body.size() - pos >= 4) {
      TemplateRecord t;
      t.id = static_cast<uint16_t>(readBig(body.data() + pos, 2));
      const size_t count = readBig(body.data() + pos + 2, 2);
      pos += 4;
      if (count == 0) {  // withdrawal (RFC 7011 section 8.1): 2 or 3 withdraws every template of the set's kind
        if (t.id != (options ? 3 : 2) && t.id < 256) return fail("withdrawal of template id " + std::to_string(t.id));
        if (t.id < 256) {
          std::erase_if(templates_, [&](const auto& kv) { return (kv.second.scope != 0) == options; });
        } else if (templates_.erase(t.id) == 0) {
          return fail("withdrawal of unknown template " + std::to_string(t.id));
        }
        out.withdrawn.push_back(t.id);
        continue;
      }
      if (t.id < 256) return fail("template id " + std::to_string(t.id));
      if (options) {
        if (body.size() - pos < 2) return fail("truncated options template record");
        t.scope = static_cast<uint16_t>(readBig(body.data() + pos, 2));
        pos += 2;
        if (t.scope == 0 || t.scope > count) return fail("options template scope count " + std::to_string(t.scope));
      }
      for (size_t i = 0; i < count; ++i) {
        if (body.size() - pos < 4) return fail("truncated template record");
        const uint16_t id = static_cast<uint16_t>(readBig(body.data() + pos, 2));
        const uint16_t len = static_cast<uint16_t>(readBig(body.data() + pos + 2, 2));
        pos += 4;
        if (id & 0x8000) {
          // RFC 5103's reverse elements only, kept under id | 0x8000.
          if (body.size() - pos < 4) return fail("truncated enterprise number");
          const uint64_t pen = readBig(body.data() + pos, 4);
          pos += 4;
          if (pen != 29305) return fail("enterprise element of PEN " + std::to_string(pen) + " not expected");
        }
        if (len == 0xFFFF) return fail("variable-length element not expected");
        t.fields.emplace_back(id, len);
      }
      templates_[t.id] = t;
      (options ? out.options_templates : out.templates).push_back(std::move(t));
    }
    if (pos != body.size()) return fail("padding after template records");
    return true;
  }

  bool decodeData(uint16_t set_id, std::span<const uint8_t> body, Message& out) {
    auto it = templates_.find(set_id);
    if (it == templates_.end()) {
      return fail("data set before its template " + std::to_string(set_id));
    }
    size_t record_len = 0;
    for (const auto& f : it->second.fields) record_len += f.second;
    if (body.size() % record_len != 0) return fail("data set is not whole records");
    for (size_t pos = 0; pos < body.size(); pos += record_len) {
      DataRecord r;
      r.template_id = set_id;
      size_t off = pos;
      for (const auto& [id, len] : it->second.fields) {
        if (r.fields.count(id)) return fail("element repeated in template");
        r.fields[id].assign(body.data() + off, body.data() + off + len);
        off += len;
      }
      (it->second.scope != 0 ? out.options : out.records).push_back(std::move(r));
    }
    return true;
  }

  std::map<uint16_t, TemplateRecord> templates_;
  std::string error_;
};

}  // namespace flowfold::ipfix_test
