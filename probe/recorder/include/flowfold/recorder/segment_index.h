#pragma once
// The index of a segment: which flows have packets in which parts of it,
// so that extraction reads only the parts holding the flows it wants.
//
// `flowfold-SEQ-STREAM-START.idx` beside its `.pcap`, written by the
// recorder's thread after each buffer it writes to the segment (a 4 MiB
// write, indexed as blocks of about kIndexBlockBytes), so the segment being
// written is searchable within about a second. Append-only: a crash leaves
// at most a partial last block, which a reader ignores, and the segment's
// bytes past the last whole block are read (scanned) instead of looked up.
//
// Format (host byte order, x86-64): a 16-byte header ("FFIDX002", the
// link type, 4 reserved bytes), then per block a 56-byte header:
//   u32 'BLK2', u32 new_flows, u32 present, u32 packets,
//   u64 offset, u64 length (the block's records: offset in the segment file),
//   u64 first_ts_ns, u64 last_ts_ns (its earliest and latest packet),
//   u32 payload bytes, u32 keys bytes (of the new flows' keys, the start of
//   the payload; 0 when written by flowfold before 2026-12-07: walk them),
// and its payload:
//   new_flows keys (key_coding.h): flows first seen in this segment here,
//     numbered on from the previous blocks' (0, 1, ...);
//   present varints: the numbers of the earlier flows (first seen in an
//     earlier block) with packets in this block, ascending, each as the
//     difference from the one before (the first from 0). The block's new
//     flows have packets in it without being listed.
// Packets that are not a flow's (ARP, ...) count under the all-zero key.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <pcap/dlt.h>

#include "flowfold/flowcache/flow_key.h"
#include "flowfold/probe/decoder.h"

namespace flowfold::recorder {

inline constexpr char kIndexMagic[8] = {'F', 'F', 'I', 'D', 'X', '0', '0', '2'};
inline constexpr uint32_t kBlockMagic = 0x324b4c42;  // "BLK2"
inline constexpr size_t kIndexHeaderSize = 16;
inline constexpr size_t kBlockHeaderSize = 56;

/// The link types whose frames `flowfold extract` rebuilds from a flow's key
/// to ask a filter about the flow (Ethernet and raw IP); for the others it
/// reads every flow's blocks.
inline bool rebuiltLinkType(uint32_t dlt) {
  return dlt == DLT_EN10MB || dlt == DLT_RAW || dlt == DLT_IPV4 || dlt == DLT_IPV6;
}

/// "…/flowfold-…-START.pcap" -> "…/flowfold-…-START.idx".
std::string indexPathOf(const std::string& segment_path);

struct IndexBlock {
  uint64_t offset = 0, length = 0;
  uint32_t packets = 0;
  uint64_t first_ts_ns = 0, last_ts_ns = 0;
  std::vector<uint32_t> flows;  // the segment's flow numbers present (earlier flows, then the block's new ones)
  bool wanted = false;          // read with a filter: a flow it wants is present (`flows` is then left empty)
};

struct SegmentIndex {
  uint32_t linktype = 0;
  std::vector<FlowKey> flows;  // by number
  std::vector<IndexBlock> blocks;
  /// The segment offset up to which blocks cover it (records after it are
  /// not indexed: the index was cut or is behind).
  uint64_t indexed_end = 0;
};

/// Index blocks cover about this many bytes of records (whole records, cut
/// from the recorder's larger writes): a query reads whole blocks, so a
/// flow's few packets cost a few small reads; each block costs its 56-byte
/// header (0.02 %) and the listing of the earlier flows in it.
inline constexpr size_t kIndexBlockBytes = 256 << 10;

/// A query's time span, in ns since the epoch (both ends included).
struct TimeSpan {
  uint64_t from_ns = 0, to_ns = UINT64_MAX;
  bool meets(uint64_t first_ns, uint64_t last_ns) const { return last_ns >= from_ns && first_ns <= to_ns; }
};

/// Reads an index; a partial last block is left out. False (and `error`)
/// when the file is not an index or a block is damaged.
bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error);
/// The same for a query: wanted(key) is asked once per flow, as it is read;
/// neither the keys nor the blocks' flow lists are kept, only each block's
/// `wanted` (a ring of millions of flows is answered without holding them).
/// Blocks outside `span` are not parsed (`wanted` stays false): their flows
/// are counted from the headers, and wanted() is not asked of them.
/// `keys_may_hold(keys, n)`, when given, is asked first of the coded keys of
/// a block's new flows (key_coding.h): false says none of them is wanted,
/// and they are not decoded.
bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error,
                      const std::function<bool(const FlowKey&)>& wanted, TimeSpan span = {},
                      const std::function<bool(const uint8_t* keys, size_t n)>& keys_may_hold = nullptr);
/// The same for a few exact keys (extract --flow-id): keys are compared in
/// their coded form, without decoding the index's.
bool readSegmentIndex(const std::string& path, SegmentIndex& out, std::string& error, std::span<const FlowKey> keys,
                      TimeSpan span = {});

/// Writes one segment's index (the recorder's thread).
class IndexWriter {
 public:
  IndexWriter(uint32_t linktype, probe::TunnelMode tunnels);
  ~IndexWriter();
  IndexWriter(const IndexWriter&) = delete;
  IndexWriter& operator=(const IndexWriter&) = delete;

  /// Starts the index of a new segment at `path` (created, never through a
  /// link or over a file). False and `error` when it cannot be created.
  bool open(const std::string& path, std::string& error);
  /// Indexes a block of whole pcap records written at segment `offset`;
  /// `tags`, when given, one per record (flow_tags.h), number its flows.
  /// The block's entry is written by commitBlock(), once the records are in
  /// the segment (an index never points past what a reader can find).
  bool addBlock(const uint8_t* records, size_t length, uint64_t offset, const uint64_t* tags, std::string& error);
  bool commitBlock(std::string& error);
  void close();
  bool isOpen() const { return fd_ >= 0; }
  /// Writes the address filter of the segment's flows (address_filter.h);
  /// its size in bytes, or 0 and `error`.
  uint64_t writeAddressFilter(const std::string& path, uint64_t indexed_end, std::string& error) const;
  uint64_t bytes() const { return bytes_; }

 private:
  void addKey(const FlowKey& key, uint64_t hash, std::vector<FlowKey>& fresh, std::vector<uint32_t>& present);
  void addTagged(uint64_t tag, const FlowKey& key, std::vector<FlowKey>& fresh, std::vector<uint32_t>& present);
  bool indexBlock(const uint8_t* records, size_t length, uint64_t offset, const uint64_t* tags, std::string& error);
  bool writeBlock(const std::vector<FlowKey>& fresh, std::vector<uint32_t>& present, uint32_t packets, uint64_t offset,
                  uint64_t length, uint64_t first_ns, uint64_t last_ns, std::string& error);
  uint32_t numberOf(const FlowKey& key, uint64_t hash, bool& added);
  void sortPresent(std::vector<uint32_t>& present);
  void growTable();

  const uint32_t linktype_;
  probe::Decoder decoder_;
  const bool both_;
  int fd_ = -1;
  uint64_t bytes_ = 0;
  // The segment's flows, numbered in order of appearance: their keys, and an
  // open-addressing table (linear probing, a power of two at most half full)
  // of (low 32 bits of the key's hash, number + 1). No allocation per flow:
  // a std::unordered_map here cost most of the recorder's time.
  struct Slot {
    uint32_t hash_lo;
    uint32_t number1;
  };
  std::vector<FlowKey> keys_;
  std::vector<Slot> table_;
  std::vector<uint32_t> last_block_;  // per flow number: the block it was last seen in (+1)
  // With flow tags: per flow cache entry, the segment flow number (+1) of
  // the flow in it, valid while `segment` is the current one.
  struct EntrySlot {
    uint32_t number1;
    uint32_t segment;
  };
  std::vector<EntrySlot> by_entry_;
  uint32_t segment_ = 0;
  uint32_t block_ = 0;
  std::vector<uint8_t> buf_;
  bool block_ready_ = false;  // buf_ holds a block addBlock() built, not yet written
  std::vector<FlowKey> block_keys_;     // the block's packets' keys, in order (reused)
  std::vector<uint64_t> block_hashes_;  // and their hashes
  std::vector<uint64_t> present_bits_;  // sortPresent()'s bitmap (reused)
};

}  // namespace flowfold::recorder
