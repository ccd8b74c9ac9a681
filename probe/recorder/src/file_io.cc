#include "flowfold/recorder/file_io.h"

#include <unistd.h>

#include <cerrno>

namespace flowfold::recorder {

bool writeAll(int fd, const uint8_t* data, size_t n, std::string& error) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      error = w < 0 ? std::strerror(errno) : "wrote nothing";
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool writeAt(int fd, const uint8_t* data, size_t n, uint64_t offset, std::string& error) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      error = w < 0 ? std::strerror(errno) : "wrote nothing";
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

bool readAt(int fd, uint8_t* out, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace flowfold::recorder
