#pragma once
// "HOST:PORT" as people write it and tools parse it: an IPv6 address in
// brackets ("[::1]:2055"), so the last colon is the port's. And what a
// collector's host says about the datagrams to send it.

#include <cstdint>
#include <string>

namespace flowfold {

inline std::string joinHostPort(const std::string& host, const std::string& port) {
  const bool bracket = host.find(':') != std::string::npos && host.front() != '[';
  return (bracket ? "[" + host + "]" : host) + ":" + port;
}

/// 127.0.0.0/8, ::1, and IPv4-mapped ::ffff:127.x.y.z (the same host written
/// in IPv6), for an address literal; false for a name or anything else.
bool isLoopbackAddress(const std::string& host);

/// An IPv4 or IPv6 address literal (not a name).
bool isAddressLiteral(const std::string& host);

inline constexpr uint32_t kDefaultDatagramBytes = 1400;
inline constexpr uint32_t kLoopbackDatagramBytes = 8192;

/// The largest export datagram when none is configured: 1400 bytes (safe on
/// any path), or 8192 when the collector is on loopback, where no path MTU
/// applies and every datagram costs a full trip through the kernel's network
/// stack (a large share of the probe's CPU at 1400 bytes). Not more:
/// collectors read into fixed buffers and cut what is longer (pmacct's
/// nfacctd 1.7 at 10000 bytes, GoFlow2 at 9000), which loses the records.
uint32_t automaticDatagramBytes(const std::string& host);

}  // namespace flowfold
