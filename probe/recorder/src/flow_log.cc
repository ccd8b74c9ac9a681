#include "flowfold/recorder/flow_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "flowfold/recorder/file_io.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold::recorder {

namespace {

constexpr std::string_view kPrefix = "flowfold-flows-";
constexpr std::string_view kSuffix = ".flows";
constexpr size_t kEntriesPerBlock = 4096;  // a block of ~80 KiB
constexpr uint64_t kWriteEveryMs = 1000;

enum Form : uint8_t { kIpv6 = 1, kVlan = 2, kInnerVlan = 4, kIngressIf = 8, kRawKey = 16 };

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

void putVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

void putBytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

// Reads the payload of one block; false at the first byte that does not fit.
class PayloadReader {
 public:
  PayloadReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool bytes(void* out, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  bool done() const { return p_ == end_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

bool decodeEntry(PayloadReader& in, const FlowLogEntry& prev, FlowLogEntry& e) {
  uint64_t id = 0, first = 0, span = 0;
  uint8_t form = 0;
  if (!in.varint(id) || !in.varint(first) || !in.varint(span) || !in.bytes(&form, 1)) return false;
  e.flow_id = prev.flow_id + static_cast<uint64_t>(unzigzag(id));
  e.first_ms = prev.first_ms + static_cast<uint64_t>(unzigzag(first));
  e.last_ms = e.first_ms + static_cast<uint64_t>(unzigzag(span));
  e.key = FlowKey{};
  if (form & kRawKey) return in.bytes(&e.key, sizeof e.key);
  const size_t addr = (form & kIpv6) ? 16 : 4;
  e.key.ip_version = (form & kIpv6) ? 6 : 4;
  if (!in.bytes(&e.key.protocol, 1) || !in.bytes(e.key.src_addr.data(), addr) || !in.bytes(e.key.dst_addr.data(), addr) ||
      !in.bytes(&e.key.src_port, 2) || !in.bytes(&e.key.dst_port, 2))
    return false;
  const auto small = [&](uint8_t bit, uint16_t& field) {
    uint64_t v = 0;
    if (!(form & bit)) return true;
    if (!in.varint(v) || v > UINT16_MAX) return false;
    field = static_cast<uint16_t>(v);
    return true;
  };
  return small(kVlan, e.key.vlan_id) && small(kInnerVlan, e.key.inner_vlan_id) && small(kIngressIf, e.key.ingress_if);
}

// Whether the compact form holds every byte of the key (an IP flow whose
// address bytes beyond the family's are zero); else the raw key goes.
bool compactFits(const FlowKey& k) {
  if (k.ip_version == 6) return true;
  if (k.ip_version != 4) return false;
  const auto zeroTail = [](const std::array<uint8_t, 16>& a) {
    return std::all_of(a.begin() + 4, a.end(), [](uint8_t b) { return b == 0; });
  };
  return zeroTail(k.src_addr) && zeroTail(k.dst_addr);
}

}  // namespace

void encodeFlowLogBlock(std::span<const FlowLogEntry> entries, std::vector<uint8_t>& out) {
  const size_t header_at = out.size();
  out.resize(header_at + kFlowLogBlockHeaderSize, 0);
  FlowLogEntry prev;
  for (const FlowLogEntry& e : entries) {
    putVarint(out, zigzag(static_cast<int64_t>(e.flow_id - prev.flow_id)));
    putVarint(out, zigzag(static_cast<int64_t>(e.first_ms - prev.first_ms)));
    putVarint(out, zigzag(static_cast<int64_t>(e.last_ms - e.first_ms)));
    const FlowKey& k = e.key;
    if (!compactFits(k)) {
      out.push_back(kRawKey);
      putBytes(out, &k, sizeof k);
    } else {
      const uint8_t form = (k.ip_version == 6 ? kIpv6 : 0) | (k.vlan_id ? kVlan : 0) |
                           (k.inner_vlan_id ? kInnerVlan : 0) | (k.ingress_if ? kIngressIf : 0);
      out.push_back(form);
      out.push_back(k.protocol);
      const size_t addr = k.ip_version == 6 ? 16 : 4;
      putBytes(out, k.src_addr.data(), addr);
      putBytes(out, k.dst_addr.data(), addr);
      putBytes(out, &k.src_port, 2);
      putBytes(out, &k.dst_port, 2);
      if (k.vlan_id) putVarint(out, k.vlan_id);
      if (k.inner_vlan_id) putVarint(out, k.inner_vlan_id);
      if (k.ingress_if) putVarint(out, k.ingress_if);
    }
    prev = e;
  }
  const uint32_t header[4] = {kFlowLogBlockMagic, static_cast<uint32_t>(out.size() - header_at - kFlowLogBlockHeaderSize),
                              static_cast<uint32_t>(entries.size()), 0};
  std::memcpy(out.data() + header_at, header, sizeof header);
}

std::optional<uint64_t> parseFlowLogName(const std::string& file_name) {
  std::string_view n = file_name;
  if (n.size() != kPrefix.size() + 12 + kSuffix.size() || n.substr(0, kPrefix.size()) != kPrefix ||
      n.substr(n.size() - kSuffix.size()) != kSuffix)
    return std::nullopt;
  const std::string_view digits = n.substr(kPrefix.size(), 12);
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}

std::string flowLogFileName(uint64_t sequence) {
  char seq[16];
  std::snprintf(seq, sizeof seq, "%012llu", static_cast<unsigned long long>(sequence));
  return std::string(kPrefix) + seq + std::string(kSuffix);
}

bool readFlowLog(const std::string& path, FlowLog& log, std::string& error) {
  log = FlowLog{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "not a regular file";
    return false;
  }
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  const bool read = readAt(fd, data.data(), data.size(), 0);
  ::close(fd);
  if (!read) {
    error = "cannot read it";
    return false;
  }
  if (data.size() < kFlowLogHeaderSize || std::memcmp(data.data(), kFlowLogMagic, sizeof kFlowLogMagic) != 0) {
    error = "not a flowfold flow log";
    return false;
  }
  std::memcpy(&log.run_first_segment, data.data() + 16, 8);
  for (size_t pos = kFlowLogHeaderSize; pos + kFlowLogBlockHeaderSize <= data.size();) {
    uint32_t h[4];
    std::memcpy(h, data.data() + pos, sizeof h);
    if (h[0] != kFlowLogBlockMagic) {
      log.damage = "damaged block at offset " + std::to_string(pos);
      break;
    }
    if (h[1] > data.size() - pos - kFlowLogBlockHeaderSize) break;  // the torn last block of a crash
    PayloadReader in(data.data() + pos + kFlowLogBlockHeaderSize, h[1]);
    FlowLogEntry prev;
    const size_t before = log.entries.size();
    for (uint32_t i = 0; i < h[2]; ++i) {
      FlowLogEntry e;
      if (!decodeEntry(in, prev, e)) break;
      log.entries.push_back(e);
      prev = e;
    }
    if (log.entries.size() - before != h[2] || !in.done()) {
      log.entries.resize(before);
      log.damage = "damaged block at offset " + std::to_string(pos);
      break;
    }
    pos += kFlowLogBlockHeaderSize + h[1];
  }
  return true;
}

FlowLogWriter::FlowLogWriter(SegmentRing& ring) : ring_(ring) {}

FlowLogWriter::~FlowLogWriter() {
  std::string error;
  flush(error);
  if (fd_ >= 0) {
    ::close(fd_);
    ring_.flowLogClosed(path_);
  }
}

bool FlowLogWriter::add(std::span<const FlowRecord> records, uint64_t steady_ms, std::string& error) {
  if (failed_) return false;
  for (const FlowRecord& r : records) {
    if (r.flow_id == 0) continue;
    held_.push_back(FlowLogEntry{r.flow_id, r.first_ms, r.last_ms, r.key});
    held_max_last_ms_ = std::max(held_max_last_ms_, r.last_ms);
    held_max_flow_id_ = std::max(held_max_flow_id_, r.flow_id);
  }
  if (held_.size() >= kEntriesPerBlock || (!held_.empty() && steady_ms >= last_write_ms_ + kWriteEveryMs)) {
    last_write_ms_ = steady_ms;
    return write(error);
  }
  return true;
}

bool FlowLogWriter::flush(std::string& error) {
  if (failed_) return false;
  return held_.empty() || write(error);
}

bool FlowLogWriter::openNext(std::string& error) {
  if (fd_ >= 0) {
    ::close(fd_);
    ring_.flowLogClosed(path_);
    fd_ = -1;
  }
  try {
    FlowLogFile opened;
    fd_ = ring_.openFlowLog(opened);
    path_ = opened.path;
  } catch (const RecorderError& e) {
    error = e.what();
    return false;
  }
  uint8_t header[kFlowLogHeaderSize] = {};
  std::memcpy(header, kFlowLogMagic, sizeof kFlowLogMagic);
  const uint64_t run_first_segment = ring_.runFirstSequence();
  std::memcpy(header + 16, &run_first_segment, 8);
  if (!writeAll(fd_, header, sizeof header, error)) {
    error = "cannot write " + path_ + ": " + error;
    return false;
  }
  file_bytes_ = sizeof header;
  return true;
}

// One block per write; a block never spans two files.
bool FlowLogWriter::write(std::string& error) {
  buf_.clear();
  encodeFlowLogBlock(held_, buf_);
  if (fd_ < 0 || (file_bytes_ > kFlowLogHeaderSize && file_bytes_ + buf_.size() > kFlowLogFileBytes)) {
    if (!openNext(error)) {
      failed_ = true;
      return false;
    }
  }
  if (!writeAll(fd_, buf_.data(), buf_.size(), error)) {
    error = "cannot write " + path_ + ": " + error;
    failed_ = true;
    return false;
  }
  file_bytes_ += buf_.size();
  ring_.flowLogWritten(path_, file_bytes_, held_max_last_ms_, held_max_flow_id_);
  held_.clear();
  held_max_last_ms_ = held_max_flow_id_ = 0;
  return true;
}

}  // namespace flowfold::recorder
