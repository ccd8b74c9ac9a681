#pragma once
// The compact coding the ring's index and flow log share: LEB128 varints
// (zigzag for signed deltas) and flow keys in as few bytes as their family
// needs (14 for a typical IPv4 key, 38 for IPv6, instead of 44).
//
// A key: u8 form (bit 0 IPv6, 1 vlan, 2 inner vlan, 3 ingress_if, 4 raw),
// then the raw 44-byte FlowKey (bit 4: a key the compact form cannot hold),
// or: u8 protocol, the two addresses (4 or 16 bytes each), u16 src_port,
// u16 dst_port (host order), and a varint for each of vlan, inner vlan and
// ingress_if whose bit is set.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "flowfold/flowcache/flow_key.h"

namespace flowfold::recorder {

inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

inline void putVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

void putKey(std::vector<uint8_t>& out, const FlowKey& key);

/// Reads coded fields from a bounded buffer; every read fails (false) rather
/// than pass its end.
class CodedReader {
 public:
  CodedReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool bytes(void* out, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  bool key(FlowKey& k);
  /// Steps over a key without decoding it: its coded bytes are [start, start + n).
  bool skipKey(const uint8_t*& start, size_t& n);
  bool done() const { return p_ == end_; }
  const uint8_t* position() const { return p_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace flowfold::recorder
