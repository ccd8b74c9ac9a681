#include "spool_record.h"

#include <array>
#include <cstring>

namespace flowfold::mysql {

namespace {

constexpr std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = makeCrcTable();

// Layout offsets (bytes). Explicit little-endian stores keep the file format
// independent of struct padding and of the host.
enum : size_t {
  kSrcAddr = 0,
  kDstAddr = 16,
  kSrcPort = 32,
  kDstPort = 34,
  kVlan = 36,
  kInnerVlan = 38,
  kIngressIf = 40,
  kProtocol = 42,
  kIpVersion = 43,
  kPackets = 44,
  kOctets = 52,
  kFirstMs = 60,
  kLastMs = 68,
  kMpls = 76,
  kSrcMac = 80,
  kDstMac = 86,
  kTcpFlags = 92,
  kTos = 93,
  kMinTtl = 94,
  kMaxTtl = 95,
  kEndReason = 96,
  // 97..99 zero
  kDomain = 100,
  kFlowId = 104,  // format 2; format 1 had its CRC here and ended at 108
  kCrcV2 = 112,   // format 2 ended at 116
  kAppMaster = 112,  // format 3: the DPI label (AppLabel)
  kApp = 114,
  kAppCategory = 116,
  kAppFlags = 118,
  kServerName = 119,  // 80 bytes, NUL-padded
  // 199 zero
  kCrc = 200,
  kCrcV1 = 104,
};
static_assert(kCrc + 4 == kSpoolRecordSize);
static_assert(kCrcV1 + 4 == spoolRecordSize(1));
static_assert(kCrcV2 + 4 == spoolRecordSize(2));
static_assert(kServerName + sizeof(AppLabel::server_name) < kCrc);

template <typename T>
void put(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}
template <typename T>
T get(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

}  // namespace

namespace {

uint32_t crc32cTable(uint32_t c, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) c = kCrcTable[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
// SSE 4.2's CRC32 instruction computes CRC-32C itself, eight bytes a step:
// a spool record's checksum was a third of the export thread's time per
// flow with the table (bench/PROFILE.md, "DPI"). Chosen at run time, so the
// package runs on any x86-64.
[[gnu::target("sse4.2")]] uint32_t crc32cHardware(uint32_t c, const uint8_t* data, size_t size) {
  uint64_t c64 = c;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v;
    std::memcpy(&v, data + i, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
  }
  c = static_cast<uint32_t>(c64);
  for (; i < size; ++i) c = __builtin_ia32_crc32qi(c, data[i]);
  return c;
}
const bool kHardwareCrc = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t crc32c(const uint8_t* data, size_t size) {
#if defined(__x86_64__)
  if (kHardwareCrc) return crc32cHardware(0xFFFFFFFFu, data, size) ^ 0xFFFFFFFFu;
#endif
  return crc32cTable(0xFFFFFFFFu, data, size) ^ 0xFFFFFFFFu;
}

void encodeSpoolRecord(const FlowRecord& r, uint32_t observation_domain, uint8_t* out) {
  std::memset(out, 0, kSpoolRecordSize);
  const FlowKey& k = r.key;
  std::memcpy(out + kSrcAddr, k.src_addr.data(), 16);
  std::memcpy(out + kDstAddr, k.dst_addr.data(), 16);
  put<uint16_t>(out + kSrcPort, k.src_port);
  put<uint16_t>(out + kDstPort, k.dst_port);
  put<uint16_t>(out + kVlan, k.vlan_id);
  put<uint16_t>(out + kInnerVlan, k.inner_vlan_id);
  put<uint16_t>(out + kIngressIf, k.ingress_if);
  out[kProtocol] = k.protocol;
  out[kIpVersion] = k.ip_version;
  put<uint64_t>(out + kPackets, r.packets);
  put<uint64_t>(out + kOctets, r.octets);
  put<uint64_t>(out + kFirstMs, r.first_ms);
  put<uint64_t>(out + kLastMs, r.last_ms);
  put<uint32_t>(out + kMpls, r.mplsTopLabel());
  std::memcpy(out + kSrcMac, r.src_mac.data(), 6);
  std::memcpy(out + kDstMac, r.dst_mac.data(), 6);
  out[kTcpFlags] = r.tcp_flags;
  out[kTos] = r.tos;
  out[kMinTtl] = r.min_ttl;
  out[kMaxTtl] = r.max_ttl;
  out[kEndReason] = static_cast<uint8_t>(r.end_reason);
  put<uint32_t>(out + kDomain, observation_domain);
  put<uint64_t>(out + kFlowId, r.flow_id);
  put<uint16_t>(out + kAppMaster, r.app.master);
  put<uint16_t>(out + kApp, r.app.app);
  put<uint16_t>(out + kAppCategory, r.app.category);
  out[kAppFlags] = r.app.flags;
  std::memcpy(out + kServerName, r.app.server_name.data(), r.app.serverNameLength());
  put<uint32_t>(out + kCrc, crc32c(out, kCrc));
}

bool decodeSpoolRecord(const uint8_t* in, SpooledFlow& out, uint32_t version) {
  const size_t crc_at = version == 1 ? kCrcV1 : version == 2 ? kCrcV2 : kCrc;
  if (get<uint32_t>(in + crc_at) != crc32c(in, crc_at)) return false;
  FlowRecord& r = out.record;
  FlowKey& k = r.key;
  std::memcpy(k.src_addr.data(), in + kSrcAddr, 16);
  std::memcpy(k.dst_addr.data(), in + kDstAddr, 16);
  k.src_port = get<uint16_t>(in + kSrcPort);
  k.dst_port = get<uint16_t>(in + kDstPort);
  k.vlan_id = get<uint16_t>(in + kVlan);
  k.inner_vlan_id = get<uint16_t>(in + kInnerVlan);
  k.ingress_if = get<uint16_t>(in + kIngressIf);
  k.protocol = in[kProtocol];
  k.ip_version = in[kIpVersion];
  r.packets = get<uint64_t>(in + kPackets);
  r.octets = get<uint64_t>(in + kOctets);
  r.first_ms = get<uint64_t>(in + kFirstMs);
  r.last_ms = get<uint64_t>(in + kLastMs);
  // The spool keeps what the table keeps, the top label's value (not its
  // TC and S bits, nor the entries below it).
  const uint32_t label = get<uint32_t>(in + kMpls) & 0xFFFFF;
  if (label != 0) r.mpls_stack[0] = label << 4 | kMplsEntryPresent;
  std::memcpy(r.src_mac.data(), in + kSrcMac, 6);
  std::memcpy(r.dst_mac.data(), in + kDstMac, 6);
  r.tcp_flags = in[kTcpFlags];
  r.tos = in[kTos];
  r.min_ttl = in[kMinTtl];
  r.max_ttl = in[kMaxTtl];
  r.end_reason = static_cast<FlowEndReason>(in[kEndReason]);
  out.observation_domain = get<uint32_t>(in + kDomain);
  r.flow_id = version == 1 ? 0 : get<uint64_t>(in + kFlowId);
  r.app = AppLabel{};
  if (version >= 3) {
    r.app.master = get<uint16_t>(in + kAppMaster);
    r.app.app = get<uint16_t>(in + kApp);
    r.app.category = get<uint16_t>(in + kAppCategory);
    r.app.flags = in[kAppFlags];
    std::memcpy(r.app.server_name.data(), in + kServerName, r.app.server_name.size() - 1);
  }
  return true;
}

}  // namespace flowfold::mysql
