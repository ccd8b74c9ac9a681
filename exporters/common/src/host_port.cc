#include "flowfold/exporters/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace flowfold {

bool isLoopbackAddress(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
}

bool isAddressLiteral(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

uint32_t automaticDatagramBytes(const std::string& host) {
  const bool loopback = host == "localhost" || host == "ip6-localhost" || isLoopbackAddress(host);
  return loopback ? kLoopbackDatagramBytes : kDefaultDatagramBytes;
}

}  // namespace flowfold
