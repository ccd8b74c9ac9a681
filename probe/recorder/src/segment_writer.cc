#include "flowfold/recorder/segment_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>


namespace flowfold::recorder {

namespace {

constexpr size_t kPage = 4096;

std::unique_ptr<uint8_t[], void (*)(void*)> alignedBuffer(size_t size) {
  return {static_cast<uint8_t*>(std::aligned_alloc(kPage, size)), std::free};
}

bool pwriteAll(int fd, const uint8_t* data, size_t n, uint64_t offset, std::string& error) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      error = w < 0 ? std::strerror(errno) : "nothing written";
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace

SegmentWriter::SegmentWriter(int fd, const std::string& path) : fd_(fd) {
  direct_fd_ = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
  if (direct_fd_ >= 0) {
    tail_ = alignedBuffer(kPage);
    if (!tail_) {
      ::close(direct_fd_);
      direct_fd_ = -1;
    }
  }
}

SegmentWriter::~SegmentWriter() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  ::close(fd_);
}

bool SegmentWriter::append(const uint8_t* data, size_t n, std::string& error) {
  if (direct_fd_ >= 0 && appendDirect(data, n, error)) return true;
  if (direct_fd_ >= 0 && errno != EINVAL) return false;
  if (direct_fd_ >= 0) {  // the filesystem took the descriptor but refuses its writes
    ::close(direct_fd_);
    direct_fd_ = -1;
  }
  if (!pwriteAll(fd_, data, n, size_, error)) return false;
  size_ += n;
  return true;
}

bool SegmentWriter::appendDirect(const uint8_t* data, size_t n, std::string& error) {
  const size_t held = size_ % kPage;
  const uint64_t page_start = size_ - held;
  const size_t total = held + n;
  const size_t whole = total / kPage * kPage;
  if (whole > 0) {
    if (stage_size_ < whole) {
      stage_ = alignedBuffer(whole);
      stage_size_ = stage_ ? whole : 0;
      if (!stage_) {
        errno = EINVAL;  // write it the plain way
        error = "no memory for the staging buffer";
        return false;
      }
    }
    std::memcpy(stage_.get(), tail_.get(), held);
    std::memcpy(stage_.get() + held, data, whole - held);
    errno = 0;
    if (!pwriteAll(direct_fd_, stage_.get(), whole, page_start, error)) return false;
  }
  // The rest, a partial page: kept for the next append, and written through
  // the page cache now so that the file is whole.
  const size_t rest = total - whole;
  if (whole > 0) {
    std::memcpy(tail_.get(), data + (whole - held), rest);
  } else {
    std::memcpy(tail_.get() + held, data, n);
  }
  errno = 0;
  if (rest > 0 && !pwriteAll(fd_, tail_.get(), rest, page_start + whole, error)) return false;
  size_ += n;
  return true;
}

bool SegmentWriter::cutBack(uint64_t size) {
  // Only after a failed append, before recording stops: plain writes from
  // here (the partial page held may no longer be the file's).
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = -1;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return false;
  size_ = size;
  return true;
}

}  // namespace flowfold::recorder
