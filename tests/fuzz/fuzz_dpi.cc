// fuzz_dpi: bytes -> a sequence of IPv4 or IPv6 TCP/UDP packets over a small
// set of conversations (both directions, well-known ports where nDPI has
// dissectors: DNS, HTTP, TLS, QUIC, NTP, SIP, DHCP, STUN, ...), whose
// payloads are the fuzzer's bytes, folded into a FlowCache and fed to the
// DPI inspector (probe/dpi) as the packet loop does; the clock jumps, so
// flows expire mid-inspection; a final flushAll().
//
// Invariants: no crash or sanitizer finding in nDPI's dissectors or the
// inspector; every record carries a label DPI made (inspected), but that of
// a flow ended by its first packet (FIN or RST with tcp_end_timeout 0: it
// leaves the cache before it can be inspected); after the flush the
// inspector holds no conversation; settled + guessed + failures =
// conversations.

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "flowfold/dpi/inspector.h"
#include "flowfold/flowcache/flow_cache.h"
#include "fuzz_util.h"

namespace {

using flowfold::FlowCache;
using flowfold::FlowCacheOptions;
using flowfold::FlowKey;
using flowfold::FlowRecord;
using flowfold::TimedCachePacket;
using flowfold::dpi::FlowInspector;

constexpr uint16_t kPorts[] = {53, 80, 443, 123, 5060, 67, 3478, 1900, 5353, 8080, 22, 25, 161, 40000};

struct Packet {
  TimedCachePacket info;
  std::vector<uint8_t> bytes;  // from the IP header
};

void put16(std::vector<uint8_t>& p, size_t at, uint16_t v) {
  p[at] = static_cast<uint8_t>(v >> 8);
  p[at + 1] = static_cast<uint8_t>(v);
}

Packet makePacket(FuzzedDataProvider& in, uint64_t ts_ms) {
  const bool v6 = in.ConsumeBool();
  const bool tcp = in.ConsumeBool();
  const auto client = in.ConsumeIntegralInRange<uint8_t>(1, 4);
  const uint16_t server_port = kPorts[in.ConsumeIntegralInRange<size_t>(0, std::size(kPorts) - 1)];
  const uint16_t client_port = static_cast<uint16_t>(30000 + client);
  const bool reply = in.ConsumeBool();
  const uint8_t flags = tcp ? in.ConsumeIntegral<uint8_t>() : 0;
  const std::vector<uint8_t> payload = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 1400));

  Packet p;
  FlowKey& k = p.info.key;
  k.ip_version = v6 ? 6 : 4;
  k.protocol = tcp ? 6 : 17;
  std::array<uint8_t, 16> a{}, b{};
  if (v6) {
    a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, client};
    b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77};
  } else {
    a = {10, 0, 0, client};
    b = {192, 0, 2, 7};
  }
  k.src_addr = reply ? b : a;
  k.dst_addr = reply ? a : b;
  k.src_port = reply ? server_port : client_port;
  k.dst_port = reply ? client_port : server_port;
  p.info.tcp_flags = flags;
  p.info.ttl = 64;
  p.info.ts_ms = ts_ms;

  const size_t l3 = v6 ? 40 : 20, l4 = tcp ? 20 : 8;
  std::vector<uint8_t>& bytes = p.bytes;
  bytes.assign(l3 + l4 + payload.size(), 0);
  if (v6) {
    bytes[0] = 0x60;
    put16(bytes, 4, static_cast<uint16_t>(l4 + payload.size()));
    bytes[6] = k.protocol;
    bytes[7] = 64;
    std::copy(k.src_addr.begin(), k.src_addr.end(), bytes.begin() + 8);
    std::copy(k.dst_addr.begin(), k.dst_addr.end(), bytes.begin() + 24);
  } else {
    bytes[0] = 0x45;
    put16(bytes, 2, static_cast<uint16_t>(bytes.size()));
    bytes[8] = 64;
    bytes[9] = k.protocol;
    std::copy(k.src_addr.begin(), k.src_addr.begin() + 4, bytes.begin() + 12);
    std::copy(k.dst_addr.begin(), k.dst_addr.begin() + 4, bytes.begin() + 16);
  }
  put16(bytes, l3, k.src_port);
  put16(bytes, l3 + 2, k.dst_port);
  if (tcp) {
    bytes[l3 + 12] = 0x50;
    bytes[l3 + 13] = flags;
  } else {
    put16(bytes, l3 + 4, static_cast<uint16_t>(l4 + payload.size()));
  }
  std::copy(payload.begin(), payload.end(), bytes.begin() + static_cast<std::ptrdiff_t>(l3 + l4));
  p.info.ip_length = static_cast<uint32_t>(bytes.size());
  // Now and then the captured bytes are cut short, as a snap length does.
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) bytes.resize(in.ConsumeIntegralInRange<size_t>(0, bytes.size()));
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  FlowCacheOptions options;
  options.max_flows = in.ConsumeIntegralInRange<uint32_t>(1, 32);
  options.idle_timeout_ms = in.ConsumeIntegralInRange<uint64_t>(1, 60'000);
  options.active_timeout_ms = in.ConsumeIntegralInRange<uint64_t>(1, 120'000);
  options.tcp_end_timeout_ms = in.ConsumeIntegralInRange<uint64_t>(0, 10'000);
  FlowCache cache(options);
  // One inspector for the whole run: starting nDPI takes tens of
  // milliseconds, which would be nearly all of each input's time. Every
  // input leaves it empty (checked below), so inputs do not meet.
  static FlowInspector inspector;
  const flowfold::dpi::DpiCounters before = inspector.counters();
  cache.setLabeler(&inspector);

  std::vector<FlowRecord> records;
  uint64_t now = 1'700'000'000'000;
  while (in.remaining_bytes() > 0) {
    now += in.ConsumeIntegralInRange<uint64_t>(0, 20'000);
    const Packet p = makePacket(in, now);
    cache.update(p.info);
    if (cache.lastFlowInspecting())
      inspector.inspect(cache, p.info.key, p.bytes.empty() ? nullptr : p.bytes.data(), p.bytes.size(), now);
    cache.expire(now);
    records.insert(records.end(), cache.output().begin(), cache.output().end());
    cache.output().clear();
  }
  cache.flushAll();
  records.insert(records.end(), cache.output().begin(), cache.output().end());

  for (const FlowRecord& r : records) {
    const bool ended_at_once = options.tcp_end_timeout_ms == 0 && r.packets == 1 && (r.tcp_flags & 0x05) != 0;
    FUZZ_CHECK(r.app.inspected() || ended_at_once || inspector.counters().dpi_failures != before.dpi_failures);
  }
  FUZZ_CHECK_EQ(inspector.conversations(), size_t{0});
  const auto& c = inspector.counters();
  FUZZ_CHECK_EQ((c.dpi_settled - before.dpi_settled) + (c.dpi_guessed - before.dpi_guessed) +
                    (c.dpi_failures - before.dpi_failures),
                c.dpi_conversations - before.dpi_conversations);
  FUZZ_CHECK(c.dpi_unknown - before.dpi_unknown <= c.dpi_conversations - before.dpi_conversations);
  return 0;
}
