#pragma once
// Datagrams that a collector on this host dropped.
//
// Why: a UDP collector whose socket buffer is full drops datagrams without
// anyone being told; the sender's sends all succeed. On loopback flowfold
// sends 8192-byte datagrams, and nfcapd with its default buffer (212992
// bytes: about 20 of them) lost a quarter of `big` at the default pacing.
// Nothing can see that for a remote collector, but for one on this host
// the kernel counts the drops per socket (the last column of /proc/net/udp
// and /proc/net/udp6), and flowfold reports them: one warning saying what
// to do, and the count in the stats line (collector_drops).
//
// The count is the collector socket's, so it includes datagrams of any
// other sender to that socket during the run.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

namespace flowfold {

/// One socket of /proc/net/udp or /proc/net/udp6.
struct ProcUdpSocket {
  std::array<uint8_t, 16> addr{};  // network byte order; an IPv4 address in the first 4 bytes
  bool v6 = false;
  uint16_t port = 0;
  uint64_t inode = 0;
  uint64_t drops = 0;
};

/// The sockets listed in the text of /proc/net/udp (v6 false) or
/// /proc/net/udp6 (v6 true). Lines that do not parse (the header) are skipped.
std::vector<ProcUdpSocket> parseProcNetUdp(std::string_view text, bool v6);

class LocalCollectorDrops {
 public:
  /// A watch on the collector of a connected UDP socket when that collector
  /// is on this host (a loopback address), otherwise nullptr. The drops
  /// counted from here on are those after this call.
  static std::unique_ptr<LocalCollectorDrops> forConnectedSocket(int fd);
  /// A watch on the collector at `addr`:`port` (addr as in ProcUdpSocket).
  LocalCollectorDrops(const std::array<uint8_t, 16>& addr, bool v6, uint16_t port);

  /// Datagrams the collector's socket (or sockets: SO_REUSEPORT, a restart)
  /// dropped since the watch began. Reads /proc: call it now and then, not
  /// per datagram.
  uint64_t read();
  /// The count as of the last read().
  uint64_t total() const { return total_; }
  /// Whether, at the last read(), no socket on this host received what is
  /// sent to the collector's address and port: then every datagram sent to
  /// it is dropped. False when the socket table could not be read (unknown).
  bool nobodyListens() const { return nobody_listens_; }

  uint16_t port() const { return port_; }

 private:
  /// Whether a listed socket receives what is sent to the collector's address.
  bool receivesFor(const ProcUdpSocket& s) const;
  /// The sockets that receive for the collector; `readable` says whether the
  /// socket table could be read at all.
  std::vector<ProcUdpSocket> collectorSockets(bool& readable) const;

  std::array<uint8_t, 16> addr_;
  bool v6_;
  uint16_t port_;
  std::map<uint64_t, uint64_t> last_drops_;  // by socket inode
  uint64_t total_ = 0;
  bool nobody_listens_ = false;
};

}  // namespace flowfold
