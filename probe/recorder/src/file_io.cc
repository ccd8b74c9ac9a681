#include "flowfold/recorder/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace flowfold::recorder {

namespace {

// Writes all n bytes through `write_some` (a write or a positioned write of
// what is left), going on after EINTR and short writes.
template <class WriteSome>
bool writeLoop(const uint8_t* data, size_t n, std::string& error, WriteSome&& write_some) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = write_some(data + done, n - done, done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      error = w < 0 ? std::strerror(errno) : "wrote nothing";
      return false;
    }
    done += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

bool writeAll(int fd, const uint8_t* data, size_t n, std::string& error) {
  return writeLoop(data, n, error, [fd](const uint8_t* p, size_t left, size_t) { return ::write(fd, p, left); });
}

bool writeAt(int fd, const uint8_t* data, size_t n, uint64_t offset, std::string& error) {
  return writeLoop(data, n, error, [fd, offset](const uint8_t* p, size_t left, size_t done) {
    return ::pwrite(fd, p, left, static_cast<off_t>(offset + done));
  });
}

std::string besideSegment(const std::string& segment_path, const char* suffix) {
  constexpr std::string_view kPcap = ".pcap";
  const std::string_view path = segment_path;
  return std::string(path.ends_with(kPcap) && path.size() > kPcap.size() ? path.substr(0, path.size() - kPcap.size())
                                                                          : path) +
         suffix;
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
