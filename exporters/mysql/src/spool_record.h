#pragma once
// The spool's on-disk record: a FlowRecord in a fixed 108-byte little-endian
// layout with a CRC-32C, so a torn write (crash mid-append) or a damaged
// sector is recognised when the record is read back, and a record's byte
// offset follows from its index alone.

#include <cstddef>
#include <cstdint>

#include "flowfold/flowcache/flow_record.h"

namespace flowfold::mysql {

inline constexpr size_t kSpoolRecordSize = 108;

/// A record as read back from the spool.
struct SpooledFlow {
  FlowRecord record;
  uint32_t observation_domain = 0;
};

/// CRC-32C (Castagnoli), as used by iSCSI and ext4 metadata.
uint32_t crc32c(const uint8_t* data, size_t size);

void encodeSpoolRecord(const FlowRecord& r, uint32_t observation_domain, uint8_t* out);

/// False when the checksum does not match (the record is then not decoded).
bool decodeSpoolRecord(const uint8_t* in, SpooledFlow& out);

}  // namespace flowfold::mysql
