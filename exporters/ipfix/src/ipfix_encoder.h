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

#include "ipfix_direction.h"
#include "ipfix_fields.h"

namespace flowfold::ipfix {

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

  /// Data records in the open message.
  virtual size_t pendingRecords() const = 0;

  /// Closes the open message and returns it (valid until the next call);
  /// empty when no message is open.
  virtual std::span<const uint8_t> finish() = 0;

  /// Returns a complete message holding the templates (IPv4 then IPv6;
  /// with_direction, then those with flowDirection, IPv4 then IPv6).
  /// Requires no open message: finish() first.
  virtual std::span<const uint8_t> encodeTemplates() = 0;

 private:
  template <class Record>
  bool appendPacked(const FlowRecord& flow) {
    Record record;
    writeRecord(flow, record);
    return append(record);
  }
  template <class Record>
  bool appendPacked(const FlowRecord& flow, FlowDirection direction) {
    Record record;
    writeRecord(flow, direction, record);
    return append(record);
  }
};

/// max_message: largest message in bytes, 256..65535. with_direction: also
/// the templates with flowDirection (258, 259).
std::unique_ptr<MessageEncoder> makeFixbufEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction = false);
std::unique_ptr<MessageEncoder> makeDirectEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction = false);

}  // namespace flowfold::ipfix
