#include "flowfold/recorder/pcap_segment.h"

#include "flowfold/recorder/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace flowfold::recorder {

namespace {

void put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace

// Host byte order, as libpcap writes: the magic tells a reader which order.
void writePcapFileHeader(uint8_t* out, uint32_t snaplen, uint32_t linktype) {
  put32(out, kPcapNanosecondMagic);
  put16(out + 4, 2);
  put16(out + 6, 4);
  put32(out + 8, 0);   // thiszone
  put32(out + 12, 0);  // sigfigs
  put32(out + 16, snaplen);
  put32(out + 20, linktype);
}

void writePcapRecordHeader(uint8_t* out, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen) {
  put32(out, static_cast<uint32_t>(ts_ns / 1'000'000'000));
  put32(out + 4, static_cast<uint32_t>(ts_ns % 1'000'000'000));
  put32(out + 8, caplen);
  put32(out + 12, wirelen);
}

RepairResult repairSegment(const std::string& path) {
  RepairResult result;
  const int fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    result.error = std::string("cannot open: ") + std::strerror(errno);
    return result;
  }
  struct stat st {};
  uint8_t header[kPcapFileHeaderSize];
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !readAt(fd, header, sizeof header, 0) ||
      loadHost32(header) != kPcapNanosecondMagic) {
    ::close(fd);
    result.error = "not a pcap file with nanosecond timestamps";
    return result;
  }
  result.valid = true;
  const uint32_t snaplen = loadHost32(header + 16);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // Walks the record headers in blocks (one pread per record would be slow
  // on a 1 GiB segment).
  uint64_t pos = kPcapFileHeaderSize;
  std::vector<uint8_t> block(1 << 20);
  uint64_t block_start = 0, block_len = 0;
  bool damaged = false;  // a record header no writer of ours makes
  while (pos + kPcapRecordHeaderSize <= size) {
    if (pos < block_start || pos + kPcapRecordHeaderSize > block_start + block_len) {
      block_start = pos;
      block_len = std::min<uint64_t>(block.size(), size - pos);
      if (!readAt(fd, block.data(), block_len, block_start)) break;
    }
    const uint8_t* h = block.data() + (pos - block_start);
    const uint32_t caplen = loadHost32(h + 8);
    if (caplen > snaplen || loadHost32(h + 4) >= 1'000'000'000u) {
      damaged = true;
      break;
    }
    if (pos + kPcapRecordHeaderSize + caplen > size) break;  // its data runs past the end: the cut
    pos += kPcapRecordHeaderSize + caplen;
    ++result.packets;
  }
  result.kept_bytes = std::min(pos, size);
  if (damaged) {
    // Not the cut of a crash (which only shortens the last record) but
    // damage: nothing is thrown away.
    result.valid = false;
    result.error = "damaged at offset " + std::to_string(result.kept_bytes) + " (" +
                   std::to_string(size - result.kept_bytes) + " bytes after it); left as it is";
  } else if (result.kept_bytes < size) {
    result.cut_bytes = size - result.kept_bytes;
    if (::ftruncate(fd, static_cast<off_t>(result.kept_bytes)) != 0) {
      result.error = std::string("cannot trim the cut record: ") + std::strerror(errno);
      result.valid = false;
    }
  }
  ::close(fd);
  return result;
}

}  // namespace flowfold::recorder
