#include "flowfold/exporters/local_collector.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace flowfold {

namespace {

// Through /proc/self: the service runs with ProcSubset=pid, which hides
// /proc/net but not the process's own view of its network namespace.
constexpr const char* kProcUdp = "/proc/self/net/udp";
constexpr const char* kProcUdp6 = "/proc/self/net/udp6";

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// The whole of `s` as a number (from_chars alone accepts a prefix).
template <class T>
bool parseWhole(std::string_view s, T& out, int base = 10) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return !s.empty() && ec == std::errc{} && end == s.data() + s.size();
}

// "0100007F:9B44" (IPv4) or "00000000000000000000000001000000:9B44" (IPv6):
// each 32-bit group is the word as it lies in memory, printed as a host-order
// number, so copying the parsed number back to memory gives network order.
bool parseEndpoint(std::string_view s, bool v6, std::array<uint8_t, 16>& addr, uint16_t& port) {
  const size_t colon = s.find(':');
  const size_t hex_len = v6 ? 32 : 8;
  if (colon != hex_len || s.size() != colon + 5) return false;
  addr.fill(0);
  for (size_t i = 0; i < hex_len / 8; ++i) {
    uint32_t word = 0;
    if (!parseWhole(s.substr(i * 8, 8), word, 16)) return false;
    std::memcpy(addr.data() + i * 4, &word, 4);
  }
  return parseWhole(s.substr(colon + 1), port, 16);
}

std::string readFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool isLoopback(const std::array<uint8_t, 16>& addr, bool v6) {
  if (!v6) return addr[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (addr == kLoopback6) return true;
  return std::memcmp(addr.data(), kV4MappedPrefix.data(), 12) == 0 && addr[12] == 127;
}

}  // namespace

std::vector<ProcUdpSocket> parseProcNetUdp(std::string_view text, bool v6) {
  std::vector<ProcUdpSocket> out;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    std::vector<std::string_view> fields;
    for (size_t pos = 0; pos < line.size();) {
      const size_t start = line.find_first_not_of(' ', pos);
      if (start == std::string_view::npos) break;
      const size_t end = std::min(line.find(' ', start), line.size());
      fields.push_back(line.substr(start, end - start));
      pos = end;
    }
    ProcUdpSocket s;
    s.v6 = v6;
    if (fields.size() < 13 || !parseEndpoint(fields[1], v6, s.addr, s.port) || !parseWhole(fields[9], s.inode) ||
        !parseWhole(fields[12], s.drops))
      continue;
    out.push_back(s);
  }
  return out;
}

std::unique_ptr<LocalCollectorDrops> LocalCollectorDrops::forConnectedSocket(int fd) {
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return nullptr;
  std::array<uint8_t, 16> addr{};
  if (peer.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(peer);
    std::memcpy(addr.data(), &in.sin_addr, 4);
    if (!isLoopback(addr, false)) return nullptr;
    return std::make_unique<LocalCollectorDrops>(addr, false, ntohs(in.sin_port));
  }
  if (peer.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(peer);
    std::memcpy(addr.data(), &in6.sin6_addr, 16);
    if (!isLoopback(addr, true)) return nullptr;
    if (std::memcmp(addr.data(), kV4MappedPrefix.data(), 12) == 0) {
      // ::ffff:127.x is delivered as IPv4: the collector is the IPv4 one.
      std::array<uint8_t, 16> v4{};
      std::memcpy(v4.data(), addr.data() + 12, 4);
      return std::make_unique<LocalCollectorDrops>(v4, false, ntohs(in6.sin6_port));
    }
    return std::make_unique<LocalCollectorDrops>(addr, true, ntohs(in6.sin6_port));
  }
  return nullptr;
}

LocalCollectorDrops::LocalCollectorDrops(const std::array<uint8_t, 16>& addr, bool v6, uint16_t port)
    : addr_(addr), v6_(v6), port_(port) {
  // What the sockets there had dropped before: not ours to report.
  bool readable = false;
  const std::vector<ProcUdpSocket> sockets = collectorSockets(readable);
  for (const ProcUdpSocket& s : sockets) last_drops_[s.inode] = s.drops;
  nobody_listens_ = readable && sockets.empty();
}

bool LocalCollectorDrops::receivesFor(const ProcUdpSocket& s) const {
  if (s.port != port_) return false;
  const std::array<uint8_t, 16> any{};
  if (s.addr == any) return s.v6 || !v6_;  // a wildcard socket (an IPv6 one takes IPv4 too, unless V6ONLY)
  if (s.v6 == v6_) return v6_ ? s.addr == addr_ : std::memcmp(s.addr.data(), addr_.data(), 4) == 0;
  // An IPv6 socket bound to the IPv4-mapped form of the collector's address.
  return !v6_ && std::memcmp(s.addr.data(), kV4MappedPrefix.data(), 12) == 0 &&
         std::memcmp(s.addr.data() + 12, addr_.data(), 4) == 0;
}

std::vector<ProcUdpSocket> LocalCollectorDrops::collectorSockets(bool& readable) const {
  std::vector<ProcUdpSocket> out;
  readable = true;
  for (const bool v6 : {false, true}) {
    if (v6_ && !v6) continue;  // an IPv6 address reaches no IPv4 socket
    const std::string text = readFile(v6 ? kProcUdp6 : kProcUdp);
    // A table that was read has its header line at least; an IPv6 table may
    // be missing altogether (IPv6 disabled), which leaves IPv4 to decide.
    if (text.empty() && (!v6 || v6_)) readable = false;
    for (const ProcUdpSocket& s : parseProcNetUdp(text, v6))
      if (receivesFor(s)) out.push_back(s);
  }
  return out;
}

uint64_t LocalCollectorDrops::read() {
  bool readable = false;
  const std::vector<ProcUdpSocket> sockets = collectorSockets(readable);
  nobody_listens_ = readable && sockets.empty();
  for (const ProcUdpSocket& s : sockets) {
    // A socket first seen now (the collector restarted) dropped all of its
    // count during the watch: its earlier count is 0.
    uint64_t& last = last_drops_[s.inode];
    if (s.drops > last) total_ += s.drops - last;
    last = s.drops;
  }
  return total_;
}

}  // namespace flowfold
