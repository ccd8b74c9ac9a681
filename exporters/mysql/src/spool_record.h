#pragma once
// The spool's on-disk record: a FlowRecord in a fixed 116-byte little-endian
// layout with a CRC-32C (format 2; format 1, before flow ids, was the same
// without the flow id: 108 bytes, still read), so a torn write (crash mid-append) or a damaged
// sector is recognised when the record is read back, and a record's byte
// offset follows from its index alone.

#include <cstddef>
#include <cstdint>

#include "flowfold/flowcache/flow_record.h"

namespace flowfold::mysql {

inline constexpr size_t kSpoolRecordSize = 116;
/// The record size of a segment format (1: before flow ids).
constexpr size_t spoolRecordSize(uint32_t version) { return version == 1 ? 108 : kSpoolRecordSize; }

/// A record as read back from the spool.
struct SpooledFlow {
  FlowRecord record;
  uint32_t observation_domain = 0;
};

/// CRC-32C (Castagnoli), as used by iSCSI and ext4 metadata.
uint32_t crc32c(const uint8_t* data, size_t size);

void encodeSpoolRecord(const FlowRecord& r, uint32_t observation_domain, uint8_t* out);

/// False when the checksum does not match (the record is then not decoded).
/// version 1: a record of an older flowfold (108 bytes, no flow id: 0).
bool decodeSpoolRecord(const uint8_t* in, SpooledFlow& out, uint32_t version = 2);

}  // namespace flowfold::mysql
