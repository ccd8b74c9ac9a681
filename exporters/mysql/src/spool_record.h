#pragma once
// The spool's on-disk record: a FlowRecord in a fixed 204-byte little-endian
// layout with a CRC-32C (format 3, with the DPI label; format 2, before
// labels, was 116 bytes, and format 1, before flow ids, 108: both still
// read), so a torn write (crash mid-append) or a damaged sector is
// recognised when the record is read back, and a record's byte offset
// follows from its index alone.

#include <cstddef>
#include <cstdint>

#include "flowfold/flowcache/flow_record.h"

namespace flowfold::mysql {

inline constexpr size_t kSpoolRecordSize = 204;
/// The record size of a segment format (1: before flow ids, 2: before labels).
constexpr size_t spoolRecordSize(uint32_t version) {
  return version == 1 ? 108 : version == 2 ? 116 : kSpoolRecordSize;
}

/// A record as read back from the spool.
struct SpooledFlow {
  FlowRecord record;
  uint32_t observation_domain = 0;
};

/// CRC-32C (Castagnoli), as used by iSCSI and ext4 metadata.
uint32_t crc32c(const uint8_t* data, size_t size);

void encodeSpoolRecord(const FlowRecord& r, uint32_t observation_domain, uint8_t* out);

/// False when the checksum does not match (the record is then not decoded).
/// version 1 and 2: a record of an older flowfold (no flow id: 0; no label).
bool decodeSpoolRecord(const uint8_t* in, SpooledFlow& out, uint32_t version = 3);

}  // namespace flowfold::mysql
