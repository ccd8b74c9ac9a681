#include "flowfold/recorder/segment_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "flowfold/recorder/file_io.h"


namespace flowfold::recorder {

namespace {

constexpr size_t kPage = 4096;

std::unique_ptr<uint8_t[], void (*)(void*)> alignedBuffer(size_t size) {
  return {static_cast<uint8_t*>(std::aligned_alloc(kPage, size)), std::free};
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
  if (in_flight_.valid()) in_flight_.wait();
  if (direct_fd_ >= 0) ::close(direct_fd_);
  ::close(fd_);
}

void SegmentWriter::startAppend(const uint8_t* data, size_t n) {
  data_ = data;
  n_ = n;
  size_before_ = size_;
  size_ += n;
  if (direct_fd_ < 0) {
    plain_outcome_ = Outcome{};
    plain_outcome_.ok = writeAt(fd_, data, n, size_before_, plain_outcome_.error);
    return;
  }
  // The file's partial last page and the new bytes, one after the other in
  // the staging buffer: its whole pages go directly, the rest through the
  // page cache, and is kept as the next append's partial page.
  const size_t held = size_before_ % kPage;
  const size_t total = held + n, whole = total / kPage * kPage, rest = total - whole;
  if (stage_size_ < total) {
    stage_size_ = (total + kPage - 1) / kPage * kPage;
    stage_ = alignedBuffer(stage_size_);
  }
  if (!stage_) {  // no memory for it: the plain way from now on
    stage_size_ = 0;
    ::close(direct_fd_);
    direct_fd_ = -1;
    plain_outcome_ = Outcome{};
    plain_outcome_.ok = writeAt(fd_, data, n, size_before_, plain_outcome_.error);
    return;
  }
  std::memcpy(stage_.get(), tail_.get(), held);
  std::memcpy(stage_.get() + held, data, n);
  std::memcpy(tail_.get(), stage_.get() + whole, rest);
  const uint64_t page_start = size_before_ - held;
  in_flight_ = std::async(std::launch::async, [this, whole, rest, page_start] { return writeStaged(whole, rest, page_start); });
}

SegmentWriter::Outcome SegmentWriter::writeStaged(size_t whole, size_t rest, uint64_t page_start) {
  Outcome o;
  errno = 0;
  if (whole > 0 && !writeAt(direct_fd_, stage_.get(), whole, page_start, o.error)) {
    o.ok = false;
    o.err = errno;
    return o;
  }
  if (rest > 0 && !writeAt(fd_, stage_.get() + whole, rest, page_start + whole, o.error)) {
    o.ok = false;
    o.err = errno;
  }
  return o;
}

bool SegmentWriter::finishAppend(std::string& error) {
  Outcome o = in_flight_.valid() ? in_flight_.get() : plain_outcome_;
  if (!o.ok && o.err == EINVAL && direct_fd_ >= 0) {
    // The filesystem opened the file for O_DIRECT but refuses the writes:
    // this append, and the ones after it, the plain way.
    ::close(direct_fd_);
    direct_fd_ = -1;
    o = Outcome{};
    o.ok = writeAt(fd_, data_, n_, size_before_, o.error);
  }
  if (!o.ok) {
    size_ = size_before_;
    error = o.error;
  }
  return o.ok;
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
