#pragma once
// A read-only window onto a regular file, mapped with mmap: the capture
// reader walks a large pcap one window at a time instead of copying it with
// read(): the kernel's copy costs CPU per byte, and a large read buffer
// pushes the flow table out of the cache.
//
// A mapped file that shrinks under the reader (another program truncates or
// rewrites it) turns the next access past its new end into SIGBUS. A guard
// catches that for the windows it knows: the rest of the window becomes zero
// pages, the access completes, and truncated() tells the reader to stop, so
// the flows read so far are still exported. A SIGBUS anywhere else keeps the
// disposition it had.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace flowfold {

class FileWindow {
 public:
  /// Most windows mapped at once in the process (readers beyond that read()).
  static constexpr int kMaxWindows = 16;

  FileWindow() = default;
  ~FileWindow() { unmap(); }
  FileWindow(const FileWindow&) = delete;
  FileWindow& operator=(const FileWindow&) = delete;

  enum class MapResult {
    kMapped,      // data() holds at least one byte from `offset`
    kEnd,         // the file ends at or before `offset`
    kUnavailable  // not a regular file, or mmap refused: read() it instead
  };
  /// Maps up to `length` bytes of `fd` from `offset` (clipped to the file's
  /// size now: a file that grows is followed by the next map()), after
  /// unmapping the previous window.
  MapResult map(int fd, uint64_t offset, size_t length);
  void unmap();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  /// Whether the file was cut short under this window while it was read
  /// (false again once it is unmapped: the reader keeps what it saw).
  bool truncated() const { return guard_->load(std::memory_order_relaxed); }

 private:
  static const std::atomic<bool> kNeverTruncated;
  uint8_t* map_ = nullptr;  // the mapping, page aligned; data_ may start inside its first page
  size_t map_bytes_ = 0;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int slot_ = -1;  // this window's entry in the SIGBUS guard
  const std::atomic<bool>* guard_ = &kNeverTruncated;
};

}  // namespace flowfold
