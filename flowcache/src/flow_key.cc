#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/flow_record.h"

#include <arpa/inet.h>
#include <sys/random.h>

#include <chrono>
#include <cstdlib>
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
// A secret per process: the packets that choose the keys come from a
// network that may be hostile, and with a fixed, public hash a sender could
// craft addresses and ports that all land on one probe chain of the flow
// table (each new flow then scans the whole chain). FLOWFOLD_HASH_SEED fixes
// it for reproducible benchmarks and tests.
uint64_t initialSeed() {
  if (const char* fixed = std::getenv("FLOWFOLD_HASH_SEED"); fixed != nullptr && *fixed != '\0')
    return std::strtoull(fixed, nullptr, 0);
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           reinterpret_cast<uintptr_t>(&seed);
  }
  return seed;
}
uint64_t g_seed = initialSeed();
}  // namespace

void setFlowHashSeed(uint64_t seed) { g_seed = seed; }
uint64_t flowHashSeed() { return g_seed; }

uint64_t hashFlowKey(const FlowKey& key) {
  const auto* p = reinterpret_cast<const uint8_t*>(&key);
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ g_seed;
  for (size_t i = 0; i + 8 <= sizeof(FlowKey); i += 8) {
    h = (h ^ load64(p + i)) * 0x100000001b3ULL;
    h = (h << 29) | (h >> 35);
  }
  uint32_t tail;
  std::memcpy(&tail, p + 40, sizeof tail);
  h ^= tail;
  return mix(h + g_seed);
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
