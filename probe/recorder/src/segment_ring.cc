#include "flowfold/recorder/segment_ring.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>

#include "flowfold/log.h"
#include "flowfold/recorder/address_filter.h"
#include "flowfold/recorder/flow_log.h"
#include "flowfold/recorder/pcap_segment.h"
#include "flowfold/recorder/segment_index.h"

namespace flowfold::recorder {

namespace {

constexpr const char* kPrefix = "flowfold-";
constexpr const char* kSuffix = ".pcap";

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

uint64_t toNumber(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string joinPath(const std::string& dir, const std::string& file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

void checkDirectory(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw RecorderError("recorder: directory " + dir + ": " + std::strerror(errno) +
                        " (create it, owned by the user flowfold runs as)");
  if (!S_ISDIR(st.st_mode)) throw RecorderError("recorder: " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw RecorderError("recorder: directory " + dir + " is not writable: " + std::strerror(errno) +
                        " (give the user flowfold runs as write access to it)");
}

}  // namespace

std::optional<SegmentName> parseSegmentName(const std::string& file_name) {
  std::string_view n = file_name;
  if (n.substr(0, std::strlen(kPrefix)) != kPrefix) return std::nullopt;
  if (n.size() < std::strlen(kSuffix) || n.substr(n.size() - std::strlen(kSuffix)) != kSuffix) return std::nullopt;
  n.remove_prefix(std::strlen(kPrefix));
  n.remove_suffix(std::strlen(kSuffix));
  const size_t first = n.find('-');
  const size_t last = n.rfind('-');
  if (first == std::string_view::npos || last == first) return std::nullopt;
  const std::string_view seq = n.substr(0, first), stream = n.substr(first + 1, last - first - 1),
                         start = n.substr(last + 1);
  if (seq.size() != 12 || !allDigits(seq) || !allDigits(start) || start.size() > 12 || stream.empty() ||
      stream.find('-') != std::string_view::npos)
    return std::nullopt;
  return SegmentName{toNumber(seq), std::string(stream), toNumber(start)};
}

std::string segmentFileName(const SegmentName& name) {
  char seq[16];
  std::snprintf(seq, sizeof seq, "%012llu", static_cast<unsigned long long>(name.sequence));
  return std::string(kPrefix) + seq + "-" + name.stream + "-" + std::to_string(name.start_s) + kSuffix;
}

std::string streamName(const std::string& text) {
  std::string out;
  for (char c : text)
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')
      out += c;
  return out.empty() ? "capture" : out;
}

SegmentRing::SegmentRing(const RecorderOptions& options) : options_(options) {
  if (options_.directories.empty()) throw RecorderError("recorder: no directory given");
  for (size_t d = 0; d < options_.directories.size(); ++d) {
    const std::string& dir = options_.directories[d];
    checkDirectory(dir);
    DIR* listing = ::opendir(dir.c_str());
    if (!listing) throw RecorderError("recorder: cannot list " + dir + ": " + std::strerror(errno));
    while (const dirent* entry = ::readdir(listing)) {
      if (const auto log = parseFlowLogName(entry->d_name)) {
        addFoundFlowLog(joinPath(dir, entry->d_name), *log);
        continue;
      }
      const auto name = parseSegmentName(entry->d_name);
      if (!name) continue;
      // Any name of ours, even a link's, is a sequence number not to reuse.
      next_sequence_ = std::max(next_sequence_, name->sequence + 1);
      Segment s;
      s.path = joinPath(dir, entry->d_name);
      s.directory = d;
      s.name = *name;
      struct stat st {};
      if (::lstat(s.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // a link or a directory: not ours
      s.bytes = static_cast<uint64_t>(st.st_size);
      for (const std::string& beside : {indexPathOf(s.path), addressFilterPathOf(s.path)})
        if (::lstat(beside.c_str(), &st) == 0 && S_ISREG(st.st_mode)) s.bytes += static_cast<uint64_t>(st.st_size);
      segments_.push_back(s);
    }
    ::closedir(listing);
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.name.sequence < b.name.sequence; });
  std::sort(flow_logs_.begin(), flow_logs_.end(),
            [](const FlowLogFile& a, const FlowLogFile& b) { return a.sequence < b.sequence; });
  run_first_sequence_ = next_sequence_;
  // The newest segment of each stream was being written when the last run
  // ended: a crash may have cut its last record.
  std::map<std::string, Segment*> newest;
  for (Segment& s : segments_) newest[s.name.stream] = &s;
  for (auto& [stream, s] : newest) {
    const RepairResult r = repairSegment(s->path);
    if (!r.valid) {
      logWarn("recorder: segment %s: %s", s->path.c_str(), r.error.c_str());
      continue;
    }
    if (r.cut_bytes == 0) continue;
    ++counters_.segments_repaired;
    s->bytes = r.kept_bytes;
    logWarn("recorder: segment %s ended in the middle of a packet (the last run stopped without closing it): "
            "%llu bytes trimmed, %llu whole packets kept",
            s->path.c_str(), static_cast<unsigned long long>(r.cut_bytes), static_cast<unsigned long long>(r.packets));
  }
}

void SegmentRing::addFoundFlowLog(const std::string& path, uint64_t sequence) {
  next_flow_log_ = std::max(next_flow_log_, sequence + 1);  // never reused, even a link's
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;  // a link or a directory: not ours
  FlowLogFile f;
  f.path = path;
  f.sequence = sequence;
  f.bytes = static_cast<uint64_t>(st.st_size);
  FlowLogSummary summary;
  std::string error;
  if (!summarizeFlowLog(path, summary, error)) {
    logWarn("recorder: flow log %s: %s (left alone)", path.c_str(), error.c_str());
    return;
  }
  if (!summary.damage.empty())
    logWarn("recorder: flow log %s: %s; the flows before it can still be found", path.c_str(), summary.damage.c_str());
  f.run_first_segment = summary.run_first_segment;
  f.max_last_ms = summary.max_last_ms;
  f.max_flow_id = summary.max_flow_id;
  highest_flow_id_ = std::max(highest_flow_id_, f.max_flow_id);
  flow_logs_.push_back(f);
}

bool SegmentRing::belowMinFree(size_t directory) const {
  struct statvfs fs {};
  if (::statvfs(options_.directories[directory].c_str(), &fs) != 0) return false;
  const uint64_t total = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  const uint64_t free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  const uint64_t floor = options_.min_free_bytes != 0
                             ? options_.min_free_bytes
                             : static_cast<uint64_t>(static_cast<double>(total) * options_.min_free_percent / 100.0);
  return free < floor;
}

void SegmentRing::removeOldest(size_t index) {
  const Segment s = segments_[index];
  // Its filter and index first: neither is ever left without its segment.
  ::unlink(addressFilterPathOf(s.path).c_str());
  ::unlink(indexPathOf(s.path).c_str());
  if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) {
    logWarn("recorder: cannot remove segment %s: %s", s.path.c_str(), std::strerror(errno));
  } else {
    ++counters_.segments_removed;
    counters_.bytes_removed += s.bytes;
  }
  segments_.erase(segments_.begin() + static_cast<std::ptrdiff_t>(index));
}

void SegmentRing::enforceLocked(uint64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  // The oldest closed segment, or the end.
  const auto oldestClosed = [&](auto&& keep) {
    for (size_t i = 0; i < segments_.size(); ++i)
      if (!segments_[i].open && !keep(segments_[i])) return i;
    return segments_.size();
  };
  if (options_.max_size != 0) {
    for (uint64_t total = bytesLocked(); total > options_.max_size;) {
      const size_t i = oldestClosed([](const Segment&) { return false; });
      if (i == segments_.size()) break;
      removeOldest(i);
      removeSpentFlowLogs();  // they count towards max_size too
      total = bytesLocked();
    }
  }
  if (options_.max_age_ms != 0 && now_ms > options_.max_age_ms) {
    const uint64_t horizon_s = (now_ms - options_.max_age_ms) / 1000;
    // A segment ended when the next one of its stream began.
    for (size_t i = 0; i < segments_.size();) {
      const Segment& s = segments_[i];
      uint64_t end_s = UINT64_MAX;
      for (size_t j = i + 1; j < segments_.size(); ++j)
        if (segments_[j].name.stream == s.name.stream) {
          end_s = segments_[j].name.start_s;
          break;
        }
      if (!s.open && end_s < horizon_s) {
        removeOldest(i);
      } else {
        ++i;
      }
    }
  }
  for (size_t d = 0; d < options_.directories.size(); ++d) {
    while (belowMinFree(d)) {
      const size_t i = oldestClosed([d](const Segment& s) { return s.directory != d; });
      if (i == segments_.size()) break;
      removeOldest(i);
    }
  }
  removeSpentFlowLogs();
}

// A flow log leads to no packet once every segment of the run that wrote it
// is gone, or once all its flows ended before the oldest packet left in the
// ring (a long run writes many logs): it goes with the segments.
void SegmentRing::removeSpentFlowLogs() {
  // Called after every write: nothing to do while every log is open (a big
  // ring holds thousands of logs and segments, so the work below is linear
  // in them, not quadratic).
  if (std::all_of(flow_logs_.begin(), flow_logs_.end(), [](const FlowLogFile& f) { return f.open; })) return;
  // The runs by their first segment; a run's segments end where the next begins.
  std::vector<uint64_t> runs{run_first_sequence_};
  for (const FlowLogFile& f : flow_logs_) runs.push_back(f.run_first_segment);
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  std::vector<bool> run_has_segments(runs.size(), false);
  uint64_t oldest_packet_ms = UINT64_MAX;
  for (const Segment& s : segments_) {
    oldest_packet_ms = std::min(oldest_packet_ms, s.name.start_s * 1000);
    const auto after = std::upper_bound(runs.begin(), runs.end(), s.name.sequence);
    if (after != runs.begin()) run_has_segments[static_cast<size_t>(after - runs.begin()) - 1] = true;
  }
  const auto runHasSegments = [&](uint64_t run_first) {
    return run_has_segments[static_cast<size_t>(std::lower_bound(runs.begin(), runs.end(), run_first) - runs.begin())];
  };
  for (auto it = flow_logs_.begin(); it != flow_logs_.end();) {
    // This run's segments are still being written: only the time tells.
    const bool this_run = it->run_first_segment == run_first_sequence_;
    if (it->open || (it->max_last_ms >= oldest_packet_ms && (this_run || runHasSegments(it->run_first_segment)))) {
      ++it;
      continue;
    }
    if (::unlink(it->path.c_str()) != 0 && errno != ENOENT) {
      logWarn("recorder: cannot remove flow log %s: %s", it->path.c_str(), std::strerror(errno));
      ++it;
      continue;
    }
    it = flow_logs_.erase(it);
  }
}

void SegmentRing::enforceBounds(uint64_t now_ms) {
  std::lock_guard lock(mu_);
  enforceLocked(now_ms);
}

int SegmentRing::openNext(const std::string& stream, uint64_t first_ts_ms, Segment& opened) {
  std::lock_guard lock(mu_);
  enforceLocked(first_ts_ms);
  const size_t n = options_.directories.size();
  for (size_t tries = 0; tries < n; ++tries) {
    const size_t d = (next_directory_ + tries) % n;
    if (belowMinFree(d)) continue;
    Segment s;
    s.directory = d;
    s.name = SegmentName{next_sequence_, streamName(stream), first_ts_ms / 1000};
    s.path = joinPath(options_.directories[d], segmentFileName(s.name));
    s.open = true;
    // O_EXCL | O_NOFOLLOW: never through a planted link, never over a file.
    const int fd = ::open(s.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EEXIST) {  // made since the start (by whom?): the next number
      ++next_sequence_;
      --tries;
      continue;
    }
    if (fd < 0)
      throw RecorderError("recorder: cannot create segment " + s.path + ": " + std::strerror(errno));
    ++next_sequence_;
    next_directory_ = (d + 1) % n;
    ++counters_.segments_opened;
    segments_.push_back(s);
    opened = s;
    return fd;
  }
  throw RecorderError("recorder: every ring directory is below its min_free floor and holds no segment to remove: "
                      "free space on " + options_.directories[0] + (n > 1 ? " and the others" : "") +
                      ", or lower min_free");
}

int SegmentRing::openFlowLog(FlowLogFile& opened) {
  std::lock_guard lock(mu_);
  const std::string& dir = options_.directories[0];
  for (;;) {
    FlowLogFile f;
    f.sequence = next_flow_log_++;
    f.path = joinPath(dir, flowLogFileName(f.sequence));
    f.run_first_segment = run_first_sequence_;
    f.open = true;
    const int fd = ::open(f.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EEXIST) continue;  // made since the start: the next number
    if (fd < 0) throw RecorderError("recorder: cannot create flow log " + f.path + ": " + std::strerror(errno));
    flow_logs_.push_back(f);
    opened = f;
    return fd;
  }
}

void SegmentRing::flowLogWritten(const std::string& path, uint64_t bytes, uint64_t max_last_ms, uint64_t max_flow_id) {
  std::lock_guard lock(mu_);
  for (FlowLogFile& f : flow_logs_)
    if (f.path == path) {
      f.bytes = bytes;
      f.max_last_ms = std::max(f.max_last_ms, max_last_ms);
      f.max_flow_id = std::max(f.max_flow_id, max_flow_id);
    }
  highest_flow_id_ = std::max(highest_flow_id_, max_flow_id);
  enforceLocked(last_now_ms_);  // the log counts towards max_size too
}

void SegmentRing::flowLogClosed(const std::string& path) {
  std::lock_guard lock(mu_);
  for (FlowLogFile& f : flow_logs_)
    if (f.path == path) f.open = false;
}

uint64_t SegmentRing::highestFlowId() const {
  std::lock_guard lock(mu_);
  return highest_flow_id_;
}

std::vector<FlowLogFile> SegmentRing::flowLogs() const {
  std::lock_guard lock(mu_);
  return flow_logs_;
}

void SegmentRing::grew(const Segment& segment, uint64_t bytes) {
  std::lock_guard lock(mu_);
  for (Segment& s : segments_)
    if (s.path == segment.path) s.bytes = bytes;
}

void SegmentRing::closed(const Segment& segment, uint64_t bytes) {
  std::lock_guard lock(mu_);
  for (Segment& s : segments_)
    if (s.path == segment.path) {
      s.bytes = bytes;
      s.open = false;
    }
}

std::vector<Segment> SegmentRing::segments() const {
  std::lock_guard lock(mu_);
  return segments_;
}

RingCounters SegmentRing::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

uint64_t SegmentRing::totalBytes() const {
  std::lock_guard lock(mu_);
  return bytesLocked();
}

uint64_t SegmentRing::bytesLocked() const {
  uint64_t total = 0;
  for (const Segment& s : segments_) total += s.bytes;
  for (const FlowLogFile& f : flow_logs_) total += f.bytes;
  return total;
}

}  // namespace flowfold::recorder
