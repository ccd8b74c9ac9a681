// MessageEncoder without libfixbuf on the data path: the packed record
// (ipfix_fields.h) already has the wire layout, so encoding is a byte swap
// per integer field, written straight into the message. Its output is the same, byte for byte, as
// the libfixbuf encoder's (tested), which stays the reference.

#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <vector>

#include "ipfix_application.h"
#include "ipfix_encoder.h"

namespace flowfold::ipfix {

namespace {


void put16(uint8_t* p, uint16_t v) {
  v = toNetwork(v);
  std::memcpy(p, &v, sizeof v);
}
void put32(uint8_t* p, uint32_t v) {
  v = toNetwork(v);
  std::memcpy(p, &v, sizeof v);
}

class DirectEncoder final : public PackedRecordEncoder<DirectEncoder> {
  friend class PackedRecordEncoder<DirectEncoder>;  // calls appendRecord()

 public:
  DirectEncoder(uint32_t observation_domain, size_t max_message, bool with_direction, bool biflow, bool sampling,
                bool applications)
      : domain_(observation_domain), max_message_(max_message),
        templates_(templateLayouts(with_direction, biflow, applications)), sampling_(sampling),
        applications_(applications), buf_(max_message) {
    if (max_message < templateMessageSize(with_direction, biflow, sampling, applications))
      throw std::invalid_argument("IPFIX: a message of " + std::to_string(max_message) + " bytes cannot hold the templates");
  }

  void setExportTime(uint32_t seconds) override { export_time_ = seconds; }

  using PackedRecordEncoder::append;
  // One pass: each member of the FlowRecord goes into the message, swapped
  // (the packed host-order record in between was half the encoder's work).
  bool append(const FlowRecord& record) override {
    if (applications_) {
      return record.key.ip_version == 6 ? appendWithApplication<Ipv6Record>(kIpv6ApplicationTemplateId, record)
                                        : appendWithApplication<Ipv4Record>(kIpv4ApplicationTemplateId, record);
    }
    return record.key.ip_version == 6 ? appendFlow<Ipv6Record>(kIpv6TemplateId, record)
                                      : appendFlow<Ipv4Record>(kIpv4TemplateId, record);
  }

  bool append(const FlowRecord& record, FlowDirection direction) override {
    if (direction == FlowDirection::kNone) return append(record);
    if (applications_) {
      return record.key.ip_version == 6
                 ? appendWithApplication<Ipv6DirectionRecord>(kIpv6DirectionApplicationTemplateId, record, direction)
                 : appendWithApplication<Ipv4DirectionRecord>(kIpv4DirectionApplicationTemplateId, record, direction);
    }
    return record.key.ip_version == 6
               ? appendFlow<Ipv6DirectionRecord>(kIpv6DirectionTemplateId, record, direction)
               : appendFlow<Ipv4DirectionRecord>(kIpv4DirectionTemplateId, record, direction);
  }

  size_t pendingRecords() const override { return records_; }

  std::span<const uint8_t> finish() override {
    if (used_ == 0) return {};
    closeSet();
    put16(buf_.data() + 2, static_cast<uint16_t>(used_));
    const size_t size = used_;
    sequence_ += static_cast<uint32_t>(records_);  // wraps modulo 2^32, as RFC 7011 says
    used_ = 0;
    records_ = 0;
    return {buf_.data(), size};
  }

  std::span<const uint8_t> encodeTemplates() override {
    if (used_ != 0) throw std::logic_error("IPFIX: encodeTemplates() with an open message");
    startMessage();
    openSet(kTemplateSetId);
    for (const TemplateLayout& t : templates_) writeTemplate(t);
    closeSet();
    used_ += writeOptionsTemplateSets(buf_.data() + used_, sampling_);
    return finish();
  }

  std::span<const uint8_t> encodeOptions(const OptionsValues& values) override {
    if (used_ != 0) throw std::logic_error("IPFIX: encodeOptions() with an open message");
    const size_t size = writeOptionsMessage(buf_.data(), values, exportTime(), sequence_);
    sequence_ += static_cast<uint32_t>(optionsRecordCount(values.sampling));
    return {buf_.data(), size};
  }

  std::span<const uint8_t> encodeWithdrawals() override {
    if (used_ != 0) throw std::logic_error("IPFIX: encodeWithdrawals() with an open message");
    std::vector<uint16_t> ids;
    for (const TemplateLayout& t : templates_) ids.push_back(t.id);
    const size_t size = writeWithdrawalMessage(buf_.data(), ids, sampling_, domain_, exportTime(), sequence_);
    return {buf_.data(), size};
  }

 private:
  void startMessage() {
    uint8_t* p = buf_.data();
    put16(p, kIpfixVersion);
    put16(p + 2, 0);  // length, set by finish()
    put32(p + 4, exportTime());
    put32(p + 8, sequence_);
    put32(p + 12, domain_);
    used_ = kMessageHeaderSize;
  }

  // As libfixbuf does: no pipeline time yet means the wall clock.
  uint32_t exportTime() const {
    return export_time_ != 0 ? export_time_ : static_cast<uint32_t>(std::time(nullptr));
  }

  void openSet(uint16_t set_id) {
    set_start_ = used_;
    put16(buf_.data() + used_, set_id);
    used_ += kSetHeaderSize;
    open_set_ = set_id;
  }

  void closeSet() {
    if (open_set_ == 0) return;
    put16(buf_.data() + set_start_ + 2, static_cast<uint16_t>(used_ - set_start_));
    open_set_ = 0;
  }

  void writeTemplate(const TemplateLayout& t) {
    uint8_t* p = buf_.data() + used_;
    put16(p, t.id);
    put16(p + 2, static_cast<uint16_t>(t.fieldCount()));
    p += 4;
    for (const std::span<const FieldSpec> group : {t.ip, std::span<const FieldSpec>(kFlowFields), t.tail}) {
      for (const FieldSpec& f : group) {
        // An enterprise-specific element: the enterprise bit, then its PEN (RFC 7011 section 3.2).
        put16(p, f.enterprise != 0 ? static_cast<uint16_t>(f.id | 0x8000) : f.id);
        put16(p + 2, f.length);
        p += 4;
        if (f.enterprise != 0) {
          put32(p, f.enterprise);
          p += 4;
        }
      }
    }
    used_ = static_cast<size_t>(p - buf_.data());
  }

  // Room for one more record of template `tid` in the open message (opening
  // the message or the set as needed), counted as written; nullptr when the
  // message is full.
  template <class Record>
  Record* reserveRecord(uint16_t tid) {
    return reinterpret_cast<Record*>(reserveBytes(tid, sizeof(Record)));  // packed: any address will do
  }
  uint8_t* reserveBytes(uint16_t tid, size_t bytes) {
    const size_t need = bytes + (open_set_ == tid ? 0 : kSetHeaderSize);
    if (used_ == 0) {
      startMessage();
    } else if (used_ + need > max_message_) {
      return nullptr;
    }
    if (open_set_ != tid) {
      closeSet();
      openSet(tid);
    }
    uint8_t* wire = buf_.data() + used_;
    used_ += bytes;
    ++records_;
    return wire;
  }

  // The fixed record, then the label's fields (variable length).
  template <class Record, class... Direction>
  bool appendWithApplication(uint16_t tid, const FlowRecord& flow, Direction... direction) {
    const ApplicationTail tail(flow.app);
    uint8_t* wire = reserveBytes(tid, sizeof(Record) + tail.size());
    if (wire == nullptr) return false;
    writeRecord<Order::kNetwork>(flow, direction..., *reinterpret_cast<Record*>(wire));
    tail.write(wire + sizeof(Record));
    return true;
  }

  template <class Record>
  bool appendFlow(uint16_t tid, const FlowRecord& flow) {
    Record* wire = reserveRecord<Record>(tid);
    if (wire == nullptr) return false;
    writeRecord<Order::kNetwork>(flow, *wire);
    return true;
  }

  template <class Record>
  bool appendFlow(uint16_t tid, const FlowRecord& flow, FlowDirection direction) {
    Record* wire = reserveRecord<Record>(tid);
    if (wire == nullptr) return false;
    writeRecord<Order::kNetwork>(flow, direction, *wire);
    return true;
  }

  template <class Record>
  bool appendRecord(uint16_t tid, const Record& record) {
    Record* wire = reserveRecord<Record>(tid);
    if (wire == nullptr) return false;
    copyToNetworkOrder(record.ip, wire->ip);
    copyToNetworkOrder(record.flow, wire->flow);
    if constexpr (requires { record.rev; }) {
      copyToNetworkOrder(record.rev, wire->rev);
      copyToNetworkOrder(record.bi, wire->bi);
    }
    if constexpr (requires { record.dir; }) copyToNetworkOrder(record.dir, wire->dir);
    return true;
  }

  const uint32_t domain_;
  const size_t max_message_;
  const std::vector<TemplateLayout> templates_;
  const bool sampling_;
  const bool applications_;
  std::vector<uint8_t> buf_;
  uint32_t export_time_ = 0;
  uint32_t sequence_ = 0;  // data records in earlier messages
  size_t used_ = 0;        // 0: no open message
  size_t set_start_ = 0;
  uint16_t open_set_ = 0;
  size_t records_ = 0;
};

}  // namespace

std::unique_ptr<MessageEncoder> makeDirectEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction, bool biflow, bool sampling, bool applications) {
  return std::make_unique<DirectEncoder>(observation_domain, max_message, with_direction, biflow, sampling,
                                         applications);
}

}  // namespace flowfold::ipfix
