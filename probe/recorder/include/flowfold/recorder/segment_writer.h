#pragma once
// Appends to a segment file, whole pages straight to the disk.
//
// A recorder that runs for months keeps the page cache full of segments it
// will not read again; every buffered write then makes the kernel copy the
// data and reclaim a page for it. With O_DIRECT the whole 4 KiB pages of
// each append go from a page-aligned staging buffer to the disk; the last
// partial page is also written through the page cache (a second descriptor
// without O_DIRECT), so that after every append the file is whole and can be
// read. The next append writes that page again, completed, directly. Where
// the filesystem refuses O_DIRECT (tmpfs, some network filesystems), every
// append is a plain write.

#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <string>

namespace flowfold::recorder {

class SegmentWriter {
 public:
  /// Takes over `fd`, the new empty file at `path`, open for writing.
  SegmentWriter(int fd, const std::string& path);
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  /// Appends n bytes; false and `error` when the disk refuses (the file may
  /// then end in a part of them: cutBack()).
  bool append(const uint8_t* data, size_t n, std::string& error) {
    startAppend(data, n);
    return finishAppend(error);
  }
  /// The same in two steps, so that the caller can work while the disk
  /// writes: `data` must stay as it is until finishAppend(), which waits.
  void startAppend(const uint8_t* data, size_t n);
  bool finishAppend(std::string& error);
  /// Cuts the file back to `size` bytes (the end of the last good append).
  bool cutBack(uint64_t size);
  uint64_t size() const { return size_; }
  bool direct() const { return direct_fd_ >= 0; }

 private:
  struct Outcome {
    bool ok = true;
    int err = 0;
    std::string error;
  };
  Outcome writeStaged(size_t whole, size_t rest, uint64_t page_start);

  int fd_;
  int direct_fd_ = -1;
  uint64_t size_ = 0;
  // The bytes of the file's last partial page (size_ % kPage of them).
  std::unique_ptr<uint8_t[], void (*)(void*)> tail_{nullptr, nullptr};
  std::unique_ptr<uint8_t[], void (*)(void*)> stage_{nullptr, nullptr};
  size_t stage_size_ = 0;
  // The append in flight.
  std::future<Outcome> in_flight_;
  Outcome plain_outcome_;
  const uint8_t* data_ = nullptr;
  size_t n_ = 0;
  uint64_t size_before_ = 0;
};

}  // namespace flowfold::recorder
