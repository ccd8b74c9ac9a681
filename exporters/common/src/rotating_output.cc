#include "flowfold/exporters/rotating_output.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "flowfold/log.h"

namespace flowfold {

namespace {

constexpr uint64_t kMinuteMs = 60'000;

std::string stamp(uint64_t start_ms, bool seconds) {
  const auto t = static_cast<time_t>(start_ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, seconds ? "%Y%m%d%H%M%S" : "%Y%m%d%H%M", &tm);
  return buf;
}

// "YYYYMMDDhhmm[ss]" back to ms since the epoch; -1 unless `digits` is
// exactly what stamp() writes for some time.
int64_t parseStamp(const std::string& digits, bool seconds) {
  if (digits.size() != (seconds ? 14u : 12u)) return -1;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  const auto field = [&](size_t at, size_t n) { return std::stoi(digits.substr(at, n)); };
  struct tm tm {};
  tm.tm_year = field(0, 4) - 1900;
  tm.tm_mon = field(4, 2) - 1;
  tm.tm_mday = field(6, 2);
  tm.tm_hour = field(8, 2);
  tm.tm_min = field(10, 2);
  tm.tm_sec = seconds ? field(12, 2) : 0;
  const time_t t = timegm(&tm);
  if (t < 0) return -1;
  const auto ms = static_cast<uint64_t>(t) * 1000;
  return stamp(ms, seconds) == digits ? static_cast<int64_t>(ms) : -1;  // no month 13, no 25:00
}

}  // namespace

RotationPlan::RotationPlan(std::string path, RotationOptions options)
    : options_(options), seconds_(options.interval_ms % kMinuteMs != 0) {
  if (path.empty() || path == "-")
    throw std::invalid_argument("rotation needs a file path, not standard output");
  const size_t slash = path.rfind('/');
  dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..")
    throw std::invalid_argument(path + ": rotation needs a file name in a directory, e.g. " +
                                (path.empty() ? std::string("DIR") : path) + "/flows.ipfix");
  const size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) {  // "flows", ".flows": no extension
    stem_ = base;
  } else {
    stem_ = base.substr(0, dot);
    ext_ = base.substr(dot);
  }
}

uint64_t RotationPlan::intervalStart(uint64_t now_ms) const {
  return now_ms - now_ms % options_.interval_ms;
}

std::string RotationPlan::pathFor(uint64_t start_ms) const {
  return (dir_ == "/" ? "" : dir_) + "/" + stem_ + "." + stamp(start_ms, seconds_) + ext_;
}

int64_t RotationPlan::startOf(const std::string& name) const {
  const size_t prefix = stem_.size() + 1;
  if (name.size() <= prefix + ext_.size() || name.compare(0, stem_.size(), stem_) != 0 ||
      name[stem_.size()] != '.' || name.compare(name.size() - ext_.size(), ext_.size(), ext_) != 0)
    return -1;
  return parseStamp(name.substr(prefix, name.size() - prefix - ext_.size()), seconds_);
}

std::vector<std::string> RotationPlan::prune(uint64_t now_ms, const std::string& keep_path) const {
  std::vector<std::string> removed;
  if (options_.max_files == 0 && options_.max_age_ms == 0) return removed;
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    logWarn("%s: cannot list the directory to remove old files: %s", dir_.c_str(), std::strerror(errno));
    return removed;
  }
  DIR* d = fdopendir(dfd);
  if (d == nullptr) {
    ::close(dfd);
    return removed;
  }
  const std::string keep = keep_path.substr(keep_path.rfind('/') + 1);
  std::vector<std::pair<int64_t, std::string>> files;  // (interval start, name), not `keep`
  size_t total = 0;                                    // files of this rotation, `keep` included
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const int64_t start = startOf(name);
    if (start < 0) continue;
    struct stat st {};
    // Only regular files: never a link (whatever it leads to) or a directory.
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    ++total;
    if (name != keep) files.emplace_back(start, name);
  }
  std::sort(files.begin(), files.end());  // oldest first
  const auto remove = [&](const std::string& name, const std::string& why) {
    if (::unlinkat(dfd, name.c_str(), 0) != 0) {
      logWarn("%s/%s: cannot remove (%s): %s", dir_.c_str(), name.c_str(), why.c_str(), std::strerror(errno));
      return false;
    }
    removed.push_back(dir_ + "/" + name);
    logInfo("%s/%s: removed (%s)", dir_.c_str(), name.c_str(), why.c_str());
    return true;
  };
  size_t next = 0;
  if (options_.max_age_ms != 0) {
    for (; next < files.size(); ++next) {
      const auto ends = static_cast<uint64_t>(files[next].first) + options_.interval_ms;
      if (ends + options_.max_age_ms > now_ms) break;  // this and the newer ones are young enough
      if (remove(files[next].second, "older than max_age")) --total;
    }
  }
  if (options_.max_files != 0) {
    for (; next < files.size() && total > options_.max_files; ++next) {
      if (remove(files[next].second, "more than max_files " + std::to_string(options_.max_files))) --total;
    }
  }
  ::closedir(d);
  return removed;
}

RotatingOutput::RotatingOutput(const std::string& path, RotationOptions options) : name_(path) {
  if (!options.enabled()) {
    file_ = std::make_unique<OutputFile>(path);
    return;
  }
  plan_ = std::make_unique<RotationPlan>(path, options);
  struct stat st {};
  const std::string& dir = plan_->directory();
  if (::stat(dir.c_str(), &st) != 0)
    throw std::runtime_error(dir + ": the directory for the rotated files " + path + ": " + std::strerror(errno) +
                             "; create it, writable by the user flowfold runs as");
  if (!S_ISDIR(st.st_mode))
    throw std::runtime_error(dir + ": the directory for the rotated files " + path + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw std::runtime_error(dir + ": cannot create the rotated files " + path + " there: " +
                             std::strerror(errno) + "; make the directory writable by the user flowfold runs as");
}

bool RotatingOutput::advanceTo(uint64_t now_ms) {
  if (!plan_) return false;
  const uint64_t start = plan_->intervalStart(now_ms);
  // Never back to an earlier file: a batch a worker hands over a moment
  // late, or a clock stepped back, goes to the current one.
  if (file_ && start <= current_start_) return false;
  file_.reset();  // closes the last interval's file: it is complete
  const std::string path = plan_->pathFor(start);
  file_ = std::make_unique<OutputFile>(path);
  current_start_ = start;
  plan_->prune(now_ms, path);
  return true;
}

}  // namespace flowfold
