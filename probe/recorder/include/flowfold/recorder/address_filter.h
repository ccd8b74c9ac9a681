#pragma once
// A closed segment's address filter: a Bloom filter of the 32-bit words of
// every address in its index (an IPv4 address is one word, an IPv6 address
// four), so that `flowfold extract` with a filter that tests addresses
// (`host A and port P`) passes over the segments none of whose flows can
// match without reading their index. Written by the recorder's thread when
// the segment is closed; a segment still being written, or one whose
// recorder was killed, has none and is searched through its index.
//
// `flowfold-SEQ-STREAM-START.adf` beside its `.pcap`. Format (host byte
// order, x86-64): a 40-byte header ("FFADF001", u32 lines, u32 flags,
// u64 words inserted, u64 the segment bytes its index covers, u64 the
// index's blocks), then `lines`
// lines of 64 bytes, then the 8-byte trailer "FFADFEND",
// written last: a file cut short has none and is not used.
// A word sets 3 bits of one line (a blocked Bloom filter: a lookup reads
// one line). About 8 bits per word: a word not in the segment is taken for
// one in about 3 % of lookups, and the segment is then searched as without
// a filter. flags bit 0: the index holds keys that are not IP flows' (the
// all-zero key of ARP and other packets of no flow), which no word stands for.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flowfold/flowcache/flow_key.h"

namespace flowfold::recorder {

inline constexpr char kAddressFilterMagic[8] = {'F', 'F', 'A', 'D', 'F', '0', '0', '1'};
inline constexpr char kAddressFilterTrailer[8] = {'F', 'F', 'A', 'D', 'F', 'E', 'N', 'D'};
inline constexpr size_t kAddressFilterHeaderSize = 40;
inline constexpr size_t kAddressFilterLineBytes = 64;
inline constexpr uint32_t kAddressFilterNonIpKeys = 1;

/// "…/flowfold-…-START.pcap" -> "…/flowfold-…-START.adf".
std::string addressFilterPathOf(const std::string& segment_path);

/// An address word as the filter holds it: the 4 bytes as they lie in the
/// packet (and in FlowKey), loaded in host order.
uint32_t addressWord(const uint8_t* bytes);

/// The filter of a set of keys, built in memory.
class AddressFilterBuilder {
 public:
  /// Sized for these keys (8 bits a word, at least one line).
  explicit AddressFilterBuilder(std::span<const FlowKey> keys);
  bool mayHold(uint32_t word) const;
  /// Writes the file (created, never through a link or over a file);
  /// false and `error` otherwise (a partial file is removed).
  bool write(const std::string& path, uint64_t indexed_end, uint64_t index_blocks, std::string& error) const;
  uint64_t fileBytes() const {
    return kAddressFilterHeaderSize + uint64_t{lines_} * kAddressFilterLineBytes + sizeof kAddressFilterTrailer;
  }

 private:
  void setBits(uint64_t hash);

  std::vector<uint64_t> bits_;  // lines * 8 words
  uint32_t lines_ = 1;
  uint32_t flags_ = 0;
  uint64_t words_ = 0;
};

/// What a segment's filter says of some words.
struct AddressFilterAnswer {
  std::vector<bool> held;     // per word asked: it may be in the segment
  bool may_hold_one = false;  // one of the words may be
  bool non_ip_keys = false;   // the index holds keys no word stands for
  uint64_t indexed_end = 0;   // the segment bytes its index covers
  uint64_t index_blocks = 0;  // in that index
};

/// Asks a segment's filter about each of `words`, reading its header,
/// trailer and one line per word; nullopt when the file is missing, cut short or not
/// one (the segment is then searched through its index).
std::optional<AddressFilterAnswer> askAddressFilter(const std::string& path, std::span<const uint32_t> words);

}  // namespace flowfold::recorder
