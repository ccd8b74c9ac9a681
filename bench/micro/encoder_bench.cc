// Encoder micro-benchmarks: ns per flow record (items_per_second = records/s).
//
// The records: 1024 flows shaped like flowgen's traffic (3/4 IPv4, 1/4 IPv6;
// TCP, UDP, ICMP; a fifth with a VLAN), encoded as one batch per iteration,
// the way the export stage hands a batch to an exporter.
//
//  BM_Netflow9Encode        netflow9::encode() into 1400-byte datagrams (templates
//                           every 20 datagrams, the default refresh)
//  BM_IpfixDirectEncode     the IPFIX exporter's per-record work with the direct encoder:
//                           FlowRecord -> packed record (writeIpv4Fields/writeFlowFields),
//                           append(), finish() when a 1400-byte message is full;
//                           IPv4 records first, then IPv6, as IpfixExporter does
//  BM_IpfixFixbufEncode     the same with the libfixbuf encoder (fBufAppend)
//  BM_FormatText / Json     formatFlowText() / formatFlowJson(): one std::string per record

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "flowfold/exporters/netflow9_encoder.h"
#include "flowfold/exporters/text_exporter.h"
#include "flowfold/flowcache/flow_record.h"
#include "ipfix_encoder.h"

namespace {

using flowfold::FlowEndReason;
using flowfold::FlowRecord;

constexpr uint64_t kNowMs = 1'700'000'300'000ULL;
constexpr size_t kBatch = 1024;
constexpr size_t kMtu = 1400;

std::vector<FlowRecord> makeRecords() {
  std::vector<FlowRecord> records(kBatch);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < records.size(); ++i) {
    FlowRecord& r = records[i];
    auto& k = r.key;
    const double u = double(rng() % 1000) / 1000;
    k.ip_version = i % 4 == 3 ? 6 : 4;
    k.protocol = u < 0.62 ? 6 : u < 0.95 ? 17 : (k.ip_version == 6 ? 58 : 1);
    if (k.ip_version == 4) {
      k.src_addr[0] = 10;
      k.dst_addr[0] = 172;
      for (int b = 1; b < 4; ++b) {
        k.src_addr[b] = static_cast<uint8_t>(rng());
        k.dst_addr[b] = static_cast<uint8_t>(rng());
      }
    } else {
      k.src_addr[0] = k.dst_addr[0] = 0x20;
      k.src_addr[1] = k.dst_addr[1] = 0x01;
      k.src_addr[2] = k.dst_addr[2] = 0x0d;
      k.src_addr[3] = k.dst_addr[3] = 0xb8;
      for (int b = 10; b < 16; ++b) {
        k.src_addr[b] = static_cast<uint8_t>(rng());
        k.dst_addr[b] = static_cast<uint8_t>(rng());
      }
    }
    if (k.protocol == 1 || k.protocol == 58) {
      k.dst_port = k.protocol == 1 ? 8 * 256 : 128 * 256;
    } else {
      k.src_port = static_cast<uint16_t>(1024 + rng() % 64000);
      k.dst_port = k.protocol == 17 ? 53 : 443;
    }
    if (i % 5 == 0) k.vlan_id = static_cast<uint16_t>(1 + rng() % 4094);
    r.packets = 1 + rng() % 1000;
    r.octets = r.packets * (40 + rng() % 1460);
    r.last_ms = kNowMs - rng() % 60'000;
    r.first_ms = r.last_ms - rng() % 60'000;
    r.src_mac = {0x00, 0x50, 0x56, 1, 2, 3};
    r.dst_mac = {0x00, 0x16, 0x3e, 4, 5, 6};
    r.tcp_flags = k.protocol == 6 ? 0x1b : 0;
    r.tos = 0;
    r.min_ttl = 60;
    r.max_ttl = 64;
    r.end_reason = FlowEndReason::kIdleTimeout;
  }
  return records;
}

const std::vector<FlowRecord>& records() {
  static const std::vector<FlowRecord> r = makeRecords();
  return r;
}

// ---------------------------------------------------------------- NetFlow v9

void BM_Netflow9Encode(benchmark::State& state) {
  namespace nf9 = flowfold::netflow9;
  nf9::EncoderConfig config;
  config.max_datagram = kMtu;
  config.boot_ms = (kNowMs - 3'600'000) / 1000 * 1000;
  nf9::validateConfig(config);
  nf9::EncoderState st;
  nf9::EncodedDatagrams out;
  const auto& recs = records();
  uint64_t now = kNowMs;
  size_t datagrams = 0;
  for (auto _ : state) {
    const size_t done = nf9::encode(config, st, recs, now++, out);
    benchmark::DoNotOptimize(out.bytes.data());
    benchmark::DoNotOptimize(done);
    datagrams += out.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * recs.size()));
  state.counters["records_per_datagram"] =
      datagrams ? double(state.iterations() * recs.size()) / double(datagrams) : 0;
}
BENCHMARK(BM_Netflow9Encode);

// ---------------------------------------------------------------- IPFIX

template <bool kFixbuf>
void ipfixEncode(benchmark::State& state) {
  namespace ipfix = flowfold::ipfix;
  std::unique_ptr<ipfix::MessageEncoder> enc =
      kFixbuf ? ipfix::makeFixbufEncoder(0, kMtu) : ipfix::makeDirectEncoder(0, kMtu);
  benchmark::DoNotOptimize(enc->encodeTemplates().data());
  const auto& recs = records();
  std::vector<const FlowRecord*> v6;
  size_t messages = 0;
  auto append = [&](const auto& record) {
    if (enc->append(record)) return;
    benchmark::DoNotOptimize(enc->finish().data());
    ++messages;
    if (!enc->append(record)) std::abort();
  };
  for (auto _ : state) {
    enc->setExportTime(static_cast<uint32_t>(kNowMs / 1000));
    v6.clear();
    ipfix::Ipv4Record r4;
    for (const FlowRecord& r : recs) {
      if (r.key.ip_version == 4) {
        ipfix::writeIpv4Fields(r.key, r4.ip);
        ipfix::writeFlowFields(r, r4.flow);
        append(r4);
      } else {
        v6.push_back(&r);
      }
    }
    ipfix::Ipv6Record r6;
    for (const FlowRecord* r : v6) {
      ipfix::writeIpv6Fields(r->key, r6.ip);
      ipfix::writeFlowFields(*r, r6.flow);
      append(r6);
    }
    benchmark::DoNotOptimize(enc->finish().data());
    ++messages;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * recs.size()));
  state.counters["records_per_message"] =
      messages ? double(state.iterations() * recs.size()) / double(messages) : 0;
}

void BM_IpfixDirectEncode(benchmark::State& state) { ipfixEncode<false>(state); }
void BM_IpfixFixbufEncode(benchmark::State& state) { ipfixEncode<true>(state); }
BENCHMARK(BM_IpfixDirectEncode);
BENCHMARK(BM_IpfixFixbufEncode);

// ---------------------------------------------------------------- text / JSON

template <bool kJson>
void format(benchmark::State& state) {
  const auto& recs = records();
  size_t bytes = 0;
  for (auto _ : state) {
    for (const FlowRecord& r : recs) {
      const std::string line = kJson ? flowfold::formatFlowJson(r) : flowfold::formatFlowText(r);
      benchmark::DoNotOptimize(line.data());
      bytes += line.size();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * recs.size()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_FormatText(benchmark::State& state) { format<false>(state); }
void BM_FormatJson(benchmark::State& state) { format<true>(state); }
BENCHMARK(BM_FormatText);
BENCHMARK(BM_FormatJson);

}  // namespace
