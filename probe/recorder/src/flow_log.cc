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
constexpr size_t kEntriesPerBlock = 4096;  // a block of ~80 KiB
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

void encodeFlowLogBlock(std::span<const FlowLogEntry> entries, std::vector<uint8_t>& out) {
  const size_t header_at = out.size();
  out.resize(header_at + kFlowLogBlockHeaderSize, 0);
  FlowLogEntry prev;
  for (const FlowLogEntry& e : entries) {
    putVarint(out, zigzag(static_cast<int64_t>(e.flow_id - prev.flow_id)));
    putVarint(out, zigzag(static_cast<int64_t>(e.first_ms - prev.first_ms)));
    putVarint(out, zigzag(static_cast<int64_t>(e.last_ms - e.first_ms)));
    putKey(out, e.key);
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
    CodedReader in(data.data() + pos + kFlowLogBlockHeaderSize, h[1]);
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
