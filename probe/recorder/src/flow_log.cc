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
constexpr size_t kWriteBytes = 64 << 10;
constexpr uint64_t kWriteEveryMs = 1000;

void encode(const FlowRecord& r, uint8_t* out) {
  std::memset(out, 0, kFlowLogEntrySize);
  std::memcpy(out, &r.flow_id, 8);
  std::memcpy(out + 8, &r.first_ms, 8);
  std::memcpy(out + 16, &r.last_ms, 8);
  std::memcpy(out + 24, &r.key, sizeof(FlowKey));
}

}  // namespace

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
  std::vector<FlowLogEntry>& out = log.entries;
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
  if (data.size() < kFlowLogHeaderSize || std::memcmp(data.data(), kFlowLogMagic, sizeof kFlowLogMagic) != 0 ||
      load32(data.data() + 8) != kFlowLogEntrySize) {
    error = "not a flowfold flow log";
    return false;
  }
  std::memcpy(&log.run_first_segment, data.data() + 16, 8);
  const size_t entries = (data.size() - kFlowLogHeaderSize) / kFlowLogEntrySize;  // a torn last one left out
  out.resize(entries);
  for (size_t i = 0; i < entries; ++i) {
    const uint8_t* p = data.data() + kFlowLogHeaderSize + i * kFlowLogEntrySize;
    std::memcpy(&out[i].flow_id, p, 8);
    std::memcpy(&out[i].first_ms, p + 8, 8);
    std::memcpy(&out[i].last_ms, p + 16, 8);
    std::memcpy(&out[i].key, p + 24, sizeof(FlowKey));
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
    const size_t at = buf_.size();
    buf_.resize(at + kFlowLogEntrySize);
    encode(r, buf_.data() + at);
    held_max_last_ms_ = std::max(held_max_last_ms_, r.last_ms);
    held_max_flow_id_ = std::max(held_max_flow_id_, r.flow_id);
  }
  if (buf_.size() >= kWriteBytes || (!buf_.empty() && steady_ms >= last_write_ms_ + kWriteEveryMs)) {
    last_write_ms_ = steady_ms;
    return write(error);
  }
  return true;
}

bool FlowLogWriter::flush(std::string& error) {
  if (failed_) return false;
  return buf_.empty() || write(error);
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
  const uint32_t entry = kFlowLogEntrySize;
  std::memcpy(header + 8, &entry, 4);
  const uint64_t run_first_segment = ring_.runFirstSequence();
  std::memcpy(header + 16, &run_first_segment, 8);
  if (!writeAll(fd_, header, sizeof header, error)) {
    error = "cannot write " + path_ + ": " + error;
    return false;
  }
  file_bytes_ = sizeof header;
  return true;
}

bool FlowLogWriter::write(std::string& error) {
  // Whole entries per file: what does not fit goes to the next one.
  size_t done = 0;
  while (done < buf_.size()) {
    if (fd_ < 0 || file_bytes_ + kFlowLogEntrySize > kFlowLogFileBytes) {
      if (!openNext(error)) {
        failed_ = true;
        return false;
      }
    }
    const size_t room = (kFlowLogFileBytes - file_bytes_) / kFlowLogEntrySize * kFlowLogEntrySize;
    const size_t n = std::min(room, buf_.size() - done);
    if (!writeAll(fd_, buf_.data() + done, n, error)) {
      error = "cannot write " + path_ + ": " + error;
      failed_ = true;
      return false;
    }
    file_bytes_ += n;
    done += n;
    // The held entries' maxima stand for each file they went to: at worst a
    // file is kept a little longer than its flows need.
    ring_.flowLogWritten(path_, file_bytes_, held_max_last_ms_, held_max_flow_id_);
  }
  buf_.clear();
  held_max_last_ms_ = held_max_flow_id_ = 0;
  return true;
}

}  // namespace flowfold::recorder
