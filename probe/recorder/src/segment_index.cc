#include "flowfold/recorder/segment_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "flowfold/flowcache/wire.h"
#include "flowfold/recorder/address_filter.h"
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

}  // namespace

std::string indexPathOf(const std::string& segment_path) { return besideSegment(segment_path, ".idx"); }

namespace {

// The keys a segment's index holds: its flows' (for --flow-id), and the
// keys of the headers a filter sees. With `tunnels: inner` those differ (a
// filter reads the outer headers, as tcpdump does), so both are indexed.
probe::TunnelMode indexedTunnels(probe::TunnelMode flows) {
  return flows == probe::TunnelMode::kInner ? probe::TunnelMode::kBoth : flows;
}

}  // namespace

// Whether a frame lies as the packet `flowfold extract` rebuilds from its
// key to ask a filter about the key's flow (FlowPackets::build in
// probe/src/extract.cc): Ethernet, the key's VLAN tags (0x8100, or 0x88a8
// then 0x8100 for two, as build() writes them), IPv4 or IPv6 (or
// the IP packet alone, for the raw IP link types), the key's protocol in
// the IP header's own protocol / next header field. A frame that lies
// otherwise (PPPoE, MPLS, a tag the key does not keep, IPv6 extension
// headers) is matched by a filter on other bytes than its rebuilt packet
// holds: it is also indexed under the all-zero key, whose blocks every
// filter query reads (and runs the filter on), so that no verdict on the
// rebuilt packet sets it aside.
bool laidOutAsRebuilt(uint32_t linktype, const uint8_t* frame, uint32_t caplen, const FlowKey& k) {
  size_t at = 0;
  if (!rebuiltLinkType(linktype)) return true;  // every flow's blocks are read
  if (linktype == DLT_EN10MB) {
    at = 12;
    const int tags = (k.vlan_id != 0) + (k.inner_vlan_id != 0);
    for (int i = 0; i < tags; ++i, at += 4) {
      // A filter may test the tag types' bytes themselves (ether[12:2]).
      const uint16_t type = tags == 2 && i == 0 ? 0x88a8 : 0x8100;
      if (at + 2 > caplen || load16(frame + at) != type) return false;
    }
    if (at + 2 > caplen || load16(frame + at) != (k.ip_version == 6 ? 0x86dd : 0x0800)) return false;
    at += 2;
  }
  const size_t protocol_at = at + (k.ip_version == 6 ? 6 : 9);
  return protocol_at < caplen && frame[protocol_at] == k.protocol;
}

IndexWriter::IndexWriter(uint32_t linktype, probe::TunnelMode tunnels)
    : linktype_(linktype),
      decoder_(static_cast<int>(linktype), {}, indexedTunnels(tunnels)),
      both_(indexedTunnels(tunnels) == probe::TunnelMode::kBoth) {}

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

uint64_t IndexWriter::writeAddressFilter(const std::string& path, uint64_t indexed_end, std::string& error) const {
  const AddressFilterBuilder filter(keys_);
  return filter.write(path, indexed_end, block_, error) ? filter.fileBytes() : 0;
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
  buf_.clear();
  // Cut into index blocks of kIndexBlockBytes at record boundaries:
  // a query reads whole index blocks, so a flow's few packets cost a few
  // small reads, not a few whole writes.
  size_t start = 0, pos = 0, packets = 0, start_packet = 0;
  while (pos + kPcapRecordHeaderSize <= length) {
    const uint32_t caplen = loadHost<uint32_t>(records + pos + 8);
    if (pos + kPcapRecordHeaderSize + caplen > length) break;
    pos += kPcapRecordHeaderSize + caplen;
    ++packets;
    if (pos - start >= kIndexBlockBytes) {
      if (!indexBlock(records + start, pos - start, offset + start, tags ? tags + start_packet : nullptr, error))
        return false;
      start = pos;
      start_packet = packets;
    }
  }
  if (pos > start &&
      !indexBlock(records + start, pos - start, offset + start, tags ? tags + start_packet : nullptr, error))
    return false;
  block_ready_ = !buf_.empty();
  return true;
}

bool IndexWriter::indexBlock(const uint8_t* records, size_t length, uint64_t offset, const uint64_t* tags,
                             std::string& error) {
  std::vector<FlowKey> fresh;
  std::vector<uint32_t> present;
  uint32_t packets = 0;
  uint64_t first_ns = UINT64_MAX, last_ns = 0;
  probe::DecodedPacket out{}, inner{};
  for (size_t pos = 0; pos + kPcapRecordHeaderSize <= length;) {
    const uint8_t* h = records + pos;
    const uint64_t ts_ns = uint64_t{loadHost<uint32_t>(h)} * 1'000'000'000 + loadHost<uint32_t>(h + 4);
    const uint32_t caplen = loadHost<uint32_t>(h + 8), wirelen = loadHost<uint32_t>(h + 12);
    if (pos + kPcapRecordHeaderSize + caplen > length) break;
    ++packets;
    // The earliest and the latest: a capture's clock may step back.
    first_ns = std::min(first_ns, ts_ns);
    last_ns = std::max(last_ns, ts_ns);
    inner.tunnel_depth = 0;
    const bool ok = decoder_.decode(h + kPcapRecordHeaderSize, caplen, wirelen, ts_ns / 1'000'000, out,
                                    both_ ? &inner : nullptr) == probe::DecodeStatus::kOk;
    block_keys_.push_back(ok ? out.key : FlowKey{});
    if (ok && both_ && inner.tunnel_depth != 0) block_keys_.push_back(inner.key);
    if (ok && !laidOutAsRebuilt(linktype_, h + kPcapRecordHeaderSize, caplen, out.key)) block_keys_.push_back(FlowKey{});
    pos += kPcapRecordHeaderSize + caplen;
  }
  if (packets == 0) first_ns = 0;
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

// The block's earlier flows (distinct numbers) in ascending order: marked in
// a bitmap over their range and read back in order, when the range is not
// much sparser than the list; std::sort of the ~1,500 numbers of a block
// was the recorder thread's second cost (bench/PROFILE.md).
void IndexWriter::sortPresent(std::vector<uint32_t>& present) {
  if (present.size() < 64) {
    std::sort(present.begin(), present.end());
    return;
  }
  const auto [lo, hi] = std::minmax_element(present.begin(), present.end());
  const uint32_t first_word = *lo / 64;
  const size_t words = *hi / 64 - first_word + 1;
  if (words > present.size() * 8) {
    std::sort(present.begin(), present.end());
    return;
  }
  present_bits_.assign(words, 0);
  for (const uint32_t n : present) present_bits_[n / 64 - first_word] |= uint64_t{1} << (n % 64);
  present.clear();
  for (size_t w = 0; w < words; ++w)
    for (uint64_t b = present_bits_[w]; b != 0; b &= b - 1)
      present.push_back(static_cast<uint32_t>((first_word + w) * 64 + static_cast<unsigned>(std::countr_zero(b))));
}

bool IndexWriter::writeBlock(const std::vector<FlowKey>& fresh, std::vector<uint32_t>& present, uint32_t packets,
                             uint64_t offset, uint64_t length, uint64_t first_ns, uint64_t last_ns, std::string& error) {
  sortPresent(present);
  const size_t at = buf_.size();
  put<uint32_t>(buf_, kBlockMagic);
  put<uint32_t>(buf_, static_cast<uint32_t>(fresh.size()));
  put<uint32_t>(buf_, static_cast<uint32_t>(present.size()));
  put<uint32_t>(buf_, packets);
  put<uint64_t>(buf_, offset);
  put<uint64_t>(buf_, length);
  put<uint64_t>(buf_, first_ns);
  put<uint64_t>(buf_, last_ns);
  put<uint32_t>(buf_, 0);  // the payload's size, below
  put<uint32_t>(buf_, 0);  // the keys' size, below
  for (const FlowKey& k : fresh) putKey(buf_, k);
  const auto keys = static_cast<uint32_t>(buf_.size() - at - kBlockHeaderSize);
  std::memcpy(buf_.data() + at + 52, &keys, sizeof keys);
  uint32_t previous = 0;
  for (uint32_t n : present) {
    putVarint(buf_, n - previous);
    previous = n;
  }
  const auto payload = static_cast<uint32_t>(buf_.size() - at - kBlockHeaderSize);
  std::memcpy(buf_.data() + at + 48, &payload, sizeof payload);
  ++block_;
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
// Whether a block's coded keys may hold a wanted one (null: read them all).
using KeysTest = std::function<bool(const uint8_t* keys, size_t n)>;
bool readIndex(const std::string& path, SegmentIndex& out, std::string& error, const KeyTest& test, TimeSpan span,
               const KeysTest& may_hold = nullptr);

}  // namespace

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error) {
  return readIndex(path, out, error, nullptr, TimeSpan{});
}

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error,
                      const std::function<bool(const FlowKey&)>& wanted, TimeSpan span,
                      const std::function<bool(const uint8_t* keys, size_t n)>& keys_may_hold) {
  return readIndex(
      path, out, error,
      [&](CodedReader& in, bool& w) {
        FlowKey k;
        if (!in.key(k)) return false;
        w = wanted(k);
        return true;
      },
      span, keys_may_hold);
}

bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error, std::span<const FlowKey> keys,
                      TimeSpan span) {
  // Compared as coded bytes: the coding of a key is one and the same
  // wherever it is written, so no key of the index need be decoded.
  std::vector<std::vector<uint8_t>> coded;
  for (const FlowKey& k : keys) {
    coded.emplace_back();
    putKey(coded.back(), k);
  }
  return readIndex(
      path, out, error,
      [&](CodedReader& in, bool& w) {
        const uint8_t* start = nullptr;
        size_t n = 0;
        if (!in.skipKey(start, n)) return false;
        w = std::any_of(coded.begin(), coded.end(), [&](const std::vector<uint8_t>& c) {
          return c.size() == n && std::memcmp(c.data(), start, n) == 0;
        });
        return true;
      },
      span,
      // A block whose keys' bytes do not hold a wanted key's coding
      // anywhere declares none of them: one memmem instead of a walk.
      [&](const uint8_t* keys, size_t n) {
        return std::any_of(coded.begin(), coded.end(),
                           [&](const std::vector<uint8_t>& c) { return ::memmem(keys, n, c.data(), c.size()) != nullptr; });
      });
}

namespace {

// A block of a mapped index: where it is and the flows it declares.
struct MappedBlock {
  const uint8_t* header;
  uint32_t fresh, present, payload;
  uint32_t keys;                    // the new flows' keys' bytes (0 from older writers: unknown)
  uint32_t first_flow;              // the number of its first new flow
  const uint8_t* list = nullptr;    // its present list, once its keys are read
};

// An index file mapped read-only: a query reads the headers, then only the
// blocks it needs.
class MappedFile {
 public:
  bool open(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      error = std::strerror(errno);
      return false;
    }
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
    data_ = {static_cast<const uint8_t*>(map), size};
    return true;
  }
  ~MappedFile() {
    if (!data_.empty()) ::munmap(const_cast<uint8_t*>(data_.data()), data_.size());
  }
  std::span<const uint8_t> data() const { return data_; }

 private:
  std::span<const uint8_t> data_;
};

// Reads a mapped index into `out`: the block headers, then (for a query,
// `wanted` set) the blocks of its time span and which of them hold a flow
// it wants, or (no query) every block's flows and the segment's keys.
class IndexReader {
 public:
  IndexReader(std::span<const uint8_t> data, SegmentIndex& out, std::string& error, const KeyTest& wanted,
              const KeysTest& may_hold)
      : data_(data), out_(out), error_(error), wanted_(wanted), may_hold_(may_hold) {}

  bool read(TimeSpan span) {
    if (data_.size() < kIndexHeaderSize || std::memcmp(data_.data(), kIndexMagic, sizeof kIndexMagic) != 0) {
      error_ = "not a flowfold segment index";
      return false;
    }
    out_.linktype = loadHost<uint32_t>(data_.data() + 8);
    if (!readBlockHeaders()) return false;
    flow_wanted_.assign(wanted_ ? flows_ : 0, -1);
    // The blocks of the query's time: their own flows and the earlier flows
    // they list. An earlier flow's key is in the block that declared it,
    // which is read then (and only then) if it lies outside the time.
    for (size_t i = 0; i < blocks_.size(); ++i)
      if (!wanted_ || span.meets(out_.blocks[i].first_ts_ns, out_.blocks[i].last_ts_ns))
        if (!readBlockFlows(i)) return false;
    return true;
  }

 private:
  // The block headers, and the flow numbers each block declares.
  bool readBlockHeaders() {
    for (size_t pos = kIndexHeaderSize; pos + kBlockHeaderSize <= data_.size();) {
      const uint8_t* h = data_.data() + pos;
      if (loadHost<uint32_t>(h) != kBlockMagic) {
        error_ = "damaged block at offset " + std::to_string(pos);
        return false;
      }
      const uint32_t payload = loadHost<uint32_t>(h + 48);
      if (payload > data_.size() - pos - kBlockHeaderSize) break;  // the partial last block of a crash
      const uint32_t keys = loadHost<uint32_t>(h + 52);
      // A key and a listed flow take a byte at least: counts the payload
      // cannot hold are damage (and are never allocated for).
      if (keys > payload || uint64_t{loadHost<uint32_t>(h + 4)} + loadHost<uint32_t>(h + 8) > payload) {
        error_ = "damaged block at offset " + std::to_string(pos);
        return false;
      }
      blocks_.push_back(MappedBlock{h, loadHost<uint32_t>(h + 4), loadHost<uint32_t>(h + 8), payload, keys, flows_});
      flows_ += blocks_.back().fresh;
      IndexBlock b;
      b.packets = loadHost<uint32_t>(h + 12);
      b.offset = loadHost<uint64_t>(h + 16);
      b.length = loadHost<uint64_t>(h + 24);
      b.first_ts_ns = loadHost<uint64_t>(h + 32);
      b.last_ts_ns = loadHost<uint64_t>(h + 40);
      out_.indexed_end = std::max(out_.indexed_end, b.offset + b.length);
      out_.blocks.push_back(std::move(b));
      pos += kBlockHeaderSize + payload;
    }
    return true;
  }

  bool damaged(size_t i, const std::string& what) {
    error_ = "block at offset " + std::to_string(blocks_[i].header - data_.data()) + " " + what;
    return false;
  }

  // A block's keys, read once: kept (no query) or asked whether the query
  // wants them (flow_wanted_: -1 not asked yet).
  bool readKeys(size_t i) {
    MappedBlock& m = blocks_[i];
    const uint8_t* keys = m.header + kBlockHeaderSize;
    if (wanted_ && may_hold_ && m.fresh != 0 && m.keys != 0 && !may_hold_(keys, m.keys)) {
      std::fill_n(flow_wanted_.begin() + m.first_flow, m.fresh, int8_t{0});
      m.list = keys + m.keys;
      return true;
    }
    CodedReader in(keys, m.payload);
    for (uint32_t k = 0; k < m.fresh; ++k) {
      if (!wanted_) {
        FlowKey key;
        if (!in.key(key)) return damaged(i, "has a damaged key");
        out_.flows.push_back(key);
      } else {
        bool w = false;
        if (!wanted_(in, w)) return damaged(i, "has a damaged key");
        flow_wanted_[m.first_flow + k] = w ? 1 : 0;
      }
    }
    m.list = in.position();
    if (m.keys != 0 && m.list != keys + m.keys) return damaged(i, "has keys of another size than its header says");
    return true;
  }

  // The block that declared flow `n`.
  size_t declaring(uint32_t n) const {
    const auto it = std::upper_bound(blocks_.begin(), blocks_.end(), n,
                                     [](uint32_t v, const MappedBlock& m) { return v < m.first_flow; });
    return static_cast<size_t>(std::prev(it) - blocks_.begin());
  }

  // Block i's flows: listed in out_ (no query), or whether one is wanted.
  bool readBlockFlows(size_t i) {
    IndexBlock& b = out_.blocks[i];
    MappedBlock& m = blocks_[i];
    if (m.list == nullptr && !readKeys(i)) return false;
    if (wanted_)
      for (uint32_t k = 0; k < m.fresh && !b.wanted; ++k) b.wanted = flow_wanted_[m.first_flow + k] == 1;
    CodedReader in(m.list, static_cast<size_t>(m.header + kBlockHeaderSize + m.payload - m.list));
    if (!wanted_) b.flows.resize(m.present);
    uint64_t number = 0;
    for (uint32_t k = 0; k < m.present; ++k) {
      uint64_t step = 0;
      if (!in.varint(step)) return damaged(i, "is cut short");
      number += step;
      if (number >= m.first_flow)
        return damaged(i, "names flow " + std::to_string(number) + ", which no earlier block declared");
      if (!wanted_) {
        b.flows[k] = static_cast<uint32_t>(number);
        continue;
      }
      if (b.wanted) continue;
      int8_t& w = flow_wanted_[number];
      if (w < 0 && !readKeys(declaring(static_cast<uint32_t>(number)))) return false;
      b.wanted = w == 1;
    }
    if (!in.done()) return damaged(i, "has bytes past its flows");
    if (!wanted_)
      for (uint32_t n = m.first_flow; n < m.first_flow + m.fresh; ++n) b.flows.push_back(n);
    return true;
  }

  const std::span<const uint8_t> data_;
  SegmentIndex& out_;
  std::string& error_;
  const KeyTest& wanted_;
  const KeysTest& may_hold_;
  std::vector<MappedBlock> blocks_;
  uint32_t flows_ = 0;
  std::vector<int8_t> flow_wanted_;
};

bool readIndex(const std::string& path, SegmentIndex& out, std::string& error, const KeyTest& wanted, TimeSpan span,
               const KeysTest& may_hold) {
  out = SegmentIndex{};
  MappedFile file;
  if (!file.open(path, error)) return false;
  return IndexReader(file.data(), out, error, wanted, may_hold).read(span);
}

}  // namespace

}  // namespace flowfold::recorder
