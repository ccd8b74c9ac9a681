#pragma once
// The file the file exporters write (IPFIX file, text, JSON), opened the
// one safe way and written so that a failure can be taken back.
//
// Opening, which flowfold often does as root in directories others can write
// to (/tmp):
//  - "-" is standard output (not closed by us);
//  - a missing file is created 0640 (less the umask); an existing one is
//    appended to, never truncated: a restart or a reload (SIGHUP) must not
//    destroy what an earlier run wrote;
//  - a symbolic link as the last path component is refused, unless it leads
//    to a FIFO or to the null, zero or full device or a terminal
//    (/dev/stdout on a pipe or a terminal, /dev/null, a named pipe): a link
//    planted in /tmp must not make flowfold overwrite another file or write
//    to a disk's device, while writing to these cannot destroy anything;
//  - an existing regular file that belongs to another user (not root, not
//    the one flowfold runs as) is refused: made in a shared directory before
//    flowfold ran, it would let that user read the flows;
//  - close-on-exec, no controlling terminal.

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowfold {

class OutputFile {
 public:
  /// Opens `path` as above. Throws std::runtime_error with a message that
  /// names the path and says what to do.
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Writes all `size` bytes (retrying short writes and EINTR). Returns 0, or
  /// the errno of the write that failed; `written` is how many went out.
  int writeAll(const void* data, size_t size, size_t& written);

  /// After a writeAll() that failed with `written` bytes out, takes back all
  /// of them but the first `keep`, so the file ends where a reader expects a
  /// whole unit (message, line) to end. False, with errno set, when that is
  /// impossible: the target is not a regular file (a pipe, a device), or
  /// ftruncate() failed.
  bool takeBack(size_t written, size_t keep);

  /// Reads up to `size` bytes at `offset` of a regular file (what an earlier
  /// run left there); returns how many, 0 for anything else than a regular file.
  size_t readAt(void* data, size_t size, uint64_t offset) const;

  /// Size of a regular file now; 0 for anything else.
  uint64_t size() const;
  /// Cuts a regular file to `size` bytes (what a crash left of a last unit
  /// that readers cannot use); later writes append after it. False, with
  /// errno set, when that is impossible.
  bool cutTo(uint64_t size);

  /// True for a regular file: a partial write can be taken back.
  bool canTakeBack() const { return regular_; }
  /// The path as given, or "standard output" for "-".
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  int fd_ = -1;
  bool owned_ = false;    // false for standard output
  bool regular_ = false;  // a regular file (else a pipe, FIFO or device)
};

}  // namespace flowfold
