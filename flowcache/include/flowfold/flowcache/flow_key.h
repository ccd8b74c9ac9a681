#pragma once
// The identity of a flow: a fixed-size, trivially copyable struct that is
// hashed and compared as raw bytes (VPP style). IPv4 and IPv6 share one
// shape: an IPv4 address occupies the first 4 bytes of the 16-byte field and
// the remaining 12 bytes are zero.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace flowfold {

struct FlowKey {
  std::array<uint8_t, 16> src_addr{};
  std::array<uint8_t, 16> dst_addr{};
  // For ICMP/ICMPv6 src_port is 0 and dst_port is type*256+code, as NetFlow
  // exporters encode it (and as nfdump prints it as "type.code").
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint16_t vlan_id = 0;        // outer 802.1Q / 802.1ad VLAN id, 0 if untagged
  uint16_t inner_vlan_id = 0;  // inner (customer) VLAN id of a QinQ frame, else 0
  uint16_t ingress_if = 0;     // capture interface index (0 when reading a file)
  uint8_t protocol = 0;        // IP protocol number
  uint8_t ip_version = 0;      // 4 or 6

  bool isIPv6() const { return ip_version == 6; }
  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
  }
};

static_assert(sizeof(FlowKey) == 44, "FlowKey must stay packed: it is hashed as bytes");
static_assert(std::is_trivially_copyable_v<FlowKey>);
static_assert(std::has_unique_object_representations_v<FlowKey>,
              "FlowKey must have no padding: it is hashed and compared as bytes");

/// 64-bit hash of the key's bytes (fast, good avalanche; not cryptographic),
/// keyed with a random per-process seed so that traffic cannot be crafted to
/// collide in the flow table (environment FLOWFOLD_HASH_SEED fixes the seed).
uint64_t hashFlowKey(const FlowKey& key);
/// The seed in use, and a way to set it (before any table is filled).
uint64_t flowHashSeed();
void setFlowHashSeed(uint64_t seed);

/// A hash equal for both directions of a conversation (source and
/// destination swapped): shards the flows of one conversation to one worker.
uint64_t symmetricFlowHash(const FlowKey& key);

/// Textual address ("10.0.0.1", "2001:db8::1") of a key's source or destination.
std::string formatAddress(const std::array<uint8_t, 16>& addr, uint8_t ip_version);

}  // namespace flowfold
