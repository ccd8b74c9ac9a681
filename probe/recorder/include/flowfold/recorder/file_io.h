#pragma once
// The few file operations the ring's writers and readers share: whole
// writes and reads that go on after EINTR and short transfers, and
// host-order loads (the ring's files are in host byte order; wire.h's
// load16/load32 are the network's big-endian ones).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace flowfold::recorder {

/// Writes all n bytes; false and `error` (strerror) otherwise.
bool writeAll(int fd, const uint8_t* data, size_t n, std::string& error);
/// Writes all n bytes at `offset`; false and `error` otherwise (errno kept).
bool writeAt(int fd, const uint8_t* data, size_t n, uint64_t offset, std::string& error);
/// Reads exactly n bytes at `offset`; false at the end of the file or on an error.
bool readAt(int fd, uint8_t* out, size_t n, uint64_t offset);

/// A file beside a segment: "…/flowfold-…-START.pcap" -> "…/flowfold-…-START" + suffix.
std::string besideSegment(const std::string& segment_path, const char* suffix);

template <class T>
T loadHost(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t loadHost32(const uint8_t* p) { return loadHost<uint32_t>(p); }

}  // namespace flowfold::recorder
