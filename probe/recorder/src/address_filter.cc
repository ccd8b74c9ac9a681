#include "flowfold/recorder/address_filter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "flowfold/recorder/file_io.h"

namespace flowfold::recorder {

namespace {

constexpr uint32_t kWordsPerLine = kAddressFilterLineBytes / 8;
constexpr uint64_t kBitsPerWord = 8;  // about 3 % of absent words taken for present, with 3 bits a word

// A word's line (low bits) and its 3 bits in the line (9 bits each, high bits).
uint64_t mix(uint32_t word) {
  uint64_t h = uint64_t{word} * 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

// The line of a hash: its low 32 bits scaled to [0, lines) (any number of
// lines, not only powers of two).
size_t lineOf(uint64_t h, uint32_t lines) { return static_cast<size_t>((h & 0xFFFFFFFFu) * lines >> 32); }

template <class Visit>
void forEachBitOf(uint64_t h, uint32_t lines, Visit&& visit) {
  const size_t line = lineOf(h, lines) * kWordsPerLine;
  for (int i = 0; i < 3; ++i) {
    const auto bit = static_cast<uint32_t>(h >> (37 + 9 * i)) & 511;
    visit(line + bit / 64, uint64_t{1} << (bit % 64));
  }
}

// Whether the filter's `bits` hold `word` (a read line alone: lines = 1).
bool lookUp(const std::vector<uint64_t>& bits, uint32_t lines, uint32_t word) {
  bool all = true;
  forEachBitOf(mix(word), lines, [&](size_t w, uint64_t b) { all = all && (bits[w] & b) != 0; });
  return all;
}

// The bytes of each of a key's addresses the filter holds: 4 (IPv4), 16
// (IPv6), 0 for a key that is no IP flow's.
size_t addressBytes(const FlowKey& k) { return k.ip_version == 4 ? 4 : k.ip_version == 6 ? 16 : 0; }

}  // namespace

std::string addressFilterPathOf(const std::string& segment_path) { return besideSegment(segment_path, ".adf"); }

uint32_t addressWord(const uint8_t* bytes) { return loadHost<uint32_t>(bytes); }

AddressFilterBuilder::AddressFilterBuilder(std::span<const FlowKey> keys) {
  uint64_t words = 0;
  for (const FlowKey& k : keys) words += 2 * addressBytes(k) / 4;
  const uint64_t lines = std::max<uint64_t>(1, (words * kBitsPerWord + 511) / 512);
  lines_ = static_cast<uint32_t>(std::min<uint64_t>(lines, UINT32_MAX));
  bits_.assign(size_t{lines_} * kWordsPerLine, 0);
  // The words land on random lines of a filter of megabytes: their hashes
  // are taken a batch at a time and each line fetched a few words ahead.
  constexpr size_t kBatch = 4096, kAhead = 16;
  std::vector<uint64_t> hashes;
  hashes.reserve(kBatch + 8);
  const auto setBatch = [&] {
    for (size_t i = 0; i < hashes.size(); ++i) {
      if (i + kAhead < hashes.size()) __builtin_prefetch(&bits_[lineOf(hashes[i + kAhead], lines_) * kWordsPerLine]);
      setBits(hashes[i]);
    }
    words_ += hashes.size();
    hashes.clear();
  };
  for (const FlowKey& k : keys) {
    const size_t n = addressBytes(k);
    if (n == 0) flags_ |= kAddressFilterNonIpKeys;
    for (size_t i = 0; i < n; i += 4) {
      hashes.push_back(mix(addressWord(k.src_addr.data() + i)));
      hashes.push_back(mix(addressWord(k.dst_addr.data() + i)));
    }
    if (hashes.size() >= kBatch) setBatch();
  }
  setBatch();
}

void AddressFilterBuilder::setBits(uint64_t hash) {
  forEachBitOf(hash, lines_, [&](size_t w, uint64_t b) { bits_[w] |= b; });
}

bool AddressFilterBuilder::mayHold(uint32_t word) const { return lookUp(bits_, lines_, word); }

bool AddressFilterBuilder::write(const std::string& path, uint64_t indexed_end, uint64_t index_blocks,
                                 std::string& error) const {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = "cannot create " + path + ": " + std::strerror(errno);
    return false;
  }
  uint8_t header[kAddressFilterHeaderSize] = {};
  std::memcpy(header, kAddressFilterMagic, sizeof kAddressFilterMagic);
  std::memcpy(header + 8, &lines_, 4);
  std::memcpy(header + 12, &flags_, 4);
  std::memcpy(header + 16, &words_, 8);
  std::memcpy(header + 24, &indexed_end, 8);
  std::memcpy(header + 32, &index_blocks, 8);
  const bool ok = writeAll(fd, header, sizeof header, error) &&
                  writeAll(fd, reinterpret_cast<const uint8_t*>(bits_.data()), bits_.size() * 8, error) &&
                  writeAll(fd, reinterpret_cast<const uint8_t*>(kAddressFilterTrailer), sizeof kAddressFilterTrailer,
                           error);
  ::close(fd);
  if (!ok) {
    error = "cannot write " + path + ": " + error;
    ::unlink(path.c_str());
  }
  return ok;
}

std::optional<AddressFilterAnswer> askAddressFilter(const std::string& path, std::span<const uint32_t> words) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  uint8_t header[kAddressFilterHeaderSize];
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !readAt(fd, header, sizeof header, 0) ||
      std::memcmp(header, kAddressFilterMagic, sizeof kAddressFilterMagic) != 0)
    return std::nullopt;
  AddressFilterAnswer answer;
  const uint32_t lines = loadHost<uint32_t>(header + 8);
  const uint32_t flags = loadHost<uint32_t>(header + 12);
  answer.indexed_end = loadHost<uint64_t>(header + 24);
  answer.index_blocks = loadHost<uint64_t>(header + 32);
  answer.non_ip_keys = (flags & kAddressFilterNonIpKeys) != 0;
  const uint64_t body = uint64_t{lines} * kAddressFilterLineBytes;
  uint8_t trailer[sizeof kAddressFilterTrailer];
  if (lines == 0 ||
      static_cast<uint64_t>(st.st_size) != kAddressFilterHeaderSize + body + sizeof trailer ||
      !readAt(fd, trailer, sizeof trailer, kAddressFilterHeaderSize + body) ||
      std::memcmp(trailer, kAddressFilterTrailer, sizeof trailer) != 0)
    return std::nullopt;
  std::vector<uint64_t> line(kWordsPerLine);
  for (const uint32_t word : words) {
    const uint64_t at = uint64_t{lineOf(mix(word), lines)} * kAddressFilterLineBytes;
    if (!readAt(fd, reinterpret_cast<uint8_t*>(line.data()), kAddressFilterLineBytes, kAddressFilterHeaderSize + at))
      return std::nullopt;
    // The line read stands at index 0 of a one-line filter.
    answer.held.push_back(lookUp(line, 1, word));
    answer.may_hold_one = answer.may_hold_one || answer.held.back();
  }
  return answer;
}

}  // namespace flowfold::recorder
