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
  uint32_t magic, payload, entries, kind;
  uint64_t min_id, max_id, max_last_ms;
};
static_assert(sizeof(BlockHeader) == kFlowLogBlockHeaderSize);
constexpr uint32_t kEntryBlock = 0, kDirectoryBlock = 1;

struct Trailer {
  uint32_t magic, blocks;
  uint64_t min_id, max_id, max_last_ms;
};
static_assert(sizeof(Trailer) == kFlowLogTrailerSize);
static_assert(sizeof(FlowLogDirectoryEntry) == 32);

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

// An open flow log: its descriptor and size, the run in its header.
struct OpenLog {
  int fd = -1;
  uint64_t size = 0;
  ~OpenLog() {
    if (fd >= 0) ::close(fd);
  }
};

bool openLog(const std::string& path, OpenLog& log, uint64_t& run_first_segment, std::string& error) {
  log.fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (log.fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(log.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "not a regular file";
    return false;
  }
  log.size = static_cast<uint64_t>(st.st_size);
  uint8_t header[kFlowLogHeaderSize];
  if (!readAt(log.fd, header, sizeof header, 0) || std::memcmp(header, kFlowLogMagic, sizeof kFlowLogMagic) != 0) {
    error = "not a flowfold flow log";
    return false;
  }
  std::memcpy(&run_first_segment, header + 16, 8);
  return true;
}

// A closed file's directory: its trailer and (unless null) where its
// blocks are. False when the file has none, or one that does not hold
// together: it is walked.
bool readDirectory(const OpenLog& log, Trailer& trailer, std::vector<FlowLogDirectoryEntry>* blocks) {
  constexpr uint64_t kLeast = kFlowLogHeaderSize + kFlowLogBlockHeaderSize + kFlowLogTrailerSize;
  if (log.size < kLeast) return false;
  if (!readAt(log.fd, reinterpret_cast<uint8_t*>(&trailer), sizeof trailer, log.size - sizeof trailer) ||
      trailer.magic != kFlowLogTrailerMagic)
    return false;
  const uint64_t payload = uint64_t{trailer.blocks} * sizeof(FlowLogDirectoryEntry);
  if (payload > log.size - kLeast) return false;
  const uint64_t at = log.size - kFlowLogTrailerSize - payload - kFlowLogBlockHeaderSize;
  BlockHeader h;
  if (!readAt(log.fd, reinterpret_cast<uint8_t*>(&h), sizeof h, at) || h.magic != kFlowLogBlockMagic ||
      h.kind != kDirectoryBlock || h.entries != 0 || h.payload != payload)
    return false;
  if (blocks == nullptr) return true;
  blocks->resize(trailer.blocks);
  if (payload != 0 && !readAt(log.fd, reinterpret_cast<uint8_t*>(blocks->data()), payload, at + kFlowLogBlockHeaderSize))
    return false;
  uint64_t next = kFlowLogHeaderSize;  // blocks in file order, before the directory
  for (const FlowLogDirectoryEntry& b : *blocks) {
    if (b.offset < next || b.offset > at - kFlowLogBlockHeaderSize) return false;
    next = b.offset + kFlowLogBlockHeaderSize;
  }
  return true;
}

// Walks a flow log's blocks of entries by their headers: visit(reader,
// header, offset of the block) for each whole one, up to the directory if
// it has one; a torn last block ends the walk quietly, a damaged header
// with `damage` set.
template <class Visit>
void walkFlowLog(const OpenLog& log, std::string& damage, Visit&& visit) {
  WindowReader in(log.fd, log.size);
  for (uint64_t pos = kFlowLogHeaderSize; pos + kFlowLogBlockHeaderSize <= log.size;) {
    BlockHeader h;
    if (!in.read(&h, sizeof h, pos)) break;
    if (h.magic != kFlowLogBlockMagic) {
      damage = "damaged block at offset " + std::to_string(pos);
      break;
    }
    if (h.payload > log.size - pos - kFlowLogBlockHeaderSize) break;  // the torn last block of a crash
    if (h.kind == kDirectoryBlock) break;
    if (!visit(in, h, pos)) break;
    pos += kFlowLogBlockHeaderSize + h.payload;
  }
}

// Whether some of the ascending `wanted` ids lie in [min_id, max_id].
bool holdsOne(std::span<const uint64_t> wanted, uint64_t min_id, uint64_t max_id) {
  const auto it = std::lower_bound(wanted.begin(), wanted.end(), min_id);
  return it != wanted.end() && *it <= max_id;
}

// Decodes a block's entries and keeps those `wanted` names (all, when it
// is empty). False (and `damage`) when the block is damaged.
bool decodeBlock(const BlockHeader& h, const std::vector<uint8_t>& payload, uint64_t pos,
                 std::span<const uint64_t> wanted, FlowLog& log) {
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
}

}  // namespace

bool readFlowLog(const std::string& path, FlowLog& log, std::string& error, std::span<const uint64_t> wanted) {
  log = FlowLog{};
  OpenLog file;
  if (!openLog(path, file, log.run_first_segment, error)) return false;
  std::vector<uint8_t> payload;
  Trailer trailer;
  std::vector<FlowLogDirectoryEntry> blocks;
  if (!wanted.empty() && readDirectory(file, trailer, &blocks)) {
    // A closed file: only the blocks its directory says hold a wanted id.
    if (!holdsOne(wanted, trailer.min_id, trailer.max_id)) return true;
    for (const FlowLogDirectoryEntry& b : blocks) {
      if (!holdsOne(wanted, b.min_id, b.max_id)) continue;
      BlockHeader h;
      if (!readAt(file.fd, reinterpret_cast<uint8_t*>(&h), sizeof h, b.offset) || h.magic != kFlowLogBlockMagic ||
          h.kind != kEntryBlock || h.min_id != b.min_id || h.max_id != b.max_id ||
          h.payload > file.size - b.offset - kFlowLogBlockHeaderSize) {
        log.damage = "damaged block at offset " + std::to_string(b.offset);
        return true;
      }
      payload.resize(h.payload);
      if (!payload.empty() && !readAt(file.fd, payload.data(), payload.size(), b.offset + kFlowLogBlockHeaderSize)) {
        log.damage = "cannot read the block at offset " + std::to_string(b.offset);
        return true;
      }
      if (!decodeBlock(h, payload, b.offset, wanted, log)) return true;
    }
    return true;
  }
  walkFlowLog(file, log.damage, [&](WindowReader& in, const BlockHeader& h, uint64_t pos) {
    if (!wanted.empty() && !holdsOne(wanted, h.min_id, h.max_id)) return true;  // none of them here
    payload.resize(h.payload);
    if (!in.read(payload.data(), payload.size(), pos + kFlowLogBlockHeaderSize)) return false;
    return decodeBlock(h, payload, pos, wanted, log);
  });
  return true;
}

void prefetchFlowLogs(std::span<const std::string> paths) {
  // A closed file's directory holds 32 bytes per block of up to 256
  // entries: the last 256 KiB cover it for files far above the 16 MiB a
  // log grows to.
  constexpr off_t kTail = 256 << 10;
  for (const std::string& path : paths) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;  // the lookup itself says why
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      ::posix_fadvise(fd, 0, kFlowLogHeaderSize, POSIX_FADV_WILLNEED);
      ::posix_fadvise(fd, std::max<off_t>(0, st.st_size - kTail), 0, POSIX_FADV_WILLNEED);
    }
    ::close(fd);
  }
}

bool readFlowLogRun(const std::string& path, uint64_t& run_first_segment, std::string& error) {
  OpenLog file;
  return openLog(path, file, run_first_segment, error);
}

bool summarizeFlowLog(const std::string& path, FlowLogSummary& out, std::string& error) {
  out = FlowLogSummary{};
  OpenLog file;
  if (!openLog(path, file, out.run_first_segment, error)) return false;
  Trailer trailer;
  if (readDirectory(file, trailer, nullptr)) {
    out.max_flow_id = trailer.max_id;
    out.max_last_ms = trailer.max_last_ms;
    return true;
  }
  walkFlowLog(file, out.damage, [&](WindowReader&, const BlockHeader& h, uint64_t) {
    out.max_flow_id = std::max(out.max_flow_id, h.max_id);
    out.max_last_ms = std::max(out.max_last_ms, h.max_last_ms);
    return true;
  });
  return true;
}

FlowLogWriter::FlowLogWriter(SegmentRing& ring) : ring_(ring) {}

FlowLogWriter::~FlowLogWriter() {
  std::string error;
  flush(error);
  closeFile();
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
  closeFile();
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
  directory_.clear();
  return true;
}

// Ends the open file with its directory (best effort: without one, or with
// a torn one, the file is walked) and hands it back to the ring.
void FlowLogWriter::closeFile() {
  if (fd_ < 0) return;
  std::string error;
  // Whatever part of a failed directory went out is taken back, if it can
  // be: a torn one is read as the torn last block of a crash.
  if (!failed_ && !writeDirectory(error)) (void)!::ftruncate(fd_, static_cast<off_t>(file_bytes_));
  ::close(fd_);
  fd_ = -1;
  ring_.flowLogClosed(path_);
}

bool FlowLogWriter::writeDirectory(std::string& error) {
  Trailer trailer{kFlowLogTrailerMagic, static_cast<uint32_t>(directory_.size()), directory_.empty() ? 0 : UINT64_MAX, 0,
                  0};
  for (const FlowLogDirectoryEntry& b : directory_) {
    trailer.min_id = std::min(trailer.min_id, b.min_id);
    trailer.max_id = std::max(trailer.max_id, b.max_id);
    trailer.max_last_ms = std::max(trailer.max_last_ms, b.max_last_ms);
  }
  // An id range no id is in: readers that predate directories step over it.
  const BlockHeader h{kFlowLogBlockMagic, static_cast<uint32_t>(directory_.size() * sizeof(FlowLogDirectoryEntry)), 0,
                      kDirectoryBlock, UINT64_MAX, 0, 0};
  // Not in buf_: a file is closed in the middle of a write, with its blocks in buf_.
  std::vector<uint8_t> out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  const auto* entries = reinterpret_cast<const uint8_t*>(directory_.data());
  out.insert(out.end(), entries, entries + directory_.size() * sizeof(FlowLogDirectoryEntry));
  const auto* t = reinterpret_cast<const uint8_t*>(&trailer);
  out.insert(out.end(), t, t + sizeof trailer);
  if (!writeAll(fd_, out.data(), out.size(), error)) return false;
  file_bytes_ += out.size();
  ring_.flowLogWritten(path_, file_bytes_, trailer.max_last_ms, trailer.max_id);
  return true;
}

// One write of blocks; a block never spans two files.
bool FlowLogWriter::write(std::string& error) {
  // In id order: the ids differ by little from one entry to the next.
  // (Pairs of id and position are sorted, side by side, not the 72-byte
  // entries themselves nor positions that must be followed to their id.)
  order_.resize(held_.size());
  for (uint32_t i = 0; i < order_.size(); ++i) order_[i] = {held_[i].flow_id, i};
  std::sort(order_.begin(), order_.end());
  sorted_.clear();
  for (const auto& [id, i] : order_) sorted_.push_back(held_[i]);
  // Small blocks of neighbouring ids: a reader looking for an id decodes
  // only the blocks whose id range holds it, and a block of a few hundred
  // sorted ids spans a narrow range.
  buf_.clear();
  FlowLogBlockRange range{};
  std::vector<FlowLogDirectoryEntry> written;  // offsets in buf_ for now
  for (size_t at = 0; at < sorted_.size(); at += kEntriesPerBlock) {
    const auto part = std::span<const FlowLogEntry>(sorted_).subspan(at, std::min(kEntriesPerBlock, sorted_.size() - at));
    const uint64_t offset = buf_.size();
    const FlowLogBlockRange r = encodeFlowLogBlock(part, buf_);
    written.push_back(FlowLogDirectoryEntry{offset, r.min_id, r.max_id, r.max_last_ms});
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
  for (FlowLogDirectoryEntry& b : written) {
    b.offset += file_bytes_;
    directory_.push_back(b);
  }
  file_bytes_ += buf_.size();
  ring_.flowLogWritten(path_, file_bytes_, range.max_last_ms, range.max_id);
  held_.clear();
  return true;
}

}  // namespace flowfold::recorder
