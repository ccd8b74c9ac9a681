// Sustained flow rate of the MySQL sink into a real server: synthetic flow
// records go through the exporter exactly as the export thread hands them
// over (spool, sink thread, transactions with batch bookkeeping), and the
// clock stops when flush() reports every row committed.
//
//   mysql_bench --socket /path/mysqld.sock --database bench [--rows 2000000]
//               [--method load_data|insert] [--indexes time,src_ip] [--batch-size 10000]
//               [--partition daily] [--table flows] [--spool-dir DIR]
//               [--accounting-interval 5m --accounting-by host,host_pair,service]
//               [--shape random|lan] [--local-hosts 1000] [--remote-hosts 20000] [--days 30]
//               [--local-networks 10.0.0.0/8]
//
// Any sink option is --KEY VALUE (setMysqlOption's keys, '-' for '_').
// Shapes: `random` (the default) draws both addresses from 64k IPv4 and 16k
// IPv6 hosts, so almost every flow has hosts of its own (the accounting
// tables' worst case); `lan` is an office network: every flow between one of
// --local-hosts (10.0.0.0/16) and one of --remote-hosts (100.64.0.0/10), a
// few hosts and servers busier than the rest, nine flows in ten to one of the
// host's 50 usual servers, client and server directions alike, well-known
// service ports. Times advance 100k flows per second, or
// spread the rows evenly over --days (a month of accounting in minutes).
//
// bench/mysql_bench.sh starts a private server and runs the matrix.

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <array>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "flowfold/exporters/mysql_exporter.h"

using namespace flowfold;

namespace {

// Realistic shape: 64k IPv4 hosts and 16k IPv6 hosts, a quarter of the
// flows IPv6, random ports, times moving forward at 100k flows per second.
std::vector<FlowRecord> makeFlows(size_t n, uint64_t start_ms, std::mt19937_64& rng) {
  std::vector<FlowRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    FlowRecord& r = out[i];
    const uint64_t x = rng();
    const bool v6 = (x & 3) == 0;
    r.key.ip_version = v6 ? 6 : 4;
    r.key.protocol = (x >> 2 & 7) == 0 ? 17 : 6;
    if (v6) {
      r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8};
      r.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8};
      r.key.src_addr[14] = static_cast<uint8_t>(x >> 8 & 0x3f);
      r.key.src_addr[15] = static_cast<uint8_t>(x >> 16);
      r.key.dst_addr[14] = static_cast<uint8_t>(x >> 24 & 0x3f);
      r.key.dst_addr[15] = static_cast<uint8_t>(x >> 32);
    } else {
      r.key.src_addr = {10, 0, static_cast<uint8_t>(x >> 8), static_cast<uint8_t>(x >> 16)};
      r.key.dst_addr = {10, 1, static_cast<uint8_t>(x >> 24), static_cast<uint8_t>(x >> 32)};
    }
    r.key.src_port = static_cast<uint16_t>(1024 + (x >> 40) % 60000);
    r.key.dst_port = static_cast<uint16_t>((x >> 56) < 128 ? 443 : 80);
    r.packets = 1 + (x >> 20) % 100;
    r.octets = r.packets * (40 + (x >> 28) % 1460);
    r.first_ms = start_ms + i / 100;
    r.last_ms = r.first_ms + (x >> 12) % 60000;
    r.tcp_flags = r.key.protocol == 6 ? 0x1b : 0;
    r.min_ttl = 60;
    r.max_ttl = 64;
    r.src_mac = {0, 0x11, 0x22, 0x33, 0x44, 0x55};
    r.dst_mac = {0, 0x66, 0x77, 0x88, 0x99, 0xaa};
    r.end_reason = FlowEndReason::kIdleTimeout;
  }
  return out;
}

struct LanShape {
  uint32_t local_hosts = 1000;
  uint32_t remote_hosts = 20000;
};

// An office network's flows (see the header): local host i is
// 10.0.i/256.i%256, remote j is 100.64.j/256.j%256; squaring a uniform draw
// makes low numbers busier, as a few hosts and servers are.
std::vector<FlowRecord> makeLanFlows(size_t n, uint64_t start_ms, double ms_per_flow, const LanShape& shape,
                                     std::mt19937_64& rng) {
  struct Service {
    uint8_t protocol;
    uint16_t port;
  };
  static constexpr Service kServices[] = {{6, 443}, {6, 443}, {6, 443}, {6, 443}, {6, 80},  {6, 80},  {17, 53},
                                          {17, 53}, {6, 22},  {6, 25},  {6, 993}, {17, 123}, {6, 3389}, {17, 443},
                                          {6, 445}, {6, 8080}};
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<FlowRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    FlowRecord& r = out[i];
    const uint64_t x = rng();
    const double a = u(rng), b = u(rng);
    const auto local = static_cast<uint32_t>(a * a * shape.local_hosts);
    // Nine flows in ten go to one of the host's 50 usual servers.
    const uint32_t usual = (local * 7919u + static_cast<uint32_t>(b * 50)) % shape.remote_hosts;
    const auto remote = (x >> 48) % 10 != 0 ? usual : static_cast<uint32_t>(b * b * b * shape.remote_hosts);
    const std::array<uint8_t, 16> l{10, 0, static_cast<uint8_t>(local >> 8), static_cast<uint8_t>(local)};
    const std::array<uint8_t, 16> rm{100, static_cast<uint8_t>(64 + (remote >> 16 & 63)),
                                     static_cast<uint8_t>(remote >> 8), static_cast<uint8_t>(remote)};
    const Service svc = kServices[x % std::size(kServices)];
    const auto client_port = static_cast<uint16_t>(32768 + (x >> 8) % 28232);
    const bool request = (x >> 4 & 1) != 0;  // local client to remote server, or the answer
    r.key.ip_version = 4;
    r.key.protocol = svc.protocol;
    r.key.src_addr = request ? l : rm;
    r.key.dst_addr = request ? rm : l;
    r.key.src_port = request ? client_port : svc.port;
    r.key.dst_port = request ? svc.port : client_port;
    r.packets = 1 + (x >> 20) % 100;
    r.octets = r.packets * (40 + (x >> 28) % 1460);
    r.first_ms = start_ms + static_cast<uint64_t>(static_cast<double>(i) * ms_per_flow);
    r.last_ms = r.first_ms + (x >> 40) % 1000;
    r.tcp_flags = r.key.protocol == 6 ? 0x1b : 0;
    r.min_ttl = 60;
    r.max_ttl = 64;
    r.end_reason = FlowEndReason::kIdleTimeout;
  }
  return out;
}

const char* arg(int& i, int argc, char** argv) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) {
  MysqlOptions o;
  o.user = "root";
  o.database = "bench";
  o.table = "flows";
  size_t rows = 2'000'000;
  bool lan = false;
  LanShape shape;
  double days = 0;
  const size_t chunk = 10'000;  // records per exportBatch, as the export stage hands them over
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rows") rows = std::strtoull(arg(i, argc, argv), nullptr, 10);
    else if (a == "--shape") lan = std::string(arg(i, argc, argv)) == "lan";
    else if (a == "--local-hosts") shape.local_hosts = static_cast<uint32_t>(std::strtoul(arg(i, argc, argv), nullptr, 10));
    else if (a == "--remote-hosts") shape.remote_hosts = static_cast<uint32_t>(std::strtoul(arg(i, argc, argv), nullptr, 10));
    else if (a == "--days") days = std::strtod(arg(i, argc, argv), nullptr);
    else if (a == "--local-networks") {
      const std::string error = o.local_networks.add(arg(i, argc, argv));
      if (!error.empty()) {
        std::fprintf(stderr, "--local-networks: %s\n", error.c_str());
        return 2;
      }
    } else if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      for (char& c : key)
        if (c == '-') c = '_';
      try {
        setMysqlOption(o, key, arg(i, argc, argv));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  const bool own_spool = o.spool_dir.empty();
  if (own_spool)
    o.spool_dir =
        (std::filesystem::temp_directory_path() / ("flowfold-mysql-bench-" + std::to_string(getpid()))).string();
  o.shutdown_timeout_ms = 3'600'000;

  std::mt19937_64 rng(42);
  const uint64_t start_ms = 1'764'000'000'000ull;  // 2025-11-24
  std::vector<std::vector<FlowRecord>> batches;
  // 100k flows per second, or the rows spread evenly over `days`.
  const double ms_per_flow = days > 0 ? days * 86'400'000.0 / static_cast<double>(rows) : 0.01;
  for (size_t done = 0; done < rows; done += chunk) {
    const uint64_t at = start_ms + static_cast<uint64_t>(static_cast<double>(done) * ms_per_flow);
    batches.push_back(lan ? makeLanFlows(std::min(chunk, rows - done), at, ms_per_flow, shape, rng)
                          : makeFlows(std::min(chunk, rows - done), at, rng));
  }

  auto exporter = makeMysqlExporter(o);
  const auto t0 = std::chrono::steady_clock::now();
  double export_thread_s = 0;
  for (const auto& b : batches) {
    const auto e0 = std::chrono::steady_clock::now();
    exporter->exportBatch(b, 0);
    export_thread_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
  }
  exporter->flush(0);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto st = *mysqlSinkStats(*exporter);
  const uint64_t committed = exporter->counters().records.load();
  exporter.reset();
  if (own_spool) std::filesystem::remove_all(o.spool_dir);

  std::string indexes;
  for (auto idx : o.indexes)
    indexes += std::string(indexes.empty() ? "" : ",") + (idx == MysqlOptions::Index::kTime      ? "time"
                                                          : idx == MysqlOptions::Index::kSrcHost ? "src_ip"
                                                                                                 : "dest_ip");
  std::string accounting = "off";
  if (o.accounting.enabled()) {
    accounting = std::to_string(o.accounting.interval_ms / 1000) + "s:";
    if (o.accounting.by_host) accounting += "host,";
    if (o.accounting.by_host_pair) accounting += "host_pair,";
    if (o.accounting.by_service) accounting += "service,";
    accounting.pop_back();
  }
  std::printf("method=%s batch=%zu indexes=%s partition=%s shape=%s accounting=%s rows=%" PRIu64
              " seconds=%.2f flows_per_s=%.0f export_thread_us_per_flow=%.3f batches=%" PRIu64
              " accounting_rows=%" PRIu64 "\n",
              st.method.c_str(), o.batch_size, indexes.empty() ? "none" : indexes.c_str(),
              o.partitioning == MysqlOptions::Partitioning::kDaily ? "daily" : "none", lan ? "lan" : "random",
              accounting.c_str(), committed, secs, static_cast<double>(committed) / secs,
              export_thread_s * 1e6 / static_cast<double>(rows), st.batches_committed, st.accounting_rows);
  return committed == rows ? 0 : 1;
}
