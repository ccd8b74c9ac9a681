#pragma once
// Remembers the transport ports of IP datagrams whose first fragment was
// seen, so the later fragments (which carry no transport header) can be
// accounted to the same flow. Bounded and allocation-free after construction:
// a set-associative array of fixed-size entries that expire by packet time.

#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace flowfold::probe {

// At namespace scope so that `= {}` default arguments work (a nested class
// with member initializers is incomplete inside its enclosing class).
struct FragmentTableConfig {
  uint32_t capacity = 4096;     ///< entries, rounded up to a power of two (>= 4)
  uint64_t timeout_ms = 30000;  ///< an entry older than this no longer matches
};

class FragmentTable {
 public:
  using Config = FragmentTableConfig;

  /// Identity of one fragmented datagram (RFC 791 / RFC 8200 reassembly key,
  /// plus the VLAN tags so overlapping private address spaces stay apart).
  /// Compared as bytes: keep it free of padding.
  struct Key {
    std::array<uint8_t, 16> src{};
    std::array<uint8_t, 16> dst{};
    uint32_t id = 0;         ///< IPv4 identification (16 bits) or IPv6 fragment identification
    uint16_t vlan_id = 0;
    uint16_t inner_vlan_id = 0;
    uint8_t protocol = 0;    ///< IPv4 protocol / next header of the IPv6 fragment header
    uint8_t ip_version = 0;
    std::array<uint8_t, 2> reserved{};
  };
  static_assert(sizeof(Key) == 44);
  static_assert(std::has_unique_object_representations_v<Key>);

  /// What the first fragment told about the datagram.
  struct Value {
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    uint8_t protocol = 0;  ///< upper-layer protocol (IPv6: after any extension headers)
  };

  static constexpr uint32_t kWays = 4;

  explicit FragmentTable(Config config = {});

  /// Records (or refreshes) a datagram. When the bucket is full the victim is
  /// a free or expired slot, else the oldest completed datagram, else the
  /// oldest live one; returns true only in that last case (a datagram whose
  /// later fragments may now go unmatched).
  bool insert(const Key& key, const Value& value, uint64_t now_ms);

  /// Looks a datagram up. An entry matches while |now - inserted| <=
  /// timeout_ms (a clock stepping back a little, as unordered file
  /// timestamps do, keeps it). `last_fragment` marks the datagram complete:
  /// it still matches stragglers (reordered middle fragments, duplicates)
  /// but is the first to give its slot up.
  bool find(const Key& key, uint64_t now_ms, Value& value, bool last_fragment = false);

  uint32_t capacity() const { return (bucket_mask_ + 1) * kWays; }

 private:
  struct Entry {
    Key key;
    Value value;
    bool used = false;
    bool complete = false;
    uint64_t ts_ms = 0;
  };

  bool live(const Entry& e, uint64_t now_ms) const {
    uint64_t age = now_ms >= e.ts_ms ? now_ms - e.ts_ms : e.ts_ms - now_ms;
    return e.used && age <= timeout_ms_;
  }
  // Eviction preference, lower first: free/expired, completed, live.
  int rank(const Entry& e, uint64_t now_ms) const {
    if (!live(e, now_ms)) return 0;
    return e.complete ? 1 : 2;
  }
  Entry* bucket(const Key& key) const;

  std::unique_ptr<Entry[]> entries_;
  uint32_t bucket_mask_;
  uint64_t timeout_ms_;
};

}  // namespace flowfold::probe
