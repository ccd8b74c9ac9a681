#pragma once
// What a compiled BPF filter can accept in the packets of a class of flows,
// found by following every path of its program over a packet whose bytes
// are known (those the class fixes), known per flow (the flow key's fields:
// addresses, ports, VLAN ids) or not known at all (what no index holds:
// TTL, flags, lengths, payload).
//
// `flowfold extract` decides from a flow's key alone whether the filter may
// match any of its packets, for millions of flows. The paths tell it
// exactly which flows may: those whose key fields pass every equality test
// of some path that accepts (a test on a byte no index holds is not a test
// of the flow: both of its branches are followed). Filters naming hosts
// ('host 10.1.2.3 and port 443', 'net 192.0.2.0/24') test an address on
// every accepting path: a flow whose addresses pass none of those tests is
// set aside without more ado, and an index block whose keys hold none of
// the tested bytes is not decoded.

#include <pcap/pcap.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace flowfold::probe {

/// The fields of a flow key a rebuilt packet holds.
enum KeyField : uint8_t {
  kSrcWord0 = 0,  // 0..3: the source address's 32-bit words (only 0 for IPv4)
  kDstWord0 = 4,  // 4..7: the destination's
  kSrcPort = 8,
  kDstPort = 9,  // also ICMP's type and code
  kOuterVlan = 10,
  kInnerVlan = 11,
  kProtocol = 12,  // for a class of several protocols
  kKeyFields = 13
};

/// A test a path passes: (field & mask) == value, the field as the packet
/// holds it (big-endian).
struct FieldTest {
  uint8_t field = 0;
  uint32_t mask = 0, value = 0;
  friend bool operator==(const FieldTest&, const FieldTest&) = default;
};

/// A packet as a filter will see it for a whole class of flows.
struct PacketTemplate {
  static constexpr size_t kNone = SIZE_MAX;
  enum Byte : uint8_t { kFixed, kKeyed, kUnkeyed };
  std::vector<uint8_t> bytes;
  std::vector<Byte> kind;                                           // per byte
  size_t field_offset[kKeyFields];  // kNone: not in this packet
  uint8_t field_size[kKeyFields] = {};  // 1, 2 or 4 bytes
  // IPv4: the byte of the header length, which packets with options have
  // larger: read as such only to find the transport header (ldx 4*([k]&0xf),
  // libpcap's code for ports); and from where a load at a fixed offset reads
  // bytes whose place that length moves (no key field then, not known).
  size_t header_length_byte = kNone, moved_from = kNone;
  // The length every packet of the class has at least (its headers): a
  // load past it reads a byte of some packets and rejects others.
  size_t known_length = 0;
  PacketTemplate() { std::fill_n(field_offset, kKeyFields, kNone); }
};

/// The paths of a filter that accept a packet of a template.
struct FilterPaths {
  /// Per accepting path, the key-field tests it passes (an empty list: a
  /// path that accepts whatever the key).
  std::vector<std::vector<FieldTest>> accepting;
  /// Whether a branch or the verdict depends on a byte no key holds: the
  /// rebuilt packet then does not decide for the flow.
  bool unkeyed = false;
};

/// nullopt when the program has more paths than are worth following.
std::optional<FilterPaths> followFilter(const bpf_program& program, const PacketTemplate& packet);

/// A flow's key fields, as the packet holds them.
struct KeyFields {
  uint32_t value[kKeyFields] = {};
};

/// Whether the fields pass every test of one of the accepting paths.
bool passesAPath(const FilterPaths& paths, const KeyFields& key);

/// Tests of an address's leading whole bytes such that every accepting
/// path passes one of them (a filter naming hosts), few and selective;
/// nullopt when some accepting path tests none.
std::optional<std::vector<FieldTest>> addressTests(const FilterPaths& paths);

}  // namespace flowfold::probe
