#include "flowfold/exporters/local_networks.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace flowfold {

namespace {
uint64_t load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}
uint64_t maskOf(unsigned bits) { return bits == 0 ? 0 : bits >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - bits); }
}  // namespace

const char* toString(FlowDirection direction) {
  switch (direction) {
    case FlowDirection::kIngress: return "ingress";
    case FlowDirection::kEgress: return "egress";
    case FlowDirection::kNone: break;
  }
  return "";
}

std::string LocalNetworks::add(std::string_view cidr) {
  const std::string text(cidr);
  const size_t slash = text.find('/');
  const std::string addr = text.substr(0, slash);
  uint8_t bytes[16];
  int family = 0;
  if (inet_pton(AF_INET, addr.c_str(), bytes) == 1) {
    family = 4;
  } else if (inet_pton(AF_INET6, addr.c_str(), bytes) == 1) {
    family = 6;
  } else {
    return "'" + text + "' is not an IPv4 or IPv6 network (ADDRESS/LENGTH, e.g. 192.0.2.0/24 or 2001:db8::/32)";
  }
  const unsigned max_len = family == 4 ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string::npos) {
    const char* first = text.data() + slash + 1;
    const char* last = text.data() + text.size();
    const auto [end, ec] = std::from_chars(first, last, len);
    if (first == last || ec != std::errc() || end != last || len > max_len)
      return "'" + text + "': the prefix length must be a number from 0 to " + std::to_string(max_len);
  }
  char canonical[INET6_ADDRSTRLEN];
  if (family == 4) {
    const uint32_t a = uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 | uint32_t{bytes[2]} << 8 | bytes[3];
    const uint32_t mask = static_cast<uint32_t>(maskOf(len) >> 32);
    if ((a & ~mask) != 0) {
      const uint32_t n = htonl(a & mask);
      inet_ntop(AF_INET, &n, canonical, sizeof canonical);
      return "'" + text + "' has host bits set below /" + std::to_string(len) + " (the network is " + canonical + "/" +
             std::to_string(len) + ")";
    }
    v4_.push_back({a, mask});
  } else {
    const uint64_t hi = load64(bytes), lo = load64(bytes + 8);
    const uint64_t mhi = maskOf(len), mlo = len > 64 ? maskOf(len - 64) : 0;
    if ((hi & ~mhi) != 0 || (lo & ~mlo) != 0) {
      uint8_t net[16];
      for (int i = 0; i < 8; ++i) {
        net[i] = static_cast<uint8_t>((hi & mhi) >> (56 - 8 * i));
        net[8 + i] = static_cast<uint8_t>((lo & mlo) >> (56 - 8 * i));
      }
      inet_ntop(AF_INET6, net, canonical, sizeof canonical);
      return "'" + text + "' has host bits set below /" + std::to_string(len) + " (the network is " + canonical + "/" +
             std::to_string(len) + ")";
    }
    v6_.push_back({hi, lo, mhi, mlo});
  }
  inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes, canonical, sizeof canonical);
  text_.push_back(std::string(canonical) + "/" + std::to_string(len));
  return {};
}

bool LocalNetworks::contains(const std::array<uint8_t, 16>& addr, uint8_t ip_version) const {
  if (ip_version == 6) {
    const uint64_t hi = load64(addr.data()), lo = load64(addr.data() + 8);
    for (const V6& n : v6_)
      if ((hi & n.mask_hi) == n.net_hi && (lo & n.mask_lo) == n.net_lo) return true;
    return false;
  }
  const uint32_t a = uint32_t{addr[0]} << 24 | uint32_t{addr[1]} << 16 | uint32_t{addr[2]} << 8 | addr[3];
  for (const V4& n : v4_)
    if ((a & n.mask) == n.net) return true;
  return false;
}

}  // namespace flowfold
