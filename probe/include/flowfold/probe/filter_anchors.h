#pragma once
// Which addresses a compiled BPF filter can accept, found by following
// every path of its program over a packet whose addresses (and other
// per-flow fields) are unknown.
//
// `flowfold extract` runs a filter on packets rebuilt from each flow's key:
// millions of runs on a large ring. Most filters people write name hosts or
// networks ('host 10.1.2.3 and port 443', 'net 192.0.2.0/24'): every path
// of their program that accepts passes a test of an address word against a
// constant. For such a filter, a flow whose addresses pass none of those
// tests cannot match, and is set aside without running the filter. A filter
// with a path that accepts without testing an address ('port 53', 'not host
// 10.1.2.3') gives no tests: every flow is asked, as before.

#include <pcap/pcap.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace flowfold::probe {

/// A test an accepting path passes: (word & mask) == value, where word is a
/// 32-bit word of an address as the packet holds it (big-endian): 0..3 the
/// source address's words (only 0 for IPv4), 4..7 the destination's.
struct AddressTest {
  uint8_t word = 0;
  uint32_t mask = 0, value = 0;
  friend bool operator==(const AddressTest&, const AddressTest&) = default;
};

/// A packet as a filter will see it for a whole class of flows: its bytes,
/// which of them differ from flow to flow (their value unknown), and the
/// offset of each address word (kNoWord when the packet has none there).
struct PacketTemplate {
  static constexpr size_t kNoWord = SIZE_MAX;
  std::vector<uint8_t> bytes;
  std::vector<bool> unknown;  // per byte
  size_t word_offset[8] = {kNoWord, kNoWord, kNoWord, kNoWord, kNoWord, kNoWord, kNoWord, kNoWord};
};

/// The address tests that every accepting path of `program` passes, one per
/// path (a packet of the template that the filter accepts passes at least
/// one of them; an empty list: it accepts none). nullopt when some path
/// accepts without testing an address, or the program has more paths than
/// are worth following (the caller then runs the filter on every flow).
std::optional<std::vector<AddressTest>> addressTests(const bpf_program& program, const PacketTemplate& packet);

/// Whether an address pair passes one of `tests` (addresses as FlowKey
/// holds them: 4 or 16 bytes in network order).
bool passesOne(const std::vector<AddressTest>& tests, const uint8_t* src, const uint8_t* dst, bool v6);

}  // namespace flowfold::probe
