#include "flowfold/exporters/text_exporter.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace flowfold {

namespace {

std::string isoTime(uint64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm_utc.tm_year + 1900,
                tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec,
                static_cast<unsigned>(ms % 1000));
  return buf;
}

// nfdump's notation: one letter per TCP flag, '.' when clear.
std::string tcpFlags(uint8_t f) {
  std::string s = "........";
  const char* letters = "CEUAPRSF";
  for (int bit = 7; bit >= 0; --bit)
    if (f & (1u << bit)) s[7 - bit] = letters[7 - bit];
  return s;
}

std::string mac(const std::array<uint8_t, 6>& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

bool isIcmp(const FlowKey& k) { return k.protocol == 1 || k.protocol == 58; }

std::string endpoint(const std::array<uint8_t, 16>& addr, uint8_t version, uint16_t port) {
  const std::string a = formatAddress(addr, version);
  return version == 6 ? "[" + a + "]:" + std::to_string(port) : a + ":" + std::to_string(port);
}

class TextExporter final : public Exporter {
 public:
  explicit TextExporter(const TextOptions& o)
      : Exporter(o.format == TextOptions::Format::kJson ? "json" : "text"), options_(o) {
    if (o.path == "-" || o.path.empty()) {
      out_ = stdout;
    } else {
      out_ = std::fopen(o.path.c_str(), "a");
      if (!out_)
        throw std::runtime_error("cannot open " + o.path + " for writing: " + std::strerror(errno));
      owned_ = true;
    }
  }
  ~TextExporter() override {
    if (owned_) std::fclose(out_);
    else std::fflush(out_);
  }

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    uint64_t bytes = 0;
    for (const auto& r : records) {
      std::string line = options_.format == TextOptions::Format::kJson ? formatFlowJson(r) : formatFlowText(r);
      line.push_back('\n');
      if (std::fwrite(line.data(), 1, line.size(), out_) != line.size())
        throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
      bytes += line.size();
    }
    // Whole batches reach the file (or a pipe to `jq`) as they come, not
    // when stdio's buffer happens to fill.
    if (std::fflush(out_) != 0) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
    auto& c = mutableCounters();
    c.records_exported += records.size();
    c.messages_sent += records.size();
    c.bytes_sent += bytes;
  }
  void doFlush(uint64_t) override {
    if (std::fflush(out_) != 0) throw std::runtime_error(std::string("flush failed: ") + std::strerror(errno));
  }

 private:
  TextOptions options_;
  FILE* out_ = nullptr;
  bool owned_ = false;
};

}  // namespace

std::string formatFlowText(const FlowRecord& r) {
  const auto& k = r.key;
  char buf[512];
  std::string ports;
  if (isIcmp(k)) {
    std::snprintf(buf, sizeof buf, "%s -> %s icmp %u.%u", formatAddress(k.src_addr, k.ip_version).c_str(),
                  formatAddress(k.dst_addr, k.ip_version).c_str(), k.dst_port >> 8, k.dst_port & 0xFF);
    ports = buf;
  } else {
    ports = endpoint(k.src_addr, k.ip_version, k.src_port) + " -> " + endpoint(k.dst_addr, k.ip_version, k.dst_port);
  }
  std::snprintf(buf, sizeof buf,
                "%s %s proto %u %s vlan %u pkts %" PRIu64 " bytes %" PRIu64 " flags %s tos %u ttl %u-%u end %s",
                isoTime(r.first_ms).c_str(), isoTime(r.last_ms).c_str(), k.protocol, ports.c_str(), k.vlan_id,
                r.packets, r.octets, tcpFlags(r.tcp_flags).c_str(), r.tos, r.min_ttl, r.max_ttl,
                toString(r.end_reason));
  return buf;
}

std::string formatFlowJson(const FlowRecord& r) {
  const auto& k = r.key;
  char buf[768];
  std::snprintf(buf, sizeof buf,
                "{\"first\":\"%s\",\"last\":\"%s\",\"first_ms\":%" PRIu64 ",\"last_ms\":%" PRIu64
                ",\"ip_version\":%u,\"proto\":%u,\"src\":\"%s\",\"src_port\":%u,\"dst\":\"%s\",\"dst_port\":%u,"
                "\"vlan\":%u,\"inner_vlan\":%u,\"ingress_if\":%u,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"tcp_flags\":%u,\"tos\":%u,\"min_ttl\":%u,\"max_ttl\":%u,\"src_mac\":\"%s\",\"dst_mac\":\"%s\","
                "\"mpls_label\":%u,\"end_reason\":\"%s\"}",
                isoTime(r.first_ms).c_str(), isoTime(r.last_ms).c_str(), r.first_ms, r.last_ms, k.ip_version,
                k.protocol, formatAddress(k.src_addr, k.ip_version).c_str(), k.src_port,
                formatAddress(k.dst_addr, k.ip_version).c_str(), k.dst_port, k.vlan_id, k.inner_vlan_id,
                k.ingress_if, r.packets, r.octets, r.tcp_flags, r.tos, r.min_ttl, r.max_ttl, mac(r.src_mac).c_str(),
                mac(r.dst_mac).c_str(), r.mpls_top_label, toString(r.end_reason));
  return buf;
}

std::unique_ptr<Exporter> makeTextExporter(const TextOptions& options) {
  return std::make_unique<TextExporter>(options);
}

}  // namespace flowfold
