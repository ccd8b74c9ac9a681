#pragma once
// "HOST:PORT" as people write it and tools parse it: an IPv6 address in
// brackets ("[::1]:2055"), so the last colon is the port's.

#include <string>

namespace flowfold {

inline std::string joinHostPort(const std::string& host, const std::string& port) {
  const bool bracket = host.find(':') != std::string::npos && host.front() != '[';
  return (bracket ? "[" + host + "]" : host) + ":" + port;
}

}  // namespace flowfold
