#include "spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <map>
#include <sstream>
#include <stdexcept>

#include "flowfold/exporters/log.h"

namespace flowfold::mysql {

namespace {

constexpr char kMagic[8] = {'F', 'F', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64;

// Directory -> pid that claimed it. The pid matters after fork(): a child
// inherits the map but none of the parent's exporters.
std::mutex g_claims_mu;
std::condition_variable g_claims_cv;
std::map<std::string, pid_t> g_claims;

bool claimedHere(const std::string& dir) {
  auto it = g_claims.find(dir);
  return it != g_claims.end() && it->second == ::getpid();
}

std::string errnoText() { return std::strerror(errno); }

void putLe(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t getLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

bool writeAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool preadAll(int fd, uint8_t* data, size_t size, off_t offset) {
  while (size > 0) {
    const ssize_t n = ::pread(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = ENODATA;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

bool parseSegmentName(const char* name, uint64_t& number) {
  if (std::strncmp(name, "seg-", 4) != 0 || std::strlen(name) != 24) return false;
  number = 0;
  for (const char* p = name + 4; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    number = number * 10 + static_cast<uint64_t>(*p - '0');
  }
  return true;
}

// Reads a segment header; returns the spool id in it, or 0 when it is not a
// valid header for `number`.
uint64_t headerSpoolId(const std::string& path, uint64_t number) {
  uint8_t h[kHeaderSize];
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const bool ok = preadAll(fd, h, sizeof h, 0);
  ::close(fd);
  if (!ok || std::memcmp(h, kMagic, 8) != 0 || getLe(h + 8, 4) != kFormatVersion ||
      getLe(h + 12, 4) != kSpoolRecordSize || getLe(h + 24, 8) != number)
    return 0;
  return getLe(h + 16, 8);
}

}  // namespace

// ---------------------------------------------------------------- claims

std::unique_ptr<SpoolDirClaim> SpoolDirClaim::tryAcquire(const std::string& dir) {
  std::lock_guard lock(g_claims_mu);
  if (claimedHere(dir)) return nullptr;
  g_claims[dir] = ::getpid();
  return std::unique_ptr<SpoolDirClaim>(new SpoolDirClaim(dir));
}

std::unique_ptr<SpoolDirClaim> SpoolDirClaim::acquire(const std::string& dir, const std::atomic<bool>& cancel) {
  std::unique_lock lock(g_claims_mu);
  while (claimedHere(dir)) {
    if (cancel.load()) return nullptr;
    g_claims_cv.wait_for(lock, std::chrono::milliseconds(100));
  }
  g_claims[dir] = ::getpid();
  return std::unique_ptr<SpoolDirClaim>(new SpoolDirClaim(dir));
}

SpoolDirClaim::~SpoolDirClaim() {
  {
    std::lock_guard lock(g_claims_mu);
    g_claims.erase(dir_);
  }
  g_claims_cv.notify_all();
}

std::string prepareSpoolDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create spool directory " + dir + ": " + ec.message());
  const std::string canonical = std::filesystem::canonical(dir, ec).string();
  if (ec) throw std::runtime_error("cannot resolve spool directory " + dir + ": " + ec.message());
  // access(W_OK) says yes to root on a read-only mount; a real file says the truth.
  const std::string probe = canonical + "/.write-test-" + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("spool directory " + canonical + " is not writable: " + errnoText());
  const bool ok = writeAll(fd, reinterpret_cast<const uint8_t*>("x"), 1);
  const std::string why = ok ? "" : errnoText();
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok) throw std::runtime_error("spool directory " + canonical + " is not writable: " + why);
  return canonical;
}

// ---------------------------------------------------------------- spool

Spool::Spool(std::string canonical_dir, Limits limits, std::unique_ptr<SpoolDirClaim> claim)
    : dir_(std::move(canonical_dir)), limits_(limits), claim_(std::move(claim)) {
  const std::string lock_path = dir_ + "/lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw std::runtime_error("cannot open " + lock_path + ": " + errnoText());
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    std::string who = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
    who.erase(who.find_last_not_of("\n ") + 1);
    throw std::runtime_error("spool directory " + dir_ + " is in use by another process (pid " + who +
                             "); give every mysql exporter its own spool_dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    // Only informative (who holds the lock); the flock itself is what counts.
  }
  loadOrCreateState();
  scanSegments();
  normaliseCursorLocked();
}

Spool::~Spool() {
  if (tail_fd_ >= 0) ::close(tail_fd_);
  if (read_fd_ >= 0) ::close(read_fd_);
  // An empty tail (created, then nothing could be written) is of no use to the next run.
  if (!segments_.empty() && segments_.back().number == tail_number_ && segments_.back().records == 0)
    ::unlink(segmentPath(tail_number_).c_str());
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string Spool::segmentPath(uint64_t number) const {
  char name[32];
  std::snprintf(name, sizeof name, "seg-%020llu", static_cast<unsigned long long>(number));
  return dir_ + "/" + name;
}

void Spool::loadOrCreateState() {
  std::ifstream in(dir_ + "/spool.state");
  std::string word;
  while (in >> word) {
    if (word == "id") in >> std::hex >> id_ >> std::dec;
    else if (word == "next_segment") in >> next_segment_;
  }
  if (id_ != 0) return;
  // No state: a new spool, or one whose state file was removed; in the
  // second case adopt the segments' id rather than orphaning their records.
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      uint64_t number = 0;
      if (parseSegmentName(e->d_name, number)) {
        if (const uint64_t id = headerSpoolId(dir_ + "/" + e->d_name, number)) {
          id_ = id;
          next_segment_ = std::max(next_segment_, number + 1);
        }
      }
    }
    ::closedir(d);
  }
  if (id_ == 0) {
    std::random_device rd;
    while (id_ == 0) id_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    // Keep it positive as a signed 64-bit number too (friendlier in SQL clients).
    id_ &= ~(uint64_t{1} << 63);
    if (id_ == 0) id_ = 1;
  }
  saveState();
}

void Spool::saveState() {
  const std::string path = dir_ + "/spool.state", tmp = path + ".tmp";
  char text[128];
  std::snprintf(text, sizeof text, "id %016llx\nnext_segment %llu\n", static_cast<unsigned long long>(id_),
                static_cast<unsigned long long>(next_segment_));
  const int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + errnoText());
  const bool ok = writeAll(fd, reinterpret_cast<const uint8_t*>(text), std::strlen(text)) && ::fsync(fd) == 0;
  const std::string why = ok ? "" : errnoText();
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot write " + path + ": " + (ok ? errnoText() : why));
  // The rename must be durable before a segment with the new number exists.
  syncDirectory();
}

void Spool::scanSegments() {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cannot list spool directory " + dir_ + ": " + errnoText());
  std::vector<Segment> found;
  while (dirent* e = ::readdir(d)) {
    uint64_t number = 0;
    if (!parseSegmentName(e->d_name, number)) continue;
    const std::string path = dir_ + "/" + e->d_name;
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (static_cast<uint64_t>(st.st_size) < kHeaderSize) {
      ::unlink(path.c_str());  // a crash between create and header: holds no record
      continue;
    }
    if (headerSpoolId(path, number) != id_) {
      logError("mysql spool: %s does not belong to this spool (bad header or other spool id); renamed to %s.bad "
               "and not replayed", path.c_str(), path.c_str());
      ::rename(path.c_str(), (path + ".bad").c_str());
      continue;
    }
    Segment s;
    s.number = number;
    s.file_bytes = static_cast<uint64_t>(st.st_size);
    // A partial record at the end is a torn append from a crash: ignored.
    s.records = (s.file_bytes - kHeaderSize) / kSpoolRecordSize;
    found.push_back(s);
  }
  ::closedir(d);
  std::sort(found.begin(), found.end(), [](const Segment& a, const Segment& b) { return a.number < b.number; });
  for (const auto& s : found) {
    segments_.push_back(s);
    bytes_ += s.file_bytes;
  }
  if (!found.empty() && found.back().number >= next_segment_) {
    next_segment_ = found.back().number + 1;
    saveState();
  }
  cursor_ = {segments_.empty() ? next_segment_ : segments_.front().number, 0};
}

uint64_t Spool::unconsumedLocked(const Segment& s) const {
  if (s.number < cursor_.segment) return 0;
  if (s.number == cursor_.segment) return s.records - std::min(cursor_.record, s.records);
  return s.records;
}

void Spool::deleteSegmentLocked(std::deque<Segment>::iterator it) {
  ::unlink(segmentPath(it->number).c_str());
  bytes_ -= it->file_bytes;
  segments_.erase(it);
}

void Spool::normaliseCursorLocked() {
  if (segments_.empty()) {
    cursor_ = {std::max(cursor_.segment, next_segment_), 0};
    return;
  }
  if (segments_.front().number > cursor_.segment) cursor_ = {segments_.front().number, 0};
}

// Deletes leading segments that are used up (cursor at their end) and that
// the writer has left; the reader thread only, so read_fd_ is ours.
void Spool::dropConsumedLocked() {
  normaliseCursorLocked();
  while (!segments_.empty()) {
    Segment& s = segments_.front();
    if (s.number != cursor_.segment || cursor_.record < s.records || s.number == tail_number_ || s.pinned) break;
    if (read_fd_ >= 0 && read_number_ == s.number) {
      ::close(read_fd_);
      read_fd_ = -1;
    }
    deleteSegmentLocked(segments_.begin());
    normaliseCursorLocked();
  }
}

bool Spool::openTail(std::string& error) {
  if (tail_fd_ >= 0) {
    ::close(tail_fd_);
    tail_fd_ = -1;
  }
  uint64_t number = 0;
  {
    std::lock_guard lock(mu_);
    number = next_segment_++;
    try {
      saveState();
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  }
  const std::string path = segmentPath(number);
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = "cannot create " + path + ": " + errnoText();
    return false;
  }
  uint8_t h[kHeaderSize] = {};
  std::memcpy(h, kMagic, 8);
  putLe(h + 8, kFormatVersion, 4);
  putLe(h + 12, kSpoolRecordSize, 4);
  putLe(h + 16, id_, 8);
  putLe(h + 24, number, 8);
  putLe(h + 32,
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count()),
        8);
  if (!writeAll(fd, h, sizeof h)) {
    error = "cannot write " + path + ": " + errnoText();
    ::close(fd);
    ::unlink(path.c_str());
    return false;
  }
  tail_fd_ = fd;
  std::lock_guard lock(mu_);
  Segment s;
  s.number = number;
  s.file_bytes = kHeaderSize;
  segments_.push_back(s);
  bytes_ += kHeaderSize;
  tail_number_ = number;
  return true;
}

SpoolAppendResult Spool::append(std::span<const FlowRecord> records, uint32_t observation_domain) {
  SpoolAppendResult res;
  const uint64_t per_segment = std::max<uint64_t>(1, (limits_.segment_bytes - kHeaderSize) / kSpoolRecordSize);
  size_t i = 0;
  while (i < records.size()) {
    const size_t remaining = records.size() - i;
    size_t chunk = 0;
    bool new_tail = false;
    {
      std::lock_guard lock(mu_);
      uint64_t capacity = 0;
      if (tail_number_ != 0 && tail_fd_ >= 0 && segments_.back().records < per_segment)
        capacity = per_segment - segments_.back().records;
      new_tail = capacity == 0;
      if (new_tail) capacity = per_segment;
      chunk = static_cast<size_t>(std::min<uint64_t>(remaining, capacity));
      const uint64_t overhead = new_tail ? kHeaderSize : 0;
      auto needed = [&] { return overhead + chunk * kSpoolRecordSize; };
      while (bytes_ + needed() > limits_.max_bytes && limits_.drop_oldest) {
        auto victim = std::find_if(segments_.begin(), segments_.end(), [&](const Segment& s) {
          return s.number != tail_number_ && !s.pinned;
        });
        if (victim == segments_.end()) break;
        res.dropped_oldest += unconsumedLocked(*victim);
        deleteSegmentLocked(victim);
        normaliseCursorLocked();
      }
      if (bytes_ + needed() > limits_.max_bytes) {
        const uint64_t room = limits_.max_bytes > bytes_ + overhead ? limits_.max_bytes - bytes_ - overhead : 0;
        chunk = static_cast<size_t>(std::min<uint64_t>(chunk, room / kSpoolRecordSize));
      }
    }
    if (chunk == 0) {
      res.dropped_newest += remaining;
      break;
    }
    if (new_tail && !openTail(res.error)) {
      res.dropped_newest += remaining;
      break;
    }
    write_buf_.resize(chunk * kSpoolRecordSize);
    for (size_t k = 0; k < chunk; ++k)
      encodeSpoolRecord(records[i + k], observation_domain, write_buf_.data() + k * kSpoolRecordSize);
    uint64_t before = 0;
    {
      std::lock_guard lock(mu_);
      before = segments_.back().file_bytes;
    }
    if (!writeAll(tail_fd_, write_buf_.data(), write_buf_.size())) {
      res.error = "cannot append to " + segmentPath(tail_number_) + ": " + errnoText();
      // Cut a partial append back to the last whole record, and start a new
      // segment next time (this one may sit on a failing or full disk).
      if (::ftruncate(tail_fd_, static_cast<off_t>(before)) != 0) {
      }
      ::close(tail_fd_);
      tail_fd_ = -1;
      res.dropped_newest += remaining;
      break;
    }
    {
      std::lock_guard lock(mu_);
      Segment& tail = segments_.back();
      tail.records += chunk;
      tail.file_bytes += chunk * kSpoolRecordSize;
      bytes_ += chunk * kSpoolRecordSize;
      records_spooled_ += chunk;
    }
    res.written += chunk;
    i += chunk;
  }
  {
    std::lock_guard lock(mu_);
    dropped_oldest_ += res.dropped_oldest;
    dropped_newest_ += res.dropped_newest;
  }
  if (res.written && on_append_) on_append_();
  return res;
}

bool Spool::readBatch(size_t max_records, SpoolBatch& out, std::string& error) {
  out.flows.clear();
  out.corrupt = 0;
  uint64_t number = 0, first = 0, n = 0;
  {
    std::lock_guard lock(mu_);
    dropConsumedLocked();
    if (segments_.empty()) return false;
    Segment& s = segments_.front();
    if (cursor_.record >= s.records) return false;  // the writer's tail, nothing new
    number = s.number;
    first = cursor_.record;
    n = std::min<uint64_t>(max_records, s.records - first);
    s.pinned = true;
  }
  if (read_fd_ < 0 || read_number_ != number) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = ::open(segmentPath(number).c_str(), O_RDONLY | O_CLOEXEC);
    read_number_ = number;
  }
  read_buf_.resize(n * kSpoolRecordSize);
  if (read_fd_ < 0 ||
      !preadAll(read_fd_, read_buf_.data(), read_buf_.size(),
                static_cast<off_t>(kHeaderSize + first * kSpoolRecordSize))) {
    error = "cannot read " + segmentPath(number) + ": " + errnoText();
    std::lock_guard lock(mu_);
    for (auto& s : segments_)
      if (s.number == number) s.pinned = false;
    return false;
  }
  out.segment = number;
  out.first = first;
  out.end = first + n;
  out.flows.resize(n);
  size_t good = 0;
  for (uint64_t k = 0; k < n; ++k) {
    if (decodeSpoolRecord(read_buf_.data() + k * kSpoolRecordSize, out.flows[good])) ++good;
    else ++out.corrupt;
  }
  out.flows.resize(good);
  return true;
}

void Spool::commit(const SpoolBatch& batch) {
  std::lock_guard lock(mu_);
  for (auto& s : segments_)
    if (s.number == batch.segment) s.pinned = false;
  if (SpoolPosition{batch.segment, batch.end} > cursor_) cursor_ = {batch.segment, batch.end};
  dropConsumedLocked();
}

void Spool::release(const SpoolBatch& batch) {
  {
    std::lock_guard lock(mu_);
    for (auto& s : segments_)
      if (s.number == batch.segment) s.pinned = false;
  }
  // The sink is backing off; do not keep a segment drop_oldest may delete open.
  if (read_fd_ >= 0) ::close(read_fd_);
  read_fd_ = -1;
}

void Spool::resumeAt(std::optional<SpoolPosition> committed) {
  std::lock_guard lock(mu_);
  if (!committed) {
    cursor_ = {segments_.empty() ? next_segment_ : segments_.front().number, 0};
  } else {
    // Batches commit in spool order, so everything before the last committed
    // batch's end is in the database.
    while (!segments_.empty() && segments_.front().number < committed->segment && !segments_.front().pinned &&
           segments_.front().number != tail_number_)
      deleteSegmentLocked(segments_.begin());
    cursor_ = *committed;
    if (!segments_.empty() && segments_.front().number == committed->segment &&
        committed->record > segments_.front().records) {
      logError("mysql spool %s: the database has committed %llu records of segment %llu but the file holds only "
               "%llu; was the spool restored from an old copy?",
               dir_.c_str(), static_cast<unsigned long long>(committed->record),
               static_cast<unsigned long long>(committed->segment),
               static_cast<unsigned long long>(segments_.front().records));
      cursor_.record = segments_.front().records;
    }
  }
  dropConsumedLocked();
}

uint64_t Spool::oldestSegment() const {
  std::lock_guard lock(mu_);
  return segments_.empty() ? next_segment_ : segments_.front().number;
}

SpoolPosition Spool::writePosition() const {
  std::lock_guard lock(mu_);
  if (tail_number_ != 0 && !segments_.empty() && segments_.back().number == tail_number_)
    return {tail_number_, segments_.back().records};
  return {next_segment_, 0};
}

void Spool::syncDirectory() const {
  if (const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

SpoolPosition Spool::readPosition() const {
  std::lock_guard lock(mu_);
  return cursor_;
}

uint64_t Spool::pendingRecords() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : segments_) n += unconsumedLocked(s);
  return n;
}

SpoolState Spool::state() const {
  std::lock_guard lock(mu_);
  SpoolState st;
  for (const auto& s : segments_) st.pending_records += unconsumedLocked(s);
  st.bytes = bytes_;
  st.segments = segments_.size();
  st.records_spooled = records_spooled_;
  st.dropped_oldest = dropped_oldest_;
  st.dropped_newest = dropped_newest_;
  return st;
}

}  // namespace flowfold::mysql
