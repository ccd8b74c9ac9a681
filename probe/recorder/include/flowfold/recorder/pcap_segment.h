#pragma once
// The files of the packet ring: classic pcap with nanosecond timestamps
// (magic 0xa1b23c4d), which tcpdump, Wireshark, tshark and every libpcap
// program open as they are. Chosen over pcapng: 16 bytes of header per
// packet instead of 28 and padding, one fixed header per file, and a file
// cut anywhere (a crash, a power loss) is a valid capture up to its last
// whole record once the cut record is trimmed (repairSegment()).

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowfold::recorder {

inline constexpr uint32_t kPcapNanosecondMagic = 0xa1b23c4d;
inline constexpr size_t kPcapFileHeaderSize = 24;
inline constexpr size_t kPcapRecordHeaderSize = 16;

/// The 24-byte file header: version 2.4, snap length, link type (DLT).
void writePcapFileHeader(uint8_t* out, uint32_t snaplen, uint32_t linktype);

/// One record header: seconds, nanoseconds, captured and original lengths.
void writePcapRecordHeader(uint8_t* out, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen);

struct RepairResult {
  bool valid = false;       // a pcap file of ours (its header read)
  uint64_t packets = 0;     // whole records kept
  uint64_t kept_bytes = 0;  // the file's size after the repair
  uint64_t cut_bytes = 0;   // the partial record at its end, removed
  std::string error;        // why not valid
};

/// Walks a segment's records and trims a partial one at its end (a crash in
/// the middle of a write). Never follows a symbolic link; changes nothing
/// but the file's length, and only when its header is ours.
RepairResult repairSegment(const std::string& path);

}  // namespace flowfold::recorder
