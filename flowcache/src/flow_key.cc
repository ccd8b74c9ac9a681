#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/flow_record.h"

#include <arpa/inet.h>

#include <utility>

namespace flowfold {

namespace {
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// The 64-bit finaliser of MurmurHash3 / splitmix64: cheap and well mixed.
inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}
}  // namespace

uint64_t hashFlowKey(const FlowKey& key) {
  const auto* p = reinterpret_cast<const uint8_t*>(&key);
  uint64_t h = 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i + 8 <= sizeof(FlowKey); i += 8) {
    h = (h ^ load64(p + i)) * 0x100000001b3ULL;
    h = (h << 29) | (h >> 35);
  }
  uint32_t tail;
  std::memcpy(&tail, p + 40, sizeof tail);
  h ^= tail;
  return mix(h);
}

uint64_t symmetricFlowHash(const FlowKey& key) {
  // Order the two endpoints, then hash: (a, b) and (b, a) give one key.
  FlowKey k = key;
  if (k.protocol == 1 || k.protocol == 58) k.src_port = k.dst_port = 0;  // echo request and reply together
  const int by_addr = std::memcmp(k.src_addr.data(), k.dst_addr.data(), k.src_addr.size());
  if (by_addr > 0 || (by_addr == 0 && k.src_port > k.dst_port)) {
    std::swap(k.src_addr, k.dst_addr);
    std::swap(k.src_port, k.dst_port);
  }
  return hashFlowKey(k);
}

std::string formatAddress(const std::array<uint8_t, 16>& addr, uint8_t ip_version) {
  char buf[INET6_ADDRSTRLEN];
  const int family = ip_version == 6 ? AF_INET6 : AF_INET;
  if (!inet_ntop(family, addr.data(), buf, sizeof buf)) return "?";
  return buf;
}

const char* toString(FlowEndReason reason) {
  switch (reason) {
    case FlowEndReason::kIdleTimeout: return "idle";
    case FlowEndReason::kActiveTimeout: return "active";
    case FlowEndReason::kEndOfFlow: return "end";
    case FlowEndReason::kForcedEnd: return "forced";
    case FlowEndReason::kLackOfResources: return "evicted";
  }
  return "unknown";
}

}  // namespace flowfold
