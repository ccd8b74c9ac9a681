#include "flowfold/exporters/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "flowfold/log.h"

namespace flowfold {

namespace {

constexpr int kWriteFlags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY;

std::runtime_error openError(const std::string& path, int err) {
  return std::runtime_error(path + ": cannot open for writing: " + std::strerror(err));
}

std::runtime_error symlinkRefused(const std::string& path, const std::string& why) {
  return std::runtime_error(path + " is a symbolic link" + why +
                            ": refusing to follow it (a link planted in a shared directory such as /tmp "
                            "could make flowfold overwrite another file); give the real file's path, "
                            "or - for standard output");
}

// The character devices a link may lead an output to: the null, zero and
// full devices, and terminals (a console, a pseudo-terminal). Writing there
// keeps or destroys nothing; writing to other devices (a disk's, a watchdog)
// could.
bool isHarmlessDevice(dev_t dev) {
  const unsigned kind = major(dev), which = minor(dev);
  if (kind == 1) return which == 3 || which == 5 || which == 7;  // /dev/null, /dev/zero, /dev/full
  return kind == 4 || kind == 5 || (kind >= 136 && kind <= 143);  // tty*, tty/console/ptmx, pts/*
}

// `path` is a symbolic link. Follows it only to a FIFO or a harmless device:
// the link is resolved without opening its target for I/O (O_PATH), so a link
// to a regular file is refused before anything can happen to that file.
int openThroughLink(const std::string& path) {
  const int where = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (where < 0) {
    if (errno == ENOENT) throw symlinkRefused(path, " to a file that does not exist");
    throw openError(path, errno);
  }
  struct stat st {};
  if (::fstat(where, &st) != 0) {
    const int err = errno;
    ::close(where);
    throw openError(path, err);
  }
  if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && isHarmlessDevice(st.st_rdev))) {
    ::close(where);
    throw symlinkRefused(path, "");
  }
  // Reopen the very inode the link led to, not the path again (which could
  // have been changed in between).
  const std::string self = "/proc/self/fd/" + std::to_string(where);
  const int fd = ::open(self.c_str(), kWriteFlags);
  const int err = errno;
  ::close(where);
  if (fd < 0) throw openError(path, err);
  return fd;
}

}  // namespace

OutputFile::OutputFile(const std::string& path) {
  if (path.empty()) throw std::invalid_argument("no output file given (- for standard output)");
  if (path == "-") {
    name_ = "standard output";
    fd_ = STDOUT_FILENO;
  } else {
    name_ = path;
    // O_NOFOLLOW: a symbolic link fails with ELOOP instead of being followed
    // (and a file created through it).
    fd_ = ::open(path.c_str(), kWriteFlags | O_CREAT | O_NOFOLLOW, 0640);
    if (fd_ < 0 && errno == ELOOP) fd_ = openThroughLink(path);
    if (fd_ < 0) throw openError(path, errno);
    owned_ = true;
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    if (owned_) ::close(fd_);
    throw std::runtime_error(name_ + ": " + std::strerror(err));
  }
  regular_ = S_ISREG(st.st_mode);
  // A file someone else made (in a shared directory, before flowfold ran)
  // and can read: what flowfold appends would be theirs to read.
  if (regular_ && st.st_uid != ::geteuid() && st.st_uid != 0) {
    if (owned_) ::close(fd_);
    throw std::runtime_error(name_ + " belongs to uid " + std::to_string(st.st_uid) +
                             ", not to the user flowfold runs as (uid " + std::to_string(::geteuid()) +
                             ") or root: flowfold does not append to another user's file; remove it or give "
                             "another path");
  }
}

OutputFile::~OutputFile() {
  if (owned_ && ::close(fd_) != 0) logWarn("%s: closing failed: %s", name_.c_str(), std::strerror(errno));
}

int OutputFile::writeAll(const void* data, size_t size, size_t& written) {
  const auto* p = static_cast<const char*>(data);
  written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd_, p + written, size - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? errno : ENOSPC;  // a write of 0 bytes to a file: no room
  }
  return 0;
}

size_t OutputFile::readAt(void* data, size_t size, uint64_t offset) const {
  if (!regular_) return 0;
  // The file is open write-only: read the same inode through a second,
  // read-only descriptor.
  const int rd = ::open(("/proc/self/fd/" + std::to_string(fd_)).c_str(), O_RDONLY | O_CLOEXEC);
  if (rd < 0) return 0;
  const ssize_t n = ::pread(rd, data, size, static_cast<off_t>(offset));
  ::close(rd);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

uint64_t OutputFile::size() const {
  struct stat st {};
  if (!regular_ || ::fstat(fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

bool OutputFile::cutTo(uint64_t size) {
  if (!regular_) {
    errno = ESPIPE;
    return false;
  }
  return ::ftruncate(fd_, static_cast<off_t>(size)) == 0;
}

bool OutputFile::takeBack(size_t written, size_t keep) {
  if (keep >= written) return true;  // nothing to take back
  if (!regular_) {
    errno = ESPIPE;
    return false;
  }
  // The offset is just past what this write put out, appending or not.
  const off_t end = ::lseek(fd_, 0, SEEK_CUR);
  if (end < 0) return false;
  const off_t cut = end - static_cast<off_t>(written - keep);
  return ::ftruncate(fd_, cut) == 0 && ::lseek(fd_, cut, SEEK_SET) >= 0;
}

}  // namespace flowfold
