#include "flowfold/probe/capture.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "flowfold/probe/file_window.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/recording_sink.h"
#include "flowfold/probe/sharded_pipeline.h"

namespace flowfold {

namespace {

// Classic pcap files are read here rather than through pcap_dispatch():
// libpcap does two fread() calls per packet (header, then data), which cost
// about as much as the whole decode on a capture of small packets. This
// reader maps a regular file a window at a time (FileWindow; other files are
// taken in large read()s) and hands out packets in place. It follows
// libpcap's sf-pcap.c where a file is odd (a record longer than the file's
// snap length is cut to it; one beyond 256 KiB, or a record cut off by the
// end of the file, ends the read as a truncated capture). pcapng, standard
// input, a BPF filter and the rare link types with larger snap lengths stay
// with libpcap.
class ClassicPcapReader {
 public:
  static constexpr uint32_t kMaxCaplen = 262144;  // libpcap's MAXIMUM_SNAPLEN

  /// Opens `path` for the fast path; nullptr when it is not a plain classic
  /// pcap, or not the regular file `libpcap_file` (what libpcap opened and
  /// has read the start of). The fast path reads the file again from its
  /// start, which only a regular file allows: a pipe, a FIFO or a terminal
  /// (`/dev/stdin`, `<(...)`) would lose what libpcap consumed, and the
  /// stream of two readers would be interleaved.
  static std::unique_ptr<ClassicPcapReader> open(const std::string& path, const struct stat& libpcap_file) {
    if (!S_ISREG(libpcap_file.st_mode)) return nullptr;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return nullptr;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != libpcap_file.st_dev ||
        st.st_ino != libpcap_file.st_ino) {
      ::close(fd);  // replaced since libpcap opened it: stay with libpcap's stream
      return nullptr;
    }
    auto r = std::unique_ptr<ClassicPcapReader>(new ClassicPcapReader(fd));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    r->startAt(0);
    if (!r->readHeader()) return nullptr;
    return r;
  }
  ~ClassicPcapReader() { ::close(fd_); }

  enum class Next { kPacket, kEnd, kError };

  /// Hands up to `max` packets to sink.onPacket(data, caplen, wirelen, ts_ms);
  /// returns how many. `last` says why it stopped short (kEnd, kError: then
  /// `error` says what), kPacket when it did not.
  template <PacketSink Sink>
  int readInto(Sink& sink, int max, Next& last, std::string& error) {
    return swapped_ ? readLoop<true>(sink, max, last, error) : readLoop<false>(sink, max, last, error);
  }

  uint64_t bytesConsumed() const { return consumed_; }

 private:
  explicit ClassicPcapReader(int fd) : fd_(fd) {}
  static constexpr size_t kWindowBytes = 8 << 20;  // mapped at a time: a few MiB more resident, in the page cache
  static constexpr size_t kBufferBytes = 4 << 20;  // read() at a time, when the file cannot be mapped

  struct Record {
    const uint8_t* data;
    uint32_t caplen, len;
    uint32_t sec, frac;  // the record's timestamp as stored (frac: us or ns, by the file's magic)
  };

  // To the sink: with the timestamp in nanoseconds when it takes them (a
  // recorder keeps them whole), else in milliseconds.
  template <PacketSink Sink>
  void deliver(Sink& sink, const uint8_t* data, uint32_t caplen, uint32_t len, uint32_t sec, uint32_t frac) const {
    if constexpr (requires { sink.onFrame(data, caplen, len, uint64_t{0}); }) {
      sink.onFrame(data, caplen, len, timestampNs(sec, frac));
    } else {
      sink.onPacket(data, caplen, len, timestampMs(sec, frac));
    }
  }

  template <bool kSwapped>
  static uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return kSwapped ? __builtin_bswap32(v) : v;
  }
  uint32_t load32(const uint8_t* p) const { return swapped_ ? load32<true>(p) : load32<false>(p); }

  // The loop per packet, one copy per byte order: the common case is a whole
  // record at hand, no longer than the snap length.
  template <bool kSwapped, PacketSink Sink>
  int readLoop(Sink& sink, int max, Next& last, std::string& error) {
    last = Next::kPacket;
    for (int n = 0; n < max; ++n) {
      if (available() >= 16) {
        const uint8_t* p = base_ + pos_;
        const uint32_t caplen = load32<kSwapped>(p + 8);
        // Should the file have shrunk under the window, the load above has
        // just completed on a zero page, and the guard has said so: look
        // after it. (A record of no bytes goes the slow way: zeros are also
        // what a window shows past the end of a file cut inside a page.)
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (caplen != 0 && caplen <= snaplen_ && available() - 16 >= caplen && !window_.truncated()) {
          pos_ += 16 + caplen;
          consumed_ += 16 + caplen;
          deliver(sink, p + 16, caplen, load32<kSwapped>(p + 12), load32<kSwapped>(p), load32<kSwapped>(p + 4));
          continue;
        }
      }
      Record r;
      last = nextSlow(r, error);
      if (last != Next::kPacket) return n;
      deliver(sink, r.data, r.caplen, r.len, r.sec, r.frac);
    }
    return max;
  }

  // Milliseconds since the epoch. A fraction of a second out of range (an
  // invalid field) is ignored rather than added, as the libpcap path does.
  uint64_t timestampNs(uint32_t sec, uint32_t frac) const {
    const uint64_t frac_ns = nanos_ ? (frac < 1000000000u ? frac : 0) : (frac < 1000000u ? uint64_t{frac} * 1000 : 0);
    return uint64_t{sec} * 1'000'000'000 + frac_ns;
  }
  uint64_t timestampMs(uint32_t sec, uint32_t frac) const {
    const uint64_t frac_ms = nanos_ ? (frac < 1000000000u ? frac / 1000000u : 0) : (frac < 1000000u ? frac / 1000u : 0);
    return uint64_t{sec} * 1000 + frac_ms;
  }

  // A record that needs more of the file, is longer than the snap length, or
  // is malformed; or the file shrank under the window.
  [[gnu::noinline]] Next nextSlow(Record& r, std::string& error) {
    if (shrankUnderWindow()) {
      error = "the capture file shrank while it was being read (another program truncated or rewrote it); "
              "the packets before that point were read";
      return Next::kError;
    }
    if (!fill(16)) {
      if (available() == 0 && !read_error_ && !shrank_) return Next::kEnd;
      error = shortReadMessage("16 header bytes", available());
      return Next::kError;
    }
    const uint8_t* p = base_ + pos_;
    const uint32_t sec = load32(p), frac = load32(p + 4);
    uint32_t caplen = load32(p + 8);
    const uint32_t len = load32(p + 12);
    if (windowed_ && (sec | frac | caplen | len) == 0 && fileShorterThan(consumed_ + 16)) {
      // Not a record: the zeros past the end of a file cut short in the
      // window's last page (beyond that page the guard catches it).
      shrank_ = true;
      return nextSlow(r, error);
    }
    if (caplen > kMaxCaplen) {
      error = "invalid packet capture length " + std::to_string(caplen) + ", bigger than maximum of " +
              std::to_string(kMaxCaplen);
      return Next::kError;
    }
    const uint32_t stored = caplen;
    if (caplen > snaplen_) caplen = snaplen_;  // the rest is read and skipped, as libpcap does
    if (!fill(16 + stored)) {
      error = shortReadMessage(std::to_string(stored) + " captured bytes", available() - 16);
      return Next::kError;
    }
    if (shrankUnderWindow()) return nextSlow(r, error);
    r = Record{base_ + pos_ + 16, caplen, len, sec, frac};
    pos_ += 16 + stored;
    consumed_ += 16 + stored;
    return Next::kPacket;
  }

  bool readHeader() {
    if (!fill(24)) return false;
    const uint8_t* p = base_ + pos_;
    const uint32_t magic = static_cast<uint32_t>(p[0]) | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24;
    switch (magic) {
      case 0xa1b2c3d4: swapped_ = false; nanos_ = false; break;
      case 0xa1b23c4d: swapped_ = false; nanos_ = true; break;
      case 0xd4c3b2a1: swapped_ = true; nanos_ = false; break;
      case 0x4d3cb2a1: swapped_ = true; nanos_ = true; break;
      default: return false;  // pcapng, modified formats: libpcap
    }
    snaplen_ = load32(p + 16);
    if (snaplen_ == 0 || snaplen_ > kMaxCaplen) snaplen_ = kMaxCaplen;
    pos_ += 24;
    consumed_ = 24;
    return !shrankUnderWindow();
  }

  size_t available() const { return end_ - pos_; }

  // Whether the file has been cut short under the window (latched: the
  // window forgets it when it moves on).
  bool shrankUnderWindow() {
    if (window_.truncated()) shrank_ = true;
    return shrank_;
  }

  bool fileShorterThan(uint64_t bytes) const {
    struct stat st;
    return ::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < bytes;
  }

  // Why fill() came up short: a failed read(), or the file ending inside a
  // record (worded as libpcap words it).
  std::string shortReadMessage(const std::string& wanted, size_t got) const {
    if (read_error_) return std::string("read error: ") + std::strerror(read_errno_);
    return "truncated dump file; tried to read " + wanted + ", only got " + std::to_string(got);
  }

  // Reads from file offset `offset` on: through a window where the file can
  // be mapped, else with read() into the buffer.
  void startAt(uint64_t offset) {
    pos_ = end_ = 0;
    switch (window_.map(fd_, offset, kWindowBytes)) {
      case FileWindow::MapResult::kMapped:
        base_ = window_.data();
        end_ = window_.size();
        return;
      case FileWindow::MapResult::kEnd:
        base_ = nullptr;
        return;
      case FileWindow::MapResult::kUnavailable:
        break;
    }
    windowed_ = false;
    buf_.resize(kBufferBytes);
    base_ = buf_.data();
    if (offset != 0 && ::lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) {
      read_error_ = true;
      read_errno_ = errno;
    }
  }

  // Makes `n` bytes available at pos_; false at end of file or on an error.
  bool fill(size_t n) {
    if (available() >= n) return true;
    if (windowed_) {
      // The next window starts at the record wanted (consumed_ is its offset
      // in the file); a file that has grown since is followed.
      if (shrankUnderWindow()) return false;
      startAt(consumed_);
      if (windowed_) return available() >= n;
    }
    if (read_error_) return false;
    if (pos_ > 0) {
      std::memmove(buf_.data(), buf_.data() + pos_, available());
      end_ -= pos_;
      pos_ = 0;
    }
    while (end_ < n) {
      const ssize_t got = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
      if (got > 0) {
        end_ += static_cast<size_t>(got);
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        read_error_ = true;
        read_errno_ = errno;
      }
      return false;
    }
    return true;
  }

  int fd_;
  FileWindow window_;
  bool windowed_ = true;     // reading through window_, not buf_
  std::vector<uint8_t> buf_;
  const uint8_t* base_ = nullptr;  // window_.data() or buf_.data()
  size_t pos_ = 0, end_ = 0;
  uint64_t consumed_ = 0;    // file offset of base_ + pos_
  bool swapped_ = false, nanos_ = false;
  uint32_t snaplen_ = kMaxCaplen;
  bool read_error_ = false;
  int read_errno_ = 0;
  bool shrank_ = false;
};

}  // namespace

struct PcapFileSource::Impl {
  pcap_t* handle = nullptr;
  std::unique_ptr<ClassicPcapReader> fast;  // set when the file is read without libpcap
};

PcapFileSource::PcapFileSource(const std::string& path, const std::string& bpf_filter) : impl_(new Impl) {
  char err[PCAP_ERRBUF_SIZE] = {};
  // Nanosecond timestamps whatever the file holds (libpcap scales): a
  // recorder keeps them whole.
  impl_->handle = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!impl_->handle) {
    throw InputError("cannot read capture '" + path + "': " + err +
                     " (flowfold reads pcap and pcapng files, '-' for standard input)");
  }
  // What libpcap opened: a regular file (size known, the fast path may read
  // it again from its start) or a stream, whatever its name.
  struct stat opened {};
  FILE* stream = pcap_file(impl_->handle);
  const bool have_stat = stream != nullptr && ::fstat(fileno(stream), &opened) == 0;
  if (have_stat && S_ISREG(opened.st_mode)) file_size_ = static_cast<uint64_t>(opened.st_size);
  if (!bpf_filter.empty()) {
    bpf_program program;
    if (pcap_compile(impl_->handle, &program, bpf_filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      const std::string msg = pcap_geterr(impl_->handle);
      pcap_close(impl_->handle);
      impl_->handle = nullptr;
      throw InputError("bad capture filter '" + bpf_filter + "': " + msg);
    }
    const int rc = pcap_setfilter(impl_->handle, &program);
    pcap_freecode(&program);
    if (rc != 0) throw InputError(std::string("cannot apply capture filter: ") + pcap_geterr(impl_->handle));
  } else {
    // libpcap has checked the file; a plain pcap is then read by the fast path.
    if (have_stat) impl_->fast = ClassicPcapReader::open(path, opened);
  }
}

PcapFileSource::~PcapFileSource() {
  if (impl_->handle) pcap_close(impl_->handle);
}

uint64_t PcapFileSource::bytesRead() const {
  if (impl_->fast) return impl_->fast->bytesConsumed();
  FILE* f = pcap_file(impl_->handle);
  const long pos = f ? std::ftell(f) : -1;
  return pos > 0 ? static_cast<uint64_t>(pos) : 0;
}

int PcapFileSource::datalink() const { return pcap_datalink(impl_->handle); }

std::string PcapFileSource::datalinkName() const {
  const int dlt = datalink();
  const char* name = pcap_datalink_val_to_name(dlt);
  return name ? name : "DLT " + std::to_string(dlt);
}

namespace {
template <PacketSink Sink>
void onPacket(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* sink = reinterpret_cast<Sink*>(user);
  // Timestamps before 1970 cannot be expressed in flowStartMilliseconds.
  const uint64_t secs = h->ts.tv_sec > 0 ? static_cast<uint64_t>(h->ts.tv_sec) : 0;
  // The file was opened with nanosecond precision: tv_usec holds
  // nanoseconds. A fraction out of range (an invalid field) is ignored
  // rather than added.
  const uint64_t nsec = h->ts.tv_usec >= 0 && h->ts.tv_usec < 1000000000 ? static_cast<uint64_t>(h->ts.tv_usec) : 0;
  if constexpr (requires { sink->onFrame(bytes, h->caplen, h->len, uint64_t{0}); }) {
    sink->onFrame(bytes, h->caplen, h->len, secs * 1'000'000'000 + nsec);
  } else {
    sink->onPacket(bytes, h->caplen, h->len, secs * 1000 + nsec / 1'000'000);
  }
}
}  // namespace

template <PacketSink Sink>
PcapFileSource::Result PcapFileSource::dispatch(Sink& sink, int max_packets) {
  if (impl_->fast) {
    ClassicPcapReader::Next next = ClassicPcapReader::Next::kPacket;
    const int n = impl_->fast->readInto(sink, max_packets, next, error_);
    sink.onBurstEnd();
    packets_ += static_cast<uint64_t>(n);
    if (n > 0 && next == ClassicPcapReader::Next::kPacket) return Result::kMore;
    if (next == ClassicPcapReader::Next::kError) return Result::kTruncated;
    return n > 0 ? Result::kMore : Result::kEnd;
  }
  const int n = pcap_dispatch(impl_->handle, max_packets, onPacket<Sink>, reinterpret_cast<u_char*>(&sink));
  sink.onBurstEnd();
  if (n > 0) {
    packets_ += static_cast<uint64_t>(n);
    return Result::kMore;
  }
  if (n == 0) return Result::kEnd;
  if (n == PCAP_ERROR_BREAK) return Result::kEnd;
  error_ = pcap_geterr(impl_->handle);
  return Result::kTruncated;
}

// The shapes a file is read into (the read loop is compiled for each, with
// its onPacket() inlined).
template PcapFileSource::Result PcapFileSource::dispatch(Pipeline&, int);
template PcapFileSource::Result PcapFileSource::dispatch(ShardedPipeline&, int);
template PcapFileSource::Result PcapFileSource::dispatch(RecordingSink<Pipeline>&, int);
template PcapFileSource::Result PcapFileSource::dispatch(RecordingSink<ShardedPipeline>&, int);

}  // namespace flowfold
