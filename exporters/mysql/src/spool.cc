#include "spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>  // renameat2
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

#include "flowfold/log.h"

namespace flowfold::mysql {

namespace {

constexpr char kMagic[8] = {'F', 'F', 'S', 'P', 'O', 'O', 'L', '1'};
// 2: records carry the flow id (116 bytes). Segments of format 1 (108-byte
// records, before flow ids), left by an older flowfold, are still read, their
// flow_id 0; a new run never appends to them (it always starts a segment).
constexpr uint32_t kFormatVersion = 3;
constexpr size_t kHeaderSize = 64;
// No real spool gets near this many segments (one a microsecond for eight
// years); anything above is a damaged spool.state or file name, and staying
// far below 2^64 means a segment number + 1 can never wrap to 0.
constexpr uint64_t kMaxSegmentNumber = uint64_t{1} << 48;
// What flowfold creates in the spool: no access for other users, whatever
// the umask.
constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;

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

// A segment's number, or nullopt when `name` is not a segment's name. A
// number past kMaxSegmentNumber (20 digits reach past 2^64) comes back as is
// for the caller to reject, never wrapped.
std::optional<uint64_t> parseSegmentName(const char* name) {
  if (std::strncmp(name, "seg-", 4) != 0 || std::strlen(name) != 24) return std::nullopt;
  uint64_t number = 0;
  for (const char* p = name + 4; *p; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(*p - '0');
    if (number > (UINT64_MAX - digit) / 10) return UINT64_MAX;
    number = number * 10 + digit;
  }
  return number;
}

// The spool never follows a link: a link planted in the directory must not
// make flowfold (perhaps root) read or write another file.
int openInSpool(const std::string& path, int flags, mode_t mode = kFileMode) {
  return ::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

struct SegmentHeader {
  enum class Status { kOk, kUnreadable, kDamaged } status = Status::kDamaged;
  uint64_t spool_id = 0;
  uint32_t version = kFormatVersion;  // of the records
  int error = 0;  // errno when kUnreadable
};

SegmentHeader readHeader(int fd, uint64_t number) {
  SegmentHeader r;
  uint8_t h[kHeaderSize];
  if (!preadAll(fd, h, sizeof h, 0)) {
    // ENODATA: the file ends inside the header.
    r.status = errno == ENODATA ? SegmentHeader::Status::kDamaged : SegmentHeader::Status::kUnreadable;
    r.error = errno;
    return r;
  }
  const auto version = static_cast<uint32_t>(getLe(h + 8, 4));
  if (std::memcmp(h, kMagic, 8) != 0 || version < 1 || version > kFormatVersion ||
      getLe(h + 12, 4) != spoolRecordSize(version) || getLe(h + 24, 8) != number)
    return r;
  r.status = SegmentHeader::Status::kOk;
  r.version = version;
  r.spool_id = getLe(h + 16, 8);
  return r;
}

SegmentHeader readHeader(const std::string& path, uint64_t number) {
  const int fd = openInSpool(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0) {
    SegmentHeader r;
    r.status = SegmentHeader::Status::kUnreadable;
    r.error = errno;
    return r;
  }
  const SegmentHeader r = readHeader(fd, number);
  ::close(fd);
  return r;
}

// Renames a file the spool must not read to <name>.bad (or .bad.2, ...; an
// earlier quarantined file is never replaced). Returns the new path, or ""
// (with errno) when it could not be moved.
std::string quarantine(const std::string& path) {
  for (int n = 1; n <= 1000; ++n) {
    const std::string to = path + ".bad" + (n == 1 ? "" : "." + std::to_string(n));
    if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return to;
    if (errno == EEXIST) continue;
    if (errno != EINVAL) return "";
    // A file system without RENAME_NOREPLACE: check, then rename.
    struct stat st{};
    if (::lstat(to.c_str(), &st) == 0) continue;
    if (::rename(path.c_str(), to.c_str()) == 0) return to;
    return "";
  }
  errno = EEXIST;
  return "";
}

std::string userName(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return std::to_string(uid) + (pw ? " (" + std::string(pw->pw_name) + ")" : "");
}

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// OpenSSH's StrictModes, for a directory flowfold writes to and reads back
// from: it and every directory above it belong to root or to the user
// flowfold runs as, and no other user may change them (a directory above may
// be world-writable only with the sticky bit, like /tmp, where nobody can
// rename another's entry; the spool directory itself not even then, since
// anyone could plant a segment or a lock in it). Otherwise another user could
// swap the spool's files for links or forged segments under a root flowfold.
void checkSpoolDirTrust(const std::string& canonical) {
  const uid_t me = ::geteuid();
  std::string path;
  size_t pos = 0;
  while (true) {
    const size_t next = canonical.find('/', pos + 1);
    path = next == std::string::npos ? canonical : canonical.substr(0, next);
    if (path.empty()) path = "/";
    const bool is_spool = next == std::string::npos;
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0)
      throw std::runtime_error("cannot check spool directory " + canonical + ": " + path + ": " + errnoText());
    if (!S_ISDIR(st.st_mode))
      throw std::runtime_error("spool directory " + canonical + ": " + path + " is not a directory (a link?)");
    if (st.st_uid != 0 && st.st_uid != me)
      throw std::runtime_error("spool directory " + canonical + ": " + path + " is owned by uid " +
                               userName(st.st_uid) + ", not by root or the user flowfold runs as (uid " +
                               userName(me) +
                               "), so that user could replace the spool's files; run flowfold as that user, "
                               "or chown the directory, or choose another spool_dir");
    if ((st.st_mode & 022) != 0 && (is_spool || !(st.st_mode & S_ISVTX)))
      throw std::runtime_error("spool directory " + canonical + ": " + path + " is writable by other users (mode " +
                               octal(st.st_mode) + "), who could plant files or links in the spool; chmod go-w " +
                               path);
    if (is_spool) return;
    pos = next;
  }
}

// create_directories() with a mode that keeps other users out, whatever the umask.
void makeSpoolDirs(const std::string& dir) {
  const std::filesystem::path abs = std::filesystem::absolute(dir);
  std::filesystem::path p;
  for (const auto& part : abs) {
    p /= part;
    if (::mkdir(p.c_str(), kDirMode) == 0) {
      ::chmod(p.c_str(), kDirMode);  // mkdir's mode went through the umask
    } else if (errno != EEXIST) {
      throw std::runtime_error("cannot create spool directory " + dir + ": " + p.string() + ": " + errnoText());
    }
  }
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
  makeSpoolDirs(dir);
  std::error_code ec;
  const std::string canonical = std::filesystem::canonical(dir, ec).string();
  if (ec) throw std::runtime_error("cannot resolve spool directory " + dir + ": " + ec.message());
  checkSpoolDirTrust(canonical);
  // access(W_OK) says yes to root on a read-only mount; a real file says the truth.
  const std::string probe = canonical + "/.write-test-" + std::to_string(::getpid());
  ::unlink(probe.c_str());  // left by a crash (or planted): O_EXCL below must create it afresh
  const int fd = openInSpool(probe, O_CREAT | O_EXCL | O_WRONLY, 0600);
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
  lock_fd_ = openInSpool(lock_path, O_RDWR | O_CREAT | O_NONBLOCK);
  if (lock_fd_ < 0 && errno == ELOOP)
    throw std::runtime_error(lock_path + " is a symbolic link; flowfold does not follow links in its spool. "
                             "Remove it (flowfold creates its own) and start again");
  if (lock_fd_ < 0) throw std::runtime_error("cannot open " + lock_path + ": " + errnoText());
  struct stat lock_st{};
  if (::fstat(lock_fd_, &lock_st) != 0 || !S_ISREG(lock_st.st_mode) || lock_st.st_nlink != 1) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw std::runtime_error(lock_path + " is not a plain file of its own (a device, a FIFO or a hard link); "
                             "flowfold does not write to it. Remove it (flowfold creates its own) and start again");
  }
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
  try {
    loadOrCreateState();
    scanSegments();
    normaliseCursorLocked();
  } catch (...) {
    // No destructor runs for a constructor that throws: the lock would stay
    // held by this process, and the next attempt (a reload) would find the
    // spool "in use" by itself.
    if (tail_fd_ >= 0) ::close(tail_fd_);
    if (read_fd_ >= 0) ::close(read_fd_);
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw;
  }
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

// The highest segment number named in the directory (0: none), damaged or
// not readable ones included: a number on disk is never handed out again.
uint64_t Spool::newestSegmentOnDisk() const {
  uint64_t newest = 0;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d))
      if (const auto number = parseSegmentName(e->d_name); number && *number < kMaxSegmentNumber)
        newest = std::max(newest, *number);
    ::closedir(d);
  }
  return newest;
}

void Spool::loadOrCreateState() {
  const std::string path = dir_ + "/spool.state";
  std::string text;
  const int fd = openInSpool(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0 && errno == ELOOP)
    throw std::runtime_error(path + " is a symbolic link; flowfold does not follow links in its spool. Remove it "
                             "(the segments keep their spool id, which flowfold adopts) and start again");
  if (fd < 0 && errno != ENOENT) throw std::runtime_error("cannot read " + path + ": " + errnoText());
  if (fd >= 0) {
    struct stat st{};
    char buf[4096];
    const ssize_t n = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::read(fd, buf, sizeof buf) : -1;
    ::close(fd);
    if (n < 0)
      throw std::runtime_error(path + " is not a readable plain file; remove it (the segments keep their spool id, "
                               "which flowfold adopts) and start again");
    text.assign(buf, static_cast<size_t>(n));
  }
  std::optional<uint64_t> next;
  std::string next_text;
  std::istringstream in(text);
  std::string key, value;
  while (in >> key >> value) {
    if (key == "id" && value.size() <= 16 && value.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos)
      id_ = std::stoull(value, nullptr, 16);
    if (key == "next_segment") {
      next_text = value;
      // Digits only: an istream would take "-1" as 2^64 - 1.
      if (value.size() <= 19 && value.find_first_not_of("0123456789") == std::string::npos)
        next = std::stoull(value);
    }
  }
  if (id_ == 0) {
    adoptSegmentsId();
    saveState();
    return;
  }
  if (next && *next >= 1 && *next < kMaxSegmentNumber) {
    next_segment_ = *next;
    return;
  }
  repairNextSegment(path, next_text);
}

// No state: a new spool, or one whose state file was removed; in the second
// case adopt the segments' id rather than orphaning their records.
void Spool::adoptSegmentsId() {
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const auto number = parseSegmentName(e->d_name);
      if (!number || *number >= kMaxSegmentNumber) continue;
      const SegmentHeader h = readHeader(dir_ + "/" + e->d_name, *number);
      if (h.status == SegmentHeader::Status::kOk && h.spool_id != 0) {
        id_ = h.spool_id;
        next_segment_ = std::max(next_segment_, *number + 1);
      }
    }
    ::closedir(d);
  }
  if (id_ == 0) id_ = randomSpoolId();
}

uint64_t Spool::randomSpoolId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) {
    id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    // Keep it positive as a signed 64-bit number too (friendlier in SQL clients).
    id &= ~(uint64_t{1} << 63);
  }
  return id;
}

// A next_segment no spool reaches (or none at all) cannot be trusted, and
// taken as it is, segment numbers would wrap past 2^64. The segments on disk
// say where numbering stood; with none left, a new spool id makes every
// number new again.
void Spool::repairNextSegment(const std::string& path, const std::string& bad_value) {
  const uint64_t newest = newestSegmentOnDisk();
  const std::string kept = quarantine(path);
  const std::string said = bad_value.empty() ? "no next_segment" : "next_segment " + bad_value;
  std::string how;
  if (newest != 0) {
    next_segment_ = newest + 1;
    how = "continuing with segment " + std::to_string(next_segment_) + ", after the newest one on disk";
  } else {
    id_ = randomSpoolId();
    next_segment_ = 1;
    how = "no segment is on disk, so the spool starts afresh under a new spool id";
  }
  logError("mysql spool %s: %s says %s, which no spool reaches: the file is damaged. Repaired: %s; no record is "
           "lost. The damaged file is kept as %s for inspection; delete it when done",
           dir_.c_str(), path.c_str(), said.c_str(), how.c_str(), kept.empty() ? "(could not be kept)" : kept.c_str());
  saveState();
}

void Spool::saveState() {
  const std::string path = dir_ + "/spool.state", tmp = path + ".tmp";
  char text[128];
  std::snprintf(text, sizeof text, "id %016llx\nnext_segment %llu\n", static_cast<unsigned long long>(id_),
                static_cast<unsigned long long>(next_segment_));
  ::unlink(tmp.c_str());  // left by a crash (or planted): O_EXCL below must create it afresh
  const int fd = openInSpool(tmp, O_CREAT | O_EXCL | O_WRONLY);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp + ": " + errnoText());
  const bool ok = writeAll(fd, reinterpret_cast<const uint8_t*>(text), std::strlen(text)) && ::fsync(fd) == 0;
  const std::string why = ok ? "" : errnoText();
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot write " + path + ": " + (ok ? errnoText() : why));
  // The rename must be durable before a segment with the new number exists.
  syncDirectory();
}

void Spool::quarantineSegment(const std::string& path, const std::string& why, const std::string& what_to_do) {
  const std::string kept = quarantine(path);
  if (kept.empty()) {
    logError("mysql spool %s: %s %s; it is not replayed, and could not be moved aside (%s): %s", dir_.c_str(),
             path.c_str(), why.c_str(), errnoText().c_str(), what_to_do.c_str());
  } else {
    logError("mysql spool %s: %s %s; moved aside to %s and not replayed: %s", dir_.c_str(), path.c_str(),
             why.c_str(), kept.c_str(), what_to_do.c_str());
  }
  std::lock_guard lock(mu_);
  ++quarantined_;
}

void Spool::scanSegments() {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw std::runtime_error("cannot list spool directory " + dir_ + ": " + errnoText());
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  const std::string inspect = "inspect it, then delete it";
  std::vector<Segment> found;
  for (const auto& name : names) {
    const auto number = parseSegmentName(name.c_str());
    if (!number) continue;
    const std::string path = dir_ + "/" + name;
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (*number == 0 || *number >= kMaxSegmentNumber) {
      quarantineSegment(path, "has a number no spool reaches", inspect);
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      quarantineSegment(path, "is not a regular file (a link or a special file flowfold did not create)", inspect);
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) < kHeaderSize) {
      quarantineSegment(path,
                        "is shorter than its 64-byte header (" + std::to_string(st.st_size) +
                            " bytes: cut short by a crash, a full disk or a copy) and holds no whole record",
                        inspect);
      continue;
    }
    Segment s;
    s.number = *number;
    s.file_bytes = static_cast<uint64_t>(st.st_size);
    const SegmentHeader h = readHeader(path, *number);
    // (An unreadable segment is taken to be of the current format until its
    // header can be read: readBatch() checks it then.)
    s.version = h.version;
    // A partial record at the end is a torn append from a crash: ignored.
    s.records = (s.file_bytes - kHeaderSize) / spoolRecordSize(s.version);
    if (h.status == SegmentHeader::Status::kUnreadable) {
      // Most likely left by a run as another user (root): the records are
      // fine, the reader waits for them (and those after them, in order).
      const std::string why = std::strerror(h.error);
      logError("mysql spool %s: cannot read %s (%s): its %llu records are kept, and written once flowfold (user %s) "
               "can read the file: give that user read and write access to it (chown or chmod); the records after "
               "it wait",
               dir_.c_str(), path.c_str(), why.c_str(), static_cast<unsigned long long>(s.records),
               userName(::geteuid()).c_str());
      s.verified = false;
    } else if (h.status == SegmentHeader::Status::kDamaged) {
      quarantineSegment(path, "has a damaged header (not a flowfold spool segment of this format)", inspect);
      continue;
    } else if (h.spool_id != id_) {
      char ids[64];
      std::snprintf(ids, sizeof ids, "%016llx, this spool is %016llx", static_cast<unsigned long long>(h.spool_id),
                    static_cast<unsigned long long>(id_));
      quarantineSegment(path, std::string("belongs to another spool (spool id ") + ids + ")",
                        "move it back to the spool directory it came from to replay it");
      continue;
    }
    found.push_back(s);
  }
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
  uint64_t number = 0, previous_tail = 0;
  {
    std::lock_guard lock(mu_);
    if (next_segment_ >= kMaxSegmentNumber) {
      error = "the spool's segment numbers are used up (next_segment " + std::to_string(next_segment_) +
              " in spool.state); stop flowfold and remove spool.state so that it is repaired";
      return false;
    }
    number = next_segment_++;
    try {
      saveState();
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
    // Listed in the same step as the number is taken: a reader that finds no
    // segment moves its cursor to next_segment_, which must not pass over a
    // segment that is being created (its records would never count as
    // waiting). Empty until the header is on disk.
    Segment s;
    s.number = number;
    segments_.push_back(s);
    previous_tail = tail_number_;
    tail_number_ = number;
  }
  auto unlist = [&] {
    std::lock_guard lock(mu_);
    for (auto it = segments_.begin(); it != segments_.end(); ++it)
      if (it->number == number) {
        segments_.erase(it);
        break;
      }
    tail_number_ = previous_tail;
  };
  const std::string path = segmentPath(number);
  const int fd = openInSpool(path, O_CREAT | O_EXCL | O_WRONLY | O_APPEND);
  if (fd < 0) {
    error = "cannot create " + path + ": " + errnoText();
    unlist();
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
    unlist();
    return false;
  }
  tail_fd_ = fd;
  std::lock_guard lock(mu_);
  segments_.back().file_bytes = kHeaderSize;
  bytes_ += kHeaderSize;
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
  bool verified = true;
  uint32_t version = kFormatVersion;
  {
    std::lock_guard lock(mu_);
    dropConsumedLocked();
    if (segments_.empty()) return false;
    Segment& s = segments_.front();
    if (cursor_.record >= s.records) return false;  // the writer's tail, nothing new
    number = s.number;
    first = cursor_.record;
    n = std::min<uint64_t>(max_records, s.records - first);
    verified = s.verified;
    version = s.version;
    s.pinned = true;
  }
  auto unpin = [&] {
    std::lock_guard lock(mu_);
    for (auto& s : segments_)
      if (s.number == number) s.pinned = false;
  };
  const std::string path = segmentPath(number);
  if (read_fd_ < 0 || read_number_ != number) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = openInSpool(path, O_RDONLY | O_NONBLOCK);
    read_number_ = number;
  }
  if (read_fd_ >= 0 && !verified) {
    // Not readable when the spool was opened; now that it is, it must prove
    // it is this spool's before a record of it goes to the database.
    const SegmentHeader h = readHeader(read_fd_, number);
    if (h.status == SegmentHeader::Status::kOk && h.spool_id == id_) {
      std::lock_guard lock(mu_);
      for (auto& s : segments_)
        if (s.number == number) {
          s.verified = true;
          if (s.version != h.version) {
            // An older format than assumed: its records are a different size.
            s.version = h.version;
            s.records = (s.file_bytes - kHeaderSize) / spoolRecordSize(s.version);
            if (first >= s.records) {
              s.pinned = false;
              return false;
            }
            n = std::min(n, s.records - first);
          }
          version = s.version;
        }
    } else if (h.status != SegmentHeader::Status::kUnreadable) {
      ::close(read_fd_);
      read_fd_ = -1;
      quarantineSegment(path, "has a damaged header or belongs to another spool", "inspect it, then delete it");
      std::lock_guard lock(mu_);
      for (auto it = segments_.begin(); it != segments_.end(); ++it)
        if (it->number == number) {
          bytes_ -= it->file_bytes;
          segments_.erase(it);
          break;
        }
      normaliseCursorLocked();
      error = "segment " + std::to_string(number) + " was set aside as damaged";
      return false;
    }
  }
  const size_t record_size = spoolRecordSize(version);
  read_buf_.resize(n * record_size);
  if (read_fd_ < 0 ||
      !preadAll(read_fd_, read_buf_.data(), read_buf_.size(),
                static_cast<off_t>(kHeaderSize + first * record_size))) {
    const int why = errno;
    error = "cannot read " + path + ": " + std::strerror(why);
    if (why == EACCES || why == EPERM)
      error += " (give the user flowfold runs as, " + userName(::geteuid()) +
               ", read and write access to it; its records stay in the spool until then)";
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;  // open again next time: the administrator may fix it meanwhile
    unpin();
    return false;
  }
  out.segment = number;
  out.first = first;
  out.end = first + n;
  out.flows.resize(n);
  size_t good = 0;
  for (uint64_t k = 0; k < n; ++k) {
    if (decodeSpoolRecord(read_buf_.data() + k * record_size, out.flows[good], version)) ++good;
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
  st.segments_quarantined = quarantined_;
  return st;
}

}  // namespace flowfold::mysql
