// The flow table alone on a real packet sequence: BM_FlowCacheReplay.
//
// The other flow-table benchmarks each isolate one operation on a synthetic
// key pattern. This one replays every packet of a capture (decoded once,
// before timing) through a fresh FlowCache the way the pipeline drives it:
// the 16-deep ring (hash slot prefetched on arrival, entry 8 packets later,
// update() 15 later), expire() whenever the packet clock moves, records handed
// off every 4096. What remains is the table's own cost per packet, with the
// capture's real mix of new flows, hits, FIN/RST ends, refiled and expired
// flows: on the `big` profile that is most of flowfold's CPU time, and the
// figure to compare flow-table designs with (bench/PROFILE.md).
//
// The capture is $FLOWFOLD_BENCH_REPLAY_PCAP (bench/run.sh keeps its profiles
// in its work directory: /tmp/flowfold-bench/big.pcap), otherwise flowgen's
// `big` profile cut to 1M packets over 60 s (the same 100k concurrent flows),
// written to /tmp/flowfold-micro/ at the first use.
//
// items_per_second = packets per second; counters: packets, flows created and
// records emitted per replay (the same every iteration: the replay is
// deterministic).

#include <benchmark/benchmark.h>
#include <pcap/pcap.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "flowfold/flowcache/flow_cache.h"
#include "flowfold/probe/decoder.h"

namespace {

using flowfold::FlowCache;
using flowfold::FlowCacheOptions;
using flowfold::FlowRecord;
using flowfold::TimedCachePacket;

struct Replay {
  std::string error;  // non-empty: unusable
  struct Packet {
    TimedCachePacket summary;
    uint64_t hash;
  };
  std::vector<Packet> packets;  // the decoded packets, in capture order
};

bool run(const std::string& command) { return std::system(command.c_str()) == 0; }

std::string replayCapture(std::string& error) {
  if (const char* env = std::getenv("FLOWFOLD_BENCH_REPLAY_PCAP"); env && *env) return env;
  const std::string dir = "/tmp/flowfold-micro";
  const std::string pcap = dir + "/flowgen-replay.pcap";
  struct stat st{};
  if (stat(pcap.c_str(), &st) == 0 && st.st_size > 0) return pcap;
  mkdir(dir.c_str(), 0755);
  const std::string src = std::string(FLOWFOLD_SOURCE_DIR) + "/tests/tools/flowgen.c";
  const std::string bin = dir + "/flowgen";
  if (!run("cc -O2 -o " + bin + " " + src + " -lm") ||
      !run(bin + " -o " + pcap + ".tmp -n 1000000 -c 100000 -d 60 -S 128 -s 42") ||
      std::rename((pcap + ".tmp").c_str(), pcap.c_str()) != 0) {
    error = "could not build or run flowgen from " + src;
    return {};
  }
  return pcap;
}

Replay loadReplay() {
  Replay r;
  const std::string path = replayCapture(r.error);
  if (path.empty()) return r;
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), errbuf);
  if (!p) {
    r.error = path + ": " + errbuf;
    return r;
  }
  if (!flowfold::probe::Decoder::supportsLinkType(pcap_datalink(p))) {
    pcap_close(p);
    r.error = path + ": link type not supported by the decoder";
    return r;
  }
  flowfold::probe::Decoder decoder(pcap_datalink(p));
  flowfold::probe::DecodedPacket info;
  pcap_pkthdr* h;
  const u_char* bytes;
  while (pcap_next_ex(p, &h, &bytes) == 1) {
    const uint64_t ts_ms = uint64_t(h->ts.tv_sec) * 1000 + uint64_t(h->ts.tv_usec) / 1000;
    if (decoder.decode(bytes, h->caplen, h->len, ts_ms, info) != flowfold::probe::DecodeStatus::kOk) continue;
    Replay::Packet& pk = r.packets.emplace_back();
    TimedCachePacket& s = pk.summary;
    s.key = info.key;
    s.ts_ms = ts_ms;
    s.ip_length = info.ip_length;
    s.mpls_stack = info.mpls_stack;
    s.src_mac = info.src_mac;
    s.dst_mac = info.dst_mac;
    s.tcp_flags = info.tcp_flags;
    s.tos = info.tos;
    s.ttl = info.ttl;
    pk.hash = flowfold::hashFlowKey(s.key);
  }
  pcap_close(p);
  if (r.packets.empty()) r.error = path + ": no packet decoded";
  return r;
}

const Replay& replay() {
  static const Replay r = loadReplay();
  return r;
}

void BM_FlowCacheReplay(benchmark::State& state) {
  const Replay& r = replay();
  if (!r.error.empty()) {
    state.SkipWithError(r.error.c_str());
    return;
  }
  // The pipeline's ring (probe/include/flowfold/probe/pipeline.h).
  constexpr size_t kRing = 16, kEntryLag = 8, kBatch = 4096;
  const size_t n = r.packets.size();
  uint64_t created = 0, records = 0;
  for (auto _ : state) {
    state.PauseTiming();
    FlowCache cache(FlowCacheOptions{});  // the probe's defaults
    std::vector<FlowRecord> handed_off;
    handed_off.reserve(2 * kBatch);
    cache.output().reserve(2 * kBatch);
    records = 0;
    uint64_t now = 0;
    state.ResumeTiming();
    for (size_t i = 0; i < n + kRing - 1; ++i) {
      if (i < n) cache.prefetchSlot(r.packets[i].hash);
      if (i >= kEntryLag && i - kEntryLag < n) cache.prefetchEntry(r.packets[i - kEntryLag].hash);
      if (i >= kRing - 1) {
        const Replay::Packet& pk = r.packets[i - (kRing - 1)];
        if (pk.summary.ts_ms > now) {
          now = pk.summary.ts_ms;
          cache.expire(now);
        }
        cache.update(pk.summary, pk.hash);
        if (cache.output().size() >= kBatch) {
          records += cache.output().size();
          handed_off.clear();
          handed_off.swap(cache.output());
        }
      }
    }
    while (cache.expire(now)) {
    }
    cache.flushAll();
    records += cache.output().size();
    state.PauseTiming();
    created = cache.counters().flows_created;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.counters["packets"] = static_cast<double>(n);
  state.counters["flows_created"] = static_cast<double>(created);
  state.counters["records"] = static_cast<double>(records);
}
BENCHMARK(BM_FlowCacheReplay)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
