#pragma once
// The monitored ("local") networks (`local_networks:`, --local-networks) and
// the direction of a flow relative to them, exported as flowDirection (IANA
// element 61: 0 ingress, 1 egress), NetFlow v9 DIRECTION (61) and
// `direction` in text, JSON and MySQL.
//
// Direction is computed by each exporter from the record's addresses, not in
// the packet path: it costs nothing when unset and does not touch the flow
// cache. A flow is
//   - egress  (1) when its source is local and its destination is not,
//   - ingress (0) when its destination is local and its source is not,
//   - without a direction otherwise (local to local, remote to remote): IANA
//     defines no value for those, so the record carries no flowDirection
//     (it goes out in the template without it) and text/JSON/MySQL leave it
//     out (MySQL: NULL).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowfold/flowcache/flow_key.h"

namespace flowfold {

enum class FlowDirection : uint8_t { kIngress = 0, kEgress = 1, kNone = 0xFF };

/// "ingress", "egress" or "" (no direction).
const char* toString(FlowDirection direction);

class LocalNetworks {
 public:
  /// Adds one CIDR ("10.0.0.0/8", "2001:db8::/32"; a bare address is one
  /// host). Returns an error message (empty on success): not an address, a
  /// bad prefix length, or host bits set below the prefix.
  std::string add(std::string_view cidr);

  bool empty() const { return v4_.empty() && v6_.empty(); }
  size_t size() const { return v4_.size() + v6_.size(); }
  /// The prefixes as written back ("10.0.0.0/8"), in the order added.
  const std::vector<std::string>& text() const { return text_; }

  /// addr as in FlowKey: IPv4 in the first 4 octets.
  bool contains(const std::array<uint8_t, 16>& addr, uint8_t ip_version) const;

  FlowDirection direction(const FlowKey& key) const {
    if (empty()) return FlowDirection::kNone;
    const bool src = contains(key.src_addr, key.ip_version);
    const bool dst = contains(key.dst_addr, key.ip_version);
    if (src == dst) return FlowDirection::kNone;
    return src ? FlowDirection::kEgress : FlowDirection::kIngress;
  }

 private:
  struct V4 {
    uint32_t net, mask;
  };
  struct V6 {
    uint64_t net_hi, net_lo, mask_hi, mask_lo;
  };
  std::vector<V4> v4_;
  std::vector<V6> v6_;
  std::vector<std::string> text_;
};

}  // namespace flowfold
