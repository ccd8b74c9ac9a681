// fuzz_decoder: frames of one link type through Decoder::decode().
//
// Input layout:
//   byte 0   low 4 bits: link type (kLinkTypes below); high 4 bits: fragment
//            table size (4 << n entries, small so eviction is exercised) and
//            the time step between packets
//   byte 1   caplen / wirelen split (see splitLengths); its low 6 bits
//            modulo 3 also pick the tunnel mode (outer, inner, both)
//   rest     one or more frames separated by kSeparator, all decoded by the
//            same Decoder (so later fragments meet the first fragments
//            seen before them)
//
// Each frame is copied into a heap block of exactly caplen bytes, so ASan
// reports any read past the captured length. Checked after every frame:
// packets == decoded + skipped(), the status agrees with the counter that
// moved, and a decoded packet carries a well-formed key. A second decoder
// with the common Ethernet path off (every frame walked layer by layer) must
// return the same status, packet and counters for every frame.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "flowfold/probe/decoder.h"
#include "fuzz_util.h"

namespace {

using flowfold::probe::DecodeCounters;
using flowfold::probe::DecodeStatus;
using flowfold::probe::Decoder;
using flowfold::probe::FragmentTableConfig;
using flowfold::probe::DecodedPacket;
namespace dlt = flowfold::probe::dlt;

constexpr int kLinkTypes[] = {
    dlt::kEn10mb, dlt::kLinuxSll, dlt::kLinuxSll2, dlt::kRaw,  dlt::kLinktypeRaw,
    dlt::kIpv4,   dlt::kIpv6,     dlt::kNull,      dlt::kLoop, dlt::kEn10mb,
    dlt::kEn10mb, dlt::kLinuxSll, dlt::kRaw,       dlt::kNull, dlt::kEn10mb,
    147 /* unsupported: every packet must count unsupported_link */};
static_assert(sizeof(kLinkTypes) / sizeof(kLinkTypes[0]) == 16);

// Splits frames: chosen to be unlikely inside real headers.
constexpr uint8_t kSeparator[] = {0xf0, 0x0d, 0xfa, 0xce};


// byte 1: bits 7-6 select the mode, bits 5-0 an amount.
//   0: caplen = wirelen = frame length
//   1: wirelen = frame length + amount * 977 (snap length cut the frame)
//   2: caplen = frame length - amount (the copy is shorter still), wirelen = frame length
//   3: wirelen < caplen (a broken capture file), or huge
void splitLengths(uint8_t mode_byte, size_t frame_len, uint32_t& caplen, uint32_t& wirelen) {
  const uint32_t amount = mode_byte & 0x3f;
  caplen = static_cast<uint32_t>(frame_len);
  wirelen = caplen;
  switch (mode_byte >> 6) {
    case 0:
      break;
    case 1:
      wirelen = caplen + amount * 977;
      break;
    case 2:
      caplen = amount >= caplen ? 0 : caplen - amount;
      break;
    default:
      wirelen = (amount & 1) ? 0xffffffffu : caplen / 2;
      break;
  }
}

void checkDecoded(const DecodedPacket& info) {
  const auto& k = info.key;
  FUZZ_CHECK(k.ip_version == 4 || k.ip_version == 6);
  FUZZ_CHECK(k.ingress_if == 0);
  if (k.ip_version == 4) {
    for (size_t i = 4; i < 16; ++i) FUZZ_CHECK(k.src_addr[i] == 0 && k.dst_addr[i] == 0);
    FUZZ_CHECK(info.ip_length >= 20);
  } else {
    FUZZ_CHECK(info.ip_length >= 40);
  }
  FUZZ_CHECK(k.vlan_id <= 0x0fff && k.inner_vlan_id <= 0x0fff);
  // A stack entry is present or all zero, and entries are kept top down.
  for (uint32_t e : info.mpls_stack) FUZZ_CHECK(e == 0 || (e >> 24) == 1);
  for (int i = 1; i < 3; ++i) FUZZ_CHECK(info.mpls_stack[i] == 0 || info.mpls_stack[i - 1] != 0);
  if (!info.has_mpls) FUZZ_CHECK(info.mpls_stack[0] == 0);
  if (k.protocol != 6) FUZZ_CHECK(info.tcp_flags == 0);
  if (k.protocol == 1 || k.protocol == 58) FUZZ_CHECK(k.src_port == 0);
}

void checkCounters(const DecodeCounters& c) {
  FUZZ_CHECK(c.packets == c.decoded + c.skipped());
  FUZZ_CHECK(c.fragments_unmatched <= c.fragments_later);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int link = kLinkTypes[data[0] & 0x0f];
  const uint32_t frag_capacity = 4u << ((data[0] >> 4) & 0x7);
  const uint64_t step_ms = (data[0] & 0x80) ? 20000 : 1;  // crosses the 30 s fragment timeout
  const uint8_t mode = data[1];
  data += 2;
  size -= 2;

  const auto tunnels = static_cast<flowfold::probe::TunnelMode>((mode & 0x3f) % 3);
  Decoder decoder(link, FragmentTableConfig{frag_capacity, 30000}, tunnels);
  Decoder walk_only(link, FragmentTableConfig{frag_capacity, 30000}, tunnels);
  walk_only.setCommonPath(false);
  const bool supported = Decoder::supportsLinkType(link);
  uint64_t ts_ms = 1'700'000'000'000;
  size_t pos = 0;
  int frames = 0;
  while (pos <= size && frames < 64) {
    const uint8_t* found = size - pos >= sizeof(kSeparator)
                               ? static_cast<const uint8_t*>(memmem(data + pos, size - pos, kSeparator,
                                                                    sizeof(kSeparator)))
                               : nullptr;
    const size_t end = found ? static_cast<size_t>(found - data) : size;
    uint32_t caplen = 0, wirelen = 0;
    splitLengths(mode, end - pos, caplen, wirelen);
    // Exactly caplen bytes on the heap: any over-read is an ASan report.
    std::unique_ptr<uint8_t[]> frame(new uint8_t[caplen == 0 ? 1 : caplen]);
    if (caplen != 0) std::memcpy(frame.get(), data + pos, caplen);
    const uint8_t* frame_data = caplen == 0 ? frame.get() + 1 : frame.get();

    const DecodeCounters before = decoder.counters();
    DecodedPacket info;
    DecodedPacket inner;
    const DecodeStatus status = decoder.decode(frame_data, caplen, wirelen, ts_ms, info, &inner);
    const DecodeCounters& after = decoder.counters();
    checkCounters(after);
    {
      DecodedPacket walked;
      DecodedPacket walked_inner;
      const DecodeStatus walked_status = walk_only.decode(frame_data, caplen, wirelen, ts_ms, walked, &walked_inner);
      FUZZ_CHECK(walked_status == status);
      if (status == DecodeStatus::kOk) FUZZ_CHECK(walked == info);
      FUZZ_CHECK(walk_only.counters() == after);
    }
    FUZZ_CHECK(after.packets == before.packets + 1);
    FUZZ_CHECK((status == DecodeStatus::kOk) == (after.decoded == before.decoded + 1));
    FUZZ_CHECK(after.decoded + after.skipped() == before.decoded + before.skipped() + 1);
    if (!supported) FUZZ_CHECK(after.unsupported_link == before.unsupported_link + 1);
    if (status == DecodeStatus::kOk) {
      checkDecoded(info);
      FUZZ_CHECK(info.tunnel_depth <= Decoder::kMaxTunnelDepth);
      if (tunnels != flowfold::probe::TunnelMode::kInner) FUZZ_CHECK(info.tunnel_depth == 0);
      if (tunnels == flowfold::probe::TunnelMode::kBoth && inner.tunnel_depth != 0) checkDecoded(inner);
    }
    // Skip reasons map onto statuses: the one that moved must agree.
#define FUZZ_REASON(name, st) \
    if (after.name != before.name) FUZZ_CHECK(status == DecodeStatus::st);
    FLOWFOLD_DECODER_SKIP_REASONS(FUZZ_REASON)
#undef FUZZ_REASON

    ++frames;
    ts_ms += step_ms;
    if (!found) break;
    pos = end + sizeof(kSeparator);
  }
  return 0;
}
