#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/flow_record.h"
#include "flowfold/flowcache/wire.h"

#include <arpa/inet.h>
#include <sys/random.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <utility>

namespace flowfold {

namespace {
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
// 64 x 64 -> 128-bit multiply, folded (wyhash's "mum"): one instruction
// mixes two words completely.
__extension__ using Uint128 = unsigned __int128;  // g++ and clang on 64-bit targets
inline uint64_t mum(uint64_t a, uint64_t b) {
  const Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
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
// The seed, and six secret words derived from it (one per key word).
struct Secret {
  uint64_t seed;
  uint64_t word[6];
};
Secret makeSecret(uint64_t seed) {
  Secret s{seed, {}};
  uint64_t x = seed;
  for (uint64_t& w : s.word) w = x = splitmix64(x);
  return s;
}
Secret g_secret = makeSecret(initialSeed());
}  // namespace

void setFlowHashSeed(uint64_t seed) { g_secret = makeSecret(seed); }
uint64_t flowHashSeed() { return g_secret.seed; }

uint64_t hashFlowKey(const FlowKey& key) {
  // The key's 44 bytes as five words and a 4-byte tail, each masked with a
  // secret word, multiplied in three independent pairs (they run in
  // parallel, where a multiply-rotate chain would wait on each step), then
  // folded once more.
  static_assert(sizeof(FlowKey) == 44);
  const auto* p = reinterpret_cast<const uint8_t*>(&key);
  uint32_t tail;
  std::memcpy(&tail, p + 40, sizeof tail);
  const uint64_t* w = g_secret.word;
  const uint64_t a = mum(load64(p) ^ w[0], load64(p + 8) ^ w[1]);
  const uint64_t b = mum(load64(p + 16) ^ w[2], load64(p + 24) ^ w[3]);
  const uint64_t c = mum(load64(p + 32) ^ w[4], uint64_t{tail} ^ w[5]);
  return mum(a ^ b ^ 0x9E3779B97F4A7C15ULL, c ^ g_secret.seed ^ 0xD6E8FEB86659FD93ULL);
}

uint64_t symmetricFlowHash(const FlowKey& key) {
  // Each endpoint (address and port) is mixed on its own and the two are
  // added, which does not care which one is the source: no ordering of the
  // endpoints (a copy of the key, a byte compare, swaps) and one multiply
  // per endpoint. Only the sharding of --workers uses it, on the reader
  // thread, which is what bounds that mode's speed.
  static_assert(offsetof(FlowKey, dst_addr) == 16 && offsetof(FlowKey, src_port) == 32 &&
                    offsetof(FlowKey, dst_port) == 34 && offsetof(FlowKey, vlan_id) == 36 &&
                    offsetof(FlowKey, ip_version) == 43,
                "symmetricFlowHash reads the key by these offsets");
  const auto* p = reinterpret_cast<const uint8_t*>(&key);
  const uint64_t* w = g_secret.word;
  // ICMP echo request and reply together: their "ports" (type/code) differ.
  const bool icmp = key.protocol == kProtoIcmp || key.protocol == kProtoIcmpv6;
  const uint64_t src_port = icmp ? 0 : key.src_port;
  const uint64_t dst_port = icmp ? 0 : key.dst_port;
  const uint64_t src = mum(load64(p) ^ w[0], load64(p + 8) ^ w[1] ^ src_port);
  const uint64_t dst = mum(load64(p + 16) ^ w[0], load64(p + 24) ^ w[1] ^ dst_port);
  // VLANs, interface, protocol and IP version: the key's last 8 bytes.
  return mum((src + dst) ^ w[2], load64(p + 36) ^ w[3]);
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
