#pragma once
// Helpers for the MySQL sink tests: scratch directories, hand-built flows
// with known sums, a child process, and the private server the harness
// (tests/integration/mariadb.py) gives through the environment.

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "flowfold/flowcache/flow_record.h"

namespace flowfold::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "flowfold-mysql-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDir() {
    if (!std::getenv("FLOWFOLD_KEEP_TEST_DIRS")) std::filesystem::remove_all(dir_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

/// A loopback TCP port with nothing listening on it.
inline uint16_t closedTcpPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // bound, never listened: connections are refused
  return ntohs(a.sin_port);
}

/// Deterministic, varied flows: IPv4 and IPv6, TCP/UDP/ICMP, VLANs, MACs,
/// addresses with the bytes LOAD DATA must escape (0x00, \t, \n, \\).
/// The protocol and category names sampleFlows()' labels use (app_names.h).
inline std::vector<std::string> sampleProtocolNames() {
  std::vector<std::string> names(92, "");
  names[0] = "Unknown", names[1] = "FTP", names[2] = "POP3", names[3] = "SMTP", names[4] = "IMAP", names[91] = "TLS";
  return names;
}
inline std::vector<std::string> sampleCategoryNames() { return {"Unspecified", "Media", "VPN"}; }

inline std::vector<FlowRecord> sampleFlows(size_t n, uint32_t seed = 1) {
  std::vector<FlowRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t x = static_cast<uint32_t>(i) * 2654435761u + seed * 40503u;
    FlowRecord& r = out[i];
    FlowKey& k = r.key;
    const bool v6 = i % 4 == 3;
    k.ip_version = v6 ? 6 : 4;
    static const uint8_t kTricky[] = {0x00, 0x09, 0x0a, 0x5c, 0x4e, 0xff};
    if (v6) {
      k.src_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(x >> 8),
                    kTricky[i % 6]};
      k.dst_addr = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, static_cast<uint8_t>(x)};
    } else {
      k.src_addr = {10, kTricky[i % 6], static_cast<uint8_t>(x >> 16), static_cast<uint8_t>(x >> 24)};
      k.dst_addr = {192, 168, kTricky[(i + 3) % 6], static_cast<uint8_t>(i % 7)};
    }
    const unsigned kind = i % 5;
    k.protocol = kind == 4 ? (v6 ? 58 : 1) : kind == 3 ? 17 : 6;
    if (k.protocol == 1 || k.protocol == 58) {
      k.src_port = 0;
      k.dst_port = static_cast<uint16_t>((v6 ? 128 : 8) * 256);
    } else {
      k.src_port = static_cast<uint16_t>(1024 + x % 60000);
      k.dst_port = static_cast<uint16_t>(i % 2 ? 443 : 53);
    }
    k.vlan_id = static_cast<uint16_t>(i % 3 == 0 ? 100 + i % 4 : 0);
    k.inner_vlan_id = static_cast<uint16_t>(i % 9 == 0 ? 7 : 0);
    k.ingress_if = static_cast<uint16_t>(i % 2);
    r.packets = 1 + x % 1000;
    r.octets = r.packets * (40 + x % 1400);
    r.first_ms = 1764000000000ull + i * 37;  // 2025-11-24T16:00:00Z onwards
    r.last_ms = r.first_ms + x % 90000;
    if (i % 11 == 0) r.mpls_stack = {0x1ABCDE1, 0, 0};  // label 0xABCDE, TC 0, S 1
    r.src_mac = {0x00, 0x1b, 0x21, static_cast<uint8_t>(x), 0x0a, 0x5c};
    r.dst_mac = {0x52, 0x54, 0x00, 0x09, static_cast<uint8_t>(x >> 8), 0x00};
    r.tcp_flags = k.protocol == 6 ? static_cast<uint8_t>(0x02 | (x & 0x3d)) : 0;
    r.tos = static_cast<uint8_t>(x & 0xfc);
    r.min_ttl = static_cast<uint8_t>(30 + x % 30);
    r.max_ttl = static_cast<uint8_t>(r.min_ttl + x % 5);
    r.end_reason = static_cast<FlowEndReason>(1 + i % 5);
    r.flow_id = (uint64_t{x} << 24) + i + 1;  // never 0 (0 is a record without an id: NULL)
    // Two in three labelled by DPI (ids as sampleAppNames() names them), a
    // server name with the bytes the row encodings escape; the third not.
    if (i % 3 != 2) {
      r.app.master = static_cast<uint16_t>(i % 2 ? 91 : 0);
      r.app.app = static_cast<uint16_t>(1 + i % 4);
      r.app.category = static_cast<uint16_t>(i % 3);
      r.app.flags = static_cast<uint8_t>(AppLabel::kInspected | (i % 4 == 1 ? AppLabel::kGuessed : 0));
      static const char* const kNames[] = {"www.example.org", "a\tb\nc\\d'e\"f", "\xff\x01name", ""};
      const std::string name = kNames[i % 4];
      std::copy(name.begin(), name.end(), r.app.server_name.begin());
    }
  }
  return out;
}

/// Runs f in a forked child and returns the string it produced.
inline std::string inChild(const std::function<std::string()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) return "(pipe failed)";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string s = f();
    (void)!::write(fds[1], s.data(), s.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

}  // namespace flowfold::test
