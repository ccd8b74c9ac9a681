// Sustained flow rate of the MySQL sink into a real server: synthetic flow
// records go through the exporter exactly as the export thread hands them
// over (spool, sink thread, transactions with batch bookkeeping), and the
// clock stops when flush() reports every row committed.
//
//   mysql_bench --socket /path/mysqld.sock --database bench [--rows 2000000]
//               [--method load_data|insert] [--indexes time,src_ip] [--batch-size 10000]
//               [--partition daily] [--table flows] [--spool-dir DIR]
//
// bench/mysql_bench.sh starts a private server and runs the matrix.

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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
  const size_t chunk = 10'000;  // records per exportBatch, as the export stage hands them over
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rows") rows = std::strtoull(arg(i, argc, argv), nullptr, 10);
    else if (a.rfind("--", 0) == 0) {
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
  for (size_t done = 0; done < rows; done += chunk)
    batches.push_back(makeFlows(std::min(chunk, rows - done), start_ms + done / 100, rng));

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
  std::printf("method=%s batch=%zu indexes=%s partition=%s rows=%" PRIu64 " seconds=%.2f flows_per_s=%.0f "
              "export_thread_us_per_flow=%.3f batches=%" PRIu64 "\n",
              st.method.c_str(), o.batch_size, indexes.empty() ? "none" : indexes.c_str(),
              o.partitioning == MysqlOptions::Partitioning::kDaily ? "daily" : "none", committed, secs,
              static_cast<double>(committed) / secs, export_thread_s * 1e6 / static_cast<double>(rows),
              st.batches_committed);
  return committed == rows ? 0 : 1;
}
