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
#include "flowfold/recorder/key_coding.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold::recorder {

namespace {

constexpr std::string_view kPrefix = "flowfold-flows-";
constexpr std::string_view kSuffix = ".flows";
constexpr size_t kEntriesPerWrite = 4096;  // ~80 KiB
constexpr size_t kEntriesPerBlock = 256;
constexpr uint64_t kWriteEveryMs = 1000;

bool decodeEntry(CodedReader& in, const FlowLogEntry& prev, FlowLogEntry& e) {
  uint64_t id = 0, first = 0, span = 0;
  if (!in.varint(id) || !in.varint(first) || !in.varint(span)) return false;
  e.flow_id = prev.flow_id + static_cast<uint64_t>(unzigzag(id));
  e.first_ms = prev.first_ms + static_cast<uint64_t>(unzigzag(first));
  e.last_ms = e.first_ms + static_cast<uint64_t>(unzigzag(span));
  return in.key(e.key);
}

}  // namespace

FlowLogBlockRange encodeFlowLogBlock(std::span<const FlowLogEntry> entries, std::vector<uint8_t>& out) {
  const size_t header_at = out.size();
  out.resize(header_at + kFlowLogBlockHeaderSize, 0);
  FlowLogBlockRange range{entries.empty() ? 0 : UINT64_MAX, 0, 0};
  FlowLogEntry prev;
  for (const FlowLogEntry& e : entries) {
    putVarint(out, zigzag(static_cast<int64_t>(e.flow_id - prev.flow_id)));
    putVarint(out, zigzag(static_cast<int64_t>(e.first_ms - prev.first_ms)));
    putVarint(out, zigzag(static_cast<int64_t>(e.last_ms - e.first_ms)));
    putKey(out, e.key);
    range.min_id = std::min(range.min_id, e.flow_id);
    range.max_id = std::max(range.max_id, e.flow_id);
    range.max_last_ms = std::max(range.max_last_ms, e.last_ms);
    prev = e;
  }
  const uint32_t header[4] = {kFlowLogBlockMagic, static_cast<uint32_t>(out.size() - header_at - kFlowLogBlockHeaderSize),
                              static_cast<uint32_t>(entries.size()), 0};
  const uint64_t ranges[3] = {range.min_id, range.max_id, range.max_last_ms};
  std::memcpy(out.data() + header_at, header, sizeof header);
  std::memcpy(out.data() + header_at + sizeof header, ranges, sizeof ranges);
  return range;
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

namespace {

struct BlockHeader {
  uint32_t magic, payload, entries, reserved;
  uint64_t min_id, max_id, max_last_ms;
};
static_assert(sizeof(BlockHeader) == kFlowLogBlockHeaderSize);

// Reads a file through a window of large reads: a flow log's many small
// block headers cost one read per window, not one each.
class WindowReader {
 public:
  WindowReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  bool read(void* out, size_t n, uint64_t pos) {
    if (n == 0) return true;  // an empty payload (its buffer may be null)
    if (pos < start_ || pos + n > start_ + buf_.size()) {
      if (n > kWindow) return readAt(fd_, static_cast<uint8_t*>(out), n, pos);
      const uint64_t len = std::min<uint64_t>(kWindow, size_ > pos ? size_ - pos : 0);
      if (len < n) return false;
      buf_.resize(len);
      if (!readAt(fd_, buf_.data(), len, pos)) {
        buf_.clear();
        return false;
      }
      start_ = pos;
    }
    std::memcpy(out, buf_.data() + (pos - start_), n);
    return true;
  }

 private:
  static constexpr size_t kWindow = 256 << 10;
  const int fd_;
  const uint64_t size_;
  std::vector<uint8_t> buf_;
  uint64_t start_ = 0;
};

// Walks a flow log's blocks by their headers: visit(reader, header, offset
// of the block) for each whole one; a torn last block ends the walk
// quietly, a damaged header with `damage` set.
template <class Visit>
bool walkFlowLog(const std::string& path, uint64_t& run_first_segment, std::string& damage, std::string& error,
                 Visit&& visit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  struct stat st {};
  uint8_t header[kFlowLogHeaderSize];
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "not a regular file";
    return false;
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (!readAt(fd, header, sizeof header, 0) || std::memcmp(header, kFlowLogMagic, sizeof kFlowLogMagic) != 0) {
    ::close(fd);
    error = "not a flowfold flow log";
    return false;
  }
  std::memcpy(&run_first_segment, header + 16, 8);
  WindowReader in(fd, size);
  for (uint64_t pos = kFlowLogHeaderSize; pos + kFlowLogBlockHeaderSize <= size;) {
    BlockHeader h;
    if (!in.read(&h, sizeof h, pos)) break;
    if (h.magic != kFlowLogBlockMagic) {
      damage = "damaged block at offset " + std::to_string(pos);
      break;
    }
    if (h.payload > size - pos - kFlowLogBlockHeaderSize) break;  // the torn last block of a crash
    if (!visit(in, h, pos)) break;
    pos += kFlowLogBlockHeaderSize + h.payload;
  }
  ::close(fd);
  return true;
}

}  // namespace

bool readFlowLog(const std::string& path, FlowLog& log, std::string& error, std::span<const uint64_t> wanted) {
  log = FlowLog{};
  std::vector<uint8_t> payload;
  return walkFlowLog(path, log.run_first_segment, log.damage, error, [&](WindowReader& file, const BlockHeader& h, uint64_t pos) {
    if (!wanted.empty()) {
      const auto it = std::lower_bound(wanted.begin(), wanted.end(), h.min_id);
      if (it == wanted.end() || *it > h.max_id) return true;  // none of them here
    }
    payload.resize(h.payload);
    if (!file.read(payload.data(), payload.size(), pos + kFlowLogBlockHeaderSize)) return false;
    CodedReader in(payload.data(), payload.size());
    FlowLogEntry prev;
    std::vector<FlowLogEntry> block;
    for (uint32_t i = 0; i < h.entries; ++i) {
      FlowLogEntry e;
      if (!decodeEntry(in, prev, e)) break;
      block.push_back(e);
      prev = e;
    }
    if (block.size() != h.entries || !in.done()) {
      log.damage = "damaged block at offset " + std::to_string(pos);
      return false;
    }
    for (const FlowLogEntry& e : block)
      if (wanted.empty() || std::binary_search(wanted.begin(), wanted.end(), e.flow_id)) log.entries.push_back(e);
    return true;
  });
}

bool readFlowLogRun(const std::string& path, uint64_t& run_first_segment, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  uint8_t header[kFlowLogHeaderSize];
  const bool ok = readAt(fd, header, sizeof header, 0) && std::memcmp(header, kFlowLogMagic, sizeof kFlowLogMagic) == 0;
  ::close(fd);
  if (!ok) {
    error = "not a flowfold flow log";
    return false;
  }
  std::memcpy(&run_first_segment, header + 16, 8);
  return true;
}

bool summarizeFlowLog(const std::string& path, FlowLogSummary& out, std::string& error) {
  out = FlowLogSummary{};
  return walkFlowLog(path, out.run_first_segment, out.damage, error, [&](WindowReader&, const BlockHeader& h, uint64_t) {
    out.max_flow_id = std::max(out.max_flow_id, h.max_id);
    out.max_last_ms = std::max(out.max_last_ms, h.max_last_ms);
    return true;
  });
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
  }
  if (held_.size() >= kEntriesPerWrite || (!held_.empty() && steady_ms >= last_write_ms_ + kWriteEveryMs)) {
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

// One write of blocks; a block never spans two files.
bool FlowLogWriter::write(std::string& error) {
  // In id order: the ids differ by little from one entry to the next.
  // (An order of positions is sorted, not the 72-byte entries themselves.)
  order_.resize(held_.size());
  for (uint32_t i = 0; i < order_.size(); ++i) order_[i] = i;
  std::sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
    return held_[a].flow_id != held_[b].flow_id ? held_[a].flow_id < held_[b].flow_id : a < b;
  });
  sorted_.clear();
  for (uint32_t i : order_) sorted_.push_back(held_[i]);
  // Small blocks of neighbouring ids: a reader looking for an id decodes
  // only the blocks whose id range holds it, and a block of a few hundred
  // sorted ids spans a narrow range.
  buf_.clear();
  FlowLogBlockRange range{};
  for (size_t at = 0; at < sorted_.size(); at += kEntriesPerBlock) {
    const auto part = std::span<const FlowLogEntry>(sorted_).subspan(at, std::min(kEntriesPerBlock, sorted_.size() - at));
    const FlowLogBlockRange r = encodeFlowLogBlock(part, buf_);
    range.max_id = std::max(range.max_id, r.max_id);
    range.max_last_ms = std::max(range.max_last_ms, r.max_last_ms);
  }
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
  ring_.flowLogWritten(path_, file_bytes_, range.max_last_ms, range.max_id);
  held_.clear();
  return true;
}

}  // namespace flowfold::recorder
