#include "flowfold/recorder/segment_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "flowfold/recorder/file_io.h"
#include "flowfold/recorder/flow_tags.h"
#include "flowfold/recorder/key_coding.h"
#include "flowfold/recorder/pcap_segment.h"

namespace flowfold::recorder {

namespace {

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

template <class T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::string indexPathOf(const std::string& segment_path) {
  const std::string suffix = ".pcap";
  if (segment_path.size() > suffix.size() && segment_path.compare(segment_path.size() - suffix.size(), suffix.size(), suffix) == 0)
    return segment_path.substr(0, segment_path.size() - suffix.size()) + ".idx";
  return segment_path + ".idx";
}

IndexWriter::IndexWriter(uint32_t linktype, probe::TunnelMode tunnels)
    : linktype_(linktype), decoder_(static_cast<int>(linktype), {}, tunnels), both_(tunnels == probe::TunnelMode::kBoth) {}

IndexWriter::~IndexWriter() { close(); }

bool IndexWriter::open(const std::string& path, std::string& error) {
  close();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    error = "cannot create index " + path + ": " + std::strerror(errno);
    return false;
  }
  keys_.clear();
  table_.assign(1 << 16, Slot{0, 0});
  last_block_.clear();
  block_ = 0;
  ++segment_;  // every entry slot is of an earlier segment now
  block_ready_ = false;
  std::vector<uint8_t> header(kIndexMagic, kIndexMagic + sizeof kIndexMagic);
  put<uint32_t>(header, linktype_);
  put<uint32_t>(header, 0);
  bytes_ = 0;
  if (!writeAll(fd_, header.data(), header.size(), error)) {
    close();
    return false;
  }
  bytes_ = header.size();
  return true;
}

void IndexWriter::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

uint32_t IndexWriter::numberOf(const FlowKey& key, uint64_t hash, bool& added) {
  const auto hash_lo = static_cast<uint32_t>(hash);
  const size_t mask = table_.size() - 1;
  size_t pos = hash & mask;
  for (; table_[pos].number1 != 0; pos = (pos + 1) & mask) {
    if (table_[pos].hash_lo == hash_lo && keys_[table_[pos].number1 - 1] == key) {
      added = false;
      return table_[pos].number1 - 1;
    }
  }
  added = true;
  const auto number = static_cast<uint32_t>(keys_.size());
  keys_.push_back(key);
  table_[pos] = Slot{hash_lo, number + 1};
  if (keys_.size() * 2 > table_.size()) growTable();
  return number;
}

void IndexWriter::growTable() {
  std::vector<Slot> old = std::move(table_);
  table_.assign(old.size() * 2, Slot{0, 0});
  const size_t mask = table_.size() - 1;
  for (const Slot& s : old) {
    if (s.number1 == 0) continue;
    // The low 32 bits choose the home while the table has at most 2^32 slots.
    size_t pos = s.hash_lo & mask;
    while (table_[pos].number1 != 0) pos = (pos + 1) & mask;
    table_[pos] = s;
  }
}

void IndexWriter::addKey(const FlowKey& key, uint64_t hash, std::vector<FlowKey>& fresh,
                         std::vector<uint32_t>& present) {
  bool added = false;
  const uint32_t number = numberOf(key, hash, added);
  if (added) {
    // New flows are present in their block without being listed.
    fresh.push_back(key);
    last_block_.push_back(block_ + 1);
    return;
  }
  // Once per block per earlier flow: the block number (+1) it was last listed in.
  uint32_t& last = last_block_[number];
  if (last != block_ + 1) {
    last = block_ + 1;
    present.push_back(number);
  }
}

void IndexWriter::addTagged(uint64_t tag, const FlowKey& key, std::vector<FlowKey>& fresh,
                            std::vector<uint32_t>& present) {
  if (tag == FlowTags::kNoFlow) return addKey(key, hashFlowKey(key), fresh, present);
  const uint64_t entry = tag >> 1;
  if (entry >= by_entry_.size()) by_entry_.resize(std::max<size_t>(entry + 1, by_entry_.size() * 2), EntrySlot{0, 0});
  EntrySlot& slot = by_entry_[entry];
  if ((tag & 1) != 0 || slot.segment != segment_ || slot.number1 == 0) {
    // A flow new to the segment (or new in that cache entry): numbered on,
    // with the key its packet decodes to.
    const auto number = static_cast<uint32_t>(keys_.size());
    keys_.push_back(key);
    fresh.push_back(key);
    last_block_.push_back(block_ + 1);
    slot = EntrySlot{number + 1, segment_};
    return;
  }
  uint32_t& last = last_block_[slot.number1 - 1];
  if (last != block_ + 1) {
    last = block_ + 1;
    present.push_back(slot.number1 - 1);
  }
}

bool IndexWriter::addBlock(const uint8_t* records, size_t length, uint64_t offset, const uint64_t* tags,
                           std::string& error) {
  if (fd_ < 0) return true;
  std::vector<FlowKey> fresh;
  std::vector<uint32_t> present;
  uint32_t packets = 0;
  uint64_t first_ns = 0, last_ns = 0;
  probe::DecodedPacket out{}, inner{};
  for (size_t pos = 0; pos + kPcapRecordHeaderSize <= length;) {
    const uint8_t* h = records + pos;
    const uint64_t ts_ns = uint64_t{get<uint32_t>(h)} * 1'000'000'000 + get<uint32_t>(h + 4);
    const uint32_t caplen = get<uint32_t>(h + 8), wirelen = get<uint32_t>(h + 12);
    if (pos + kPcapRecordHeaderSize + caplen > length) break;
    if (packets++ == 0) first_ns = ts_ns;
    last_ns = ts_ns;
    inner.tunnel_depth = 0;
    const bool ok = decoder_.decode(h + kPcapRecordHeaderSize, caplen, wirelen, ts_ns / 1'000'000, out,
                                    both_ ? &inner : nullptr) == probe::DecodeStatus::kOk;
    block_keys_.push_back(ok ? out.key : FlowKey{});
    if (ok && both_ && inner.tunnel_depth != 0) block_keys_.push_back(inner.key);
    pos += kPcapRecordHeaderSize + caplen;
  }
  if (tags != nullptr && !both_ && block_keys_.size() == packets) {
    // Numbered by the flow cache's entries: a slot per entry, mostly of
    // recent flows, instead of a hashed table of every key in the segment.
    constexpr size_t kSlotAhead = 16, kLastAhead = 8;
    const size_t n = block_keys_.size();
    for (size_t i = 0; i < n; ++i) {
      if (i + kSlotAhead < n && tags[i + kSlotAhead] != FlowTags::kNoFlow && (tags[i + kSlotAhead] >> 1) < by_entry_.size())
        __builtin_prefetch(&by_entry_[tags[i + kSlotAhead] >> 1]);
      if (i + kLastAhead < n && tags[i + kLastAhead] != FlowTags::kNoFlow && (tags[i + kLastAhead] >> 1) < by_entry_.size()) {
        const EntrySlot& ahead = by_entry_[tags[i + kLastAhead] >> 1];
        if (ahead.number1 != 0 && ahead.number1 <= last_block_.size()) __builtin_prefetch(&last_block_[ahead.number1 - 1]);
      }
      addTagged(tags[i], block_keys_[i], fresh, present);
    }
    block_keys_.clear();
    return writeBlock(fresh, present, packets, offset, length, first_ns, last_ns, error);
  }
  // The keys land on random slots of a large table, and then on the key
  // they name: both lines are fetched a few keys ahead (two stages, as the
  // flow cache does), or each key would wait for two cache misses.
  block_hashes_.resize(block_keys_.size());
  for (size_t i = 0; i < block_keys_.size(); ++i) block_hashes_[i] = hashFlowKey(block_keys_[i]);
  constexpr size_t kSlotAhead = 16, kKeyAhead = 8;
  for (size_t i = 0; i < block_keys_.size(); ++i) {
    const size_t mask = table_.size() - 1;
    if (i + kSlotAhead < block_keys_.size()) __builtin_prefetch(&table_[block_hashes_[i + kSlotAhead] & mask]);
    if (i + kKeyAhead < block_keys_.size()) {
      const Slot& ahead = table_[block_hashes_[i + kKeyAhead] & mask];
      if (ahead.number1 != 0) {
        __builtin_prefetch(&keys_[ahead.number1 - 1]);
        __builtin_prefetch(&last_block_[ahead.number1 - 1]);
      }
    }
    addKey(block_keys_[i], block_hashes_[i], fresh, present);
  }
  block_keys_.clear();
  return writeBlock(fresh, present, packets, offset, length, first_ns, last_ns, error);
}

bool IndexWriter::writeBlock(const std::vector<FlowKey>& fresh, std::vector<uint32_t>& present, uint32_t packets,
                             uint64_t offset, uint64_t length, uint64_t first_ns, uint64_t last_ns, std::string& error) {
  std::sort(present.begin(), present.end());
  buf_.clear();
  put<uint32_t>(buf_, kBlockMagic);
  put<uint32_t>(buf_, static_cast<uint32_t>(fresh.size()));
  put<uint32_t>(buf_, static_cast<uint32_t>(present.size()));
  put<uint32_t>(buf_, packets);
  put<uint64_t>(buf_, offset);
  put<uint64_t>(buf_, length);
  put<uint64_t>(buf_, first_ns);
  put<uint64_t>(buf_, last_ns);
  put<uint32_t>(buf_, 0);  // the payload's size, below
  put<uint32_t>(buf_, 0);
  for (const FlowKey& k : fresh) putKey(buf_, k);
  uint32_t previous = 0;
  for (uint32_t n : present) {
    putVarint(buf_, n - previous);
    previous = n;
  }
  const auto payload = static_cast<uint32_t>(buf_.size() - kBlockHeaderSize);
  std::memcpy(buf_.data() + 48, &payload, sizeof payload);
  ++block_;
  block_ready_ = true;
  (void)error;
  return true;
}

bool IndexWriter::commitBlock(std::string& error) {
  if (fd_ < 0 || !block_ready_) return true;
  block_ready_ = false;
  if (!writeAll(fd_, buf_.data(), buf_.size(), error)) return false;
  bytes_ += buf_.size();
  return true;
}

namespace {

// Reads one key of a block: false when it is damaged; `wanted` says whether
// the query wants its flow. Null: no query, the keys are kept.
using KeyTest = std::function<bool(CodedReader&, bool& wanted)>;
bool readIndex(const std::string& path, SegmentIndex& out, std::string& error, const KeyTest& test);

}  // namespace

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error) {
  return readIndex(path, out, error, nullptr);
}

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error,
                      const std::function<bool(const FlowKey&)>& wanted) {
  return readIndex(path, out, error, [&](CodedReader& in, bool& w) {
    FlowKey k;
    if (!in.key(k)) return false;
    w = wanted(k);
    return true;
  });
}

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error, std::span<const FlowKey> keys) {
  // Compared as coded bytes: the coding of a key is one and the same
  // wherever it is written, so no key of the index need be decoded.
  std::vector<std::vector<uint8_t>> coded;
  for (const FlowKey& k : keys) {
    coded.emplace_back();
    putKey(coded.back(), k);
  }
  return readIndex(path, out, error, [&](CodedReader& in, bool& w) {
    const uint8_t* start = nullptr;
    size_t n = 0;
    if (!in.skipKey(start, n)) return false;
    w = std::any_of(coded.begin(), coded.end(),
                    [&](const std::vector<uint8_t>& c) { return c.size() == n && std::memcmp(c.data(), start, n) == 0; });
    return true;
  });
}

namespace {

bool readIndex(const std::string& path, SegmentIndex& out, std::string& error, const KeyTest& wanted) {
  out = SegmentIndex{};
  std::vector<bool> flow_wanted;  // with a filter, by flow number
  uint32_t flows = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  // Mapped, not copied: a query reads a segment's index once, front to back.
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = "not a regular file";
    return false;
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* map = size == 0 ? MAP_FAILED : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    error = size == 0 ? "not a flowfold segment index" : std::strerror(errno);
    return false;
  }
  ::madvise(map, size, MADV_SEQUENTIAL);
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } unmap{map, size};
  const std::span<const uint8_t> data(static_cast<const uint8_t*>(map), size);
  if (data.size() < kIndexHeaderSize || std::memcmp(data.data(), kIndexMagic, sizeof kIndexMagic) != 0) {
    error = "not a flowfold segment index";
    return false;
  }
  out.linktype = get<uint32_t>(data.data() + 8);
  size_t pos = kIndexHeaderSize;
  while (pos + kBlockHeaderSize <= data.size()) {
    const uint8_t* h = data.data() + pos;
    if (get<uint32_t>(h) != kBlockMagic) {
      error = "damaged block at offset " + std::to_string(pos);
      return false;
    }
    const uint32_t fresh = get<uint32_t>(h + 4), present = get<uint32_t>(h + 8), payload = get<uint32_t>(h + 48);
    if (payload > data.size() - pos - kBlockHeaderSize) break;  // the partial last block of a crash
    const size_t size = kBlockHeaderSize + payload;
    IndexBlock b;
    b.packets = get<uint32_t>(h + 12);
    b.offset = get<uint64_t>(h + 16);
    b.length = get<uint64_t>(h + 24);
    b.first_ts_ns = get<uint64_t>(h + 32);
    b.last_ts_ns = get<uint64_t>(h + 40);
    const auto damaged = [&](const std::string& what) {
      error = "block at offset " + std::to_string(pos) + " " + what;
      return false;
    };
    CodedReader in(h + kBlockHeaderSize, payload);
    const uint32_t first_new = flows;
    for (uint32_t i = 0; i < fresh; ++i) {
      if (!wanted) {
        FlowKey k;
        if (!in.key(k)) return damaged("has a damaged key");
        out.flows.push_back(k);
      } else {
        bool w = false;
        if (!wanted(in, w)) return damaged("has a damaged key");
        flow_wanted.push_back(w);
        b.wanted = b.wanted || w;  // a new flow has packets in its block
      }
      ++flows;
    }
    if (!wanted) b.flows.resize(present);
    uint64_t number = 0;
    for (uint32_t i = 0; i < present; ++i) {
      uint64_t step = 0;
      if (!in.varint(step)) return damaged("is cut short");
      number += step;
      if (number >= first_new)
        return damaged("names flow " + std::to_string(number) + ", which no earlier block declared");
      if (!wanted) b.flows[i] = static_cast<uint32_t>(number);
      else b.wanted = b.wanted || flow_wanted[number];
    }
    if (!in.done()) return damaged("has bytes past its flows");
    if (!wanted)
      for (uint32_t n = first_new; n < flows; ++n) b.flows.push_back(n);
    out.indexed_end = std::max(out.indexed_end, b.offset + b.length);
    out.blocks.push_back(std::move(b));
    pos += size;
  }
  return true;
}

}  // namespace

}  // namespace flowfold::recorder
