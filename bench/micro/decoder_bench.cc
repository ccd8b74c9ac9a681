// Decoder micro-benchmarks: ns per packet (items_per_second = packets/s).
//
//  - three hand-built frames, decoded over and over (best case: every branch
//    predicted, the frame in L1): Ethernet/IPv4/TCP, 802.1Q/IPv6/UDP and
//    802.1ad+802.1Q (QinQ)/MPLS x2/IPv4/TCP;
//  - a mix: the first 100k packets of a flowgen capture, decoded in capture
//    order. The capture is $FLOWFOLD_BENCH_PCAP when set (pcap or pcapng, any
//    link type the decoder supports), otherwise flowgen (tests/tools/flowgen.c)
//    is built and run into /tmp/flowfold-micro/ at the first use.

#include <benchmark/benchmark.h>
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "flowfold/probe/decoder.h"

namespace {

using flowfold::probe::DecodeStatus;
using flowfold::probe::Decoder;
using flowfold::probe::DecodedPacket;
namespace dlt = flowfold::probe::dlt;

constexpr uint64_t kTsMs = 1'700'000'000'000ULL;

struct Frame {
  std::vector<uint8_t> bytes;
  uint32_t wirelen = 0;
};

class FrameBuilder {
 public:
  FrameBuilder& u8(uint8_t v) { b_.push_back(v); return *this; }
  FrameBuilder& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  FrameBuilder& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
  FrameBuilder& bytes(std::initializer_list<uint8_t> v) { b_.insert(b_.end(), v); return *this; }
  FrameBuilder& zeros(size_t n) { b_.insert(b_.end(), n, 0); return *this; }
  FrameBuilder& macs() {
    return bytes({0x00, 0x16, 0x3e, 0x01, 0x02, 0x03, 0x00, 0x50, 0x56, 0x04, 0x05, 0x06});
  }
  FrameBuilder& ipv4(uint16_t total_length, uint8_t protocol) {
    return u8(0x45).u8(0).u16(total_length).u16(0x1234).u16(0x4000).u8(64).u8(protocol).u16(0)
        .bytes({10, 1, 2, 3}).bytes({172, 16, 5, 6});
  }
  FrameBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
    return u16(sport).u16(dport).u32(1).u32(2).u8(0x50).u8(flags).u16(65535).u16(0).u16(0);
  }
  FrameBuilder& udp(uint16_t sport, uint16_t dport, uint16_t length) {
    return u16(sport).u16(dport).u16(length).u16(0);
  }
  std::vector<uint8_t> take() { return std::move(b_); }

 private:
  std::vector<uint8_t> b_;
};

Frame ethIpv4Tcp() {
  FrameBuilder b;
  b.macs().u16(0x0800).ipv4(1500, 6).tcp(40000, 443, 0x18);
  return {b.take(), 1514};
}

Frame vlanIpv6Udp() {
  FrameBuilder b;
  b.macs().u16(0x8100).u16(100).u16(0x86dd);
  b.u32(0x60000000).u16(8 + 1200).u8(17).u8(64)
      .bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
      .bytes({0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
  b.udp(5353, 53, 8 + 1200);
  return {b.take(), 14 + 4 + 40 + 8 + 1200};
}

Frame qinqMplsIpv4Tcp() {
  FrameBuilder b;
  b.macs().u16(0x88a8).u16(200).u16(0x8100).u16(300).u16(0x8847);
  b.u32(1000u << 12 | 64).u32(2000u << 12 | 1u << 8 | 64);  // two labels, S on the second
  b.ipv4(1500, 6).tcp(40000, 443, 0x10);
  return {b.take(), 14 + 8 + 8 + 1500};
}

void decodeOneFrame(benchmark::State& state, const Frame& frame) {
  Decoder decoder(dlt::kEn10mb);
  DecodedPacket info;
  const auto caplen = static_cast<uint32_t>(frame.bytes.size());
  if (decoder.decode(frame.bytes.data(), caplen, frame.wirelen, kTsMs, info) != DecodeStatus::kOk) {
    state.SkipWithError("the benchmark frame does not decode");
    return;
  }
  for (auto _ : state) {
    const uint8_t* data = frame.bytes.data();
    benchmark::DoNotOptimize(data);  // the decoder must not see a constant frame
    benchmark::DoNotOptimize(decoder.decode(data, caplen, frame.wirelen, kTsMs, info));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeEthIpv4Tcp(benchmark::State& state) { decodeOneFrame(state, ethIpv4Tcp()); }
void BM_DecodeVlanIpv6Udp(benchmark::State& state) { decodeOneFrame(state, vlanIpv6Udp()); }
void BM_DecodeQinqMplsIpv4Tcp(benchmark::State& state) { decodeOneFrame(state, qinqMplsIpv4Tcp()); }
BENCHMARK(BM_DecodeEthIpv4Tcp);
BENCHMARK(BM_DecodeVlanIpv6Udp);
BENCHMARK(BM_DecodeQinqMplsIpv4Tcp);

// ---------------------------------------------------------------- the mix

constexpr size_t kMixPackets = 100'000;

struct Capture {
  std::string error;  // non-empty: unusable
  int dlt = 0;
  std::vector<uint8_t> data;  // frames back to back
  struct Packet {
    size_t offset;
    uint32_t caplen, wirelen;
    uint64_t ts_ms;
  };
  std::vector<Packet> packets;
};

bool run(const std::string& command) {
  const int rc = std::system(command.c_str());
  return rc == 0;
}

// Builds flowgen and writes the capture unless it is there already.
std::string flowgenCapture(std::string& error) {
  const std::string dir = "/tmp/flowfold-micro";
  const std::string pcap = dir + "/flowgen-mix.pcap";
  struct stat st{};
  if (stat(pcap.c_str(), &st) == 0 && st.st_size > 0) return pcap;
  mkdir(dir.c_str(), 0755);
  const std::string src = std::string(FLOWFOLD_SOURCE_DIR) + "/tests/tools/flowgen.c";
  const std::string bin = dir + "/flowgen";
  // The `big` profile of bench/run.sh, cut to the packets used here.
  if (!run("cc -O2 -o " + bin + " " + src + " -lm") ||
      !run(bin + " -o " + pcap + ".tmp -n " + std::to_string(kMixPackets) +
           " -c 100000 -d 300 -S 128 -s 42") ||
      std::rename((pcap + ".tmp").c_str(), pcap.c_str()) != 0) {
    error = "could not build or run flowgen from " + src;
    return {};
  }
  return pcap;
}

Capture loadCapture() {
  Capture c;
  std::string path;
  if (const char* env = std::getenv("FLOWFOLD_BENCH_PCAP"); env && *env) {
    path = env;
  } else {
    path = flowgenCapture(c.error);
    if (path.empty()) return c;
  }
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), errbuf);
  if (!p) {
    c.error = path + ": " + errbuf;
    return c;
  }
  c.dlt = pcap_datalink(p);
  pcap_pkthdr* h;
  const u_char* bytes;
  while (c.packets.size() < kMixPackets && pcap_next_ex(p, &h, &bytes) == 1) {
    c.packets.push_back({c.data.size(), h->caplen, h->len,
                         uint64_t(h->ts.tv_sec) * 1000 + uint64_t(h->ts.tv_usec) / 1000});
    c.data.insert(c.data.end(), bytes, bytes + h->caplen);
  }
  pcap_close(p);
  if (c.packets.empty()) c.error = path + ": no packets";
  if (!Decoder::supportsLinkType(c.dlt)) c.error = path + ": link type not supported by the decoder";
  return c;
}

const Capture& capture() {
  static const Capture c = loadCapture();
  return c;
}

void BM_DecodeFlowgenMix(benchmark::State& state) {
  const Capture& c = capture();
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  Decoder decoder(c.dlt);
  DecodedPacket info;
  size_t i = 0;
  for (auto _ : state) {
    const auto& pk = c.packets[i];
    benchmark::DoNotOptimize(decoder.decode(c.data.data() + pk.offset, pk.caplen, pk.wirelen, pk.ts_ms, info));
    benchmark::ClobberMemory();
    if (++i == c.packets.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["capture_packets"] = static_cast<double>(c.packets.size());
  state.counters["decoded_share"] =
      decoder.counters().packets ? double(decoder.counters().decoded) / double(decoder.counters().packets) : 0;
}
BENCHMARK(BM_DecodeFlowgenMix);

}  // namespace
