#pragma once
// Builds IPFIX messages (RFC 7011) for one transport session and one
// observation domain; moves no bytes itself. Two implementations produce
// byte-identical messages (a unit test holds them to it):
//  - libfixbuf: fBufAppend() transcodes each record element by element;
//  - direct: flowfold byte-swaps the packed record and copies it, several
//    times cheaper per record.
// Both keep the message sequence number (data records sent before the
// message) and take the message's export time when its first set is written.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <vector>

#include "ipfix_biflow.h"
#include "ipfix_direction.h"
#include "ipfix_fields.h"
#include "ipfix_options_records.h"

namespace flowfold::ipfix {

/// One template an encoder announces: its id and its fields (the IP
/// version's, FlowFields, then the tail).
struct TemplateLayout {
  uint16_t id;
  std::span<const FieldSpec> ip;
  std::span<const FieldSpec> tail;
  size_t fieldCount() const { return ip.size() + std::size(kFlowFields) + tail.size(); }
};

/// The templates of an encoder, in the order they are announced: uniflow
/// (256, 257, and with_direction 258, 259) or, biflow, 260, 261 (262, 263).
/// applications (DPI labels, ipfix_application.h): 268, 269 (270, 271)
/// instead of the uniflow ones; not with biflow.
std::vector<TemplateLayout> templateLayouts(bool with_direction, bool biflow, bool applications = false);

/// Octets of a template record: its header, 4 per field and 4 more per
/// enterprise-specific field (its PEN).
size_t templateRecordSize(const TemplateLayout& t);

/// Octets of the message encodeTemplates() returns: the smallest
/// max_message an encoder takes (its constructor throws std::invalid_argument
/// below it).
size_t templateMessageSize(bool with_direction, bool biflow, bool sampling, bool applications = false);

class MessageEncoder {
 public:
  virtual ~MessageEncoder() = default;

  /// Export time (Unix seconds) for messages started from now on.
  virtual void setExportTime(uint32_t seconds) = 0;

  /// Appends a data record to the open message (opening one if needed).
  /// False when the record does not fit: finish() the message and retry.
  virtual bool append(const Ipv4Record& record) = 0;
  virtual bool append(const Ipv6Record& record) = 0;
  /// Records with flowDirection (templates 258/259): only when the encoder
  /// was made with_direction.
  virtual bool append(const Ipv4DirectionRecord& record) = 0;
  virtual bool append(const Ipv6DirectionRecord& record) = 0;
  /// The same from a flow record (IP version 4 or 6): through the packed
  /// record unless the encoder writes the wire format directly.
  virtual bool append(const FlowRecord& record) {
    return record.key.ip_version == 6 ? appendPacked<Ipv6Record>(record) : appendPacked<Ipv4Record>(record);
  }

  /// The same with the flow's direction: kNone goes out as append(record)
  /// does, ingress or egress in the template with flowDirection.
  virtual bool append(const FlowRecord& record, FlowDirection direction) {
    if (direction == FlowDirection::kNone) return append(record);
    return record.key.ip_version == 6 ? appendPacked<Ipv6DirectionRecord>(record, direction)
                                      : appendPacked<Ipv4DirectionRecord>(record, direction);
  }

  /// Biflow records (templates 260..263): only when the encoder was made
  /// biflow (and, for those with flowDirection, with_direction).
  virtual bool append(const Ipv4BiflowRecord& record) = 0;
  virtual bool append(const Ipv6BiflowRecord& record) = 0;
  virtual bool append(const Ipv4BiflowDirectionRecord& record) = 0;
  virtual bool append(const Ipv6BiflowDirectionRecord& record) = 0;
  /// One conversation (ipfix_biflow.h): the initiator's record forward, the
  /// responder's reversed (nullptr: heard one way only), with its
  /// biflowDirection and the forward side's flowDirection.
  bool appendBiflow(const FlowRecord& initiator, const FlowRecord* responder, BiflowDirection biflow,
                    FlowDirection direction) {
    const bool v6 = initiator.key.ip_version == 6;
    if (direction == FlowDirection::kNone)
      return v6 ? appendBiflowPacked<Ipv6BiflowRecord>(initiator, responder, biflow, direction)
                : appendBiflowPacked<Ipv4BiflowRecord>(initiator, responder, biflow, direction);
    return v6 ? appendBiflowPacked<Ipv6BiflowDirectionRecord>(initiator, responder, biflow, direction)
              : appendBiflowPacked<Ipv4BiflowDirectionRecord>(initiator, responder, biflow, direction);
  }

  /// Data records in the open message.
  virtual size_t pendingRecords() const = 0;

  /// Closes the open message and returns it (valid until the next call);
  /// empty when no message is open.
  virtual std::span<const uint8_t> finish() = 0;

  /// Returns a complete message holding the templates, in the order of
  /// templateLayouts(), then the options templates (ipfix_options_records.h),
  /// each in a set of its own.
  /// Requires no open message: finish() first.
  virtual std::span<const uint8_t> encodeTemplates() = 0;

  /// Returns a complete message of options records with these values (one
  /// per options template), numbered in the same sequence as the data
  /// records (RFC 7011 counts every data record). Requires no open message.
  virtual std::span<const uint8_t> encodeOptions(const OptionsValues& values) = 0;

  /// Returns a message withdrawing every template announced (RFC 7011
  /// section 8.1), for the end of a TCP session. Requires no open message.
  virtual std::span<const uint8_t> encodeWithdrawals() = 0;

 private:
  template <class Record>
  bool appendPacked(const FlowRecord& flow) {
    Record record;
    writeRecord(flow, record);
    return append(record);
  }
  template <class Record>
  bool appendBiflowPacked(const FlowRecord& initiator, const FlowRecord* responder, BiflowDirection biflow,
                          FlowDirection direction) {
    Record record;
    writeBiflowRecord(initiator, responder, biflow, direction, record);
    return append(record);
  }
  template <class Record>
  bool appendPacked(const FlowRecord& flow, FlowDirection direction) {
    Record record;
    writeRecord(flow, direction, record);
    return append(record);
  }
};

/// The append() of every packed record type, each through
/// Derived::appendRecord(template id, record): the one place that says which
/// template a record type goes in.
template <class Derived>
class PackedRecordEncoder : public MessageEncoder {
 public:
  using MessageEncoder::append;
  bool append(const Ipv4Record& r) override { return self().appendRecord(kIpv4TemplateId, r); }
  bool append(const Ipv6Record& r) override { return self().appendRecord(kIpv6TemplateId, r); }
  bool append(const Ipv4DirectionRecord& r) override { return self().appendRecord(kIpv4DirectionTemplateId, r); }
  bool append(const Ipv6DirectionRecord& r) override { return self().appendRecord(kIpv6DirectionTemplateId, r); }
  bool append(const Ipv4BiflowRecord& r) override { return self().appendRecord(kIpv4BiflowTemplateId, r); }
  bool append(const Ipv6BiflowRecord& r) override { return self().appendRecord(kIpv6BiflowTemplateId, r); }
  bool append(const Ipv4BiflowDirectionRecord& r) override {
    return self().appendRecord(kIpv4BiflowDirectionTemplateId, r);
  }
  bool append(const Ipv6BiflowDirectionRecord& r) override {
    return self().appendRecord(kIpv6BiflowDirectionTemplateId, r);
  }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

/// max_message: largest message in bytes, 256..65535. with_direction: also
/// the templates with flowDirection. biflow: the biflow templates instead of
/// the uniflow ones (templateLayouts()). sampling: also the sampling options
/// templates.
std::unique_ptr<MessageEncoder> makeFixbufEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction = false, bool biflow = false,
                                                  bool sampling = false);
/// applications: DPI labels on every flow record (ipfix_application.h);
/// the direct encoder only.
std::unique_ptr<MessageEncoder> makeDirectEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction = false, bool biflow = false,
                                                  bool sampling = false, bool applications = false);

}  // namespace flowfold::ipfix
