// LocalNetworks: CIDR parsing and the direction rules, on hand-built keys.

#include "flowfold/exporters/local_networks.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace flowfold {
namespace {

FlowKey key(const char* src, const char* dst) {
  FlowKey k;
  const bool v6 = std::string(src).find(':') != std::string::npos;
  k.ip_version = v6 ? 6 : 4;
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, src, k.src_addr.data()), 1);
  EXPECT_EQ(inet_pton(v6 ? AF_INET6 : AF_INET, dst, k.dst_addr.data()), 1);
  return k;
}

LocalNetworks nets(std::initializer_list<const char*> cidrs) {
  LocalNetworks n;
  for (const char* c : cidrs) EXPECT_EQ(n.add(c), "") << c;
  return n;
}

TEST(LocalNetworks, UnsetGivesNoDirection) {
  LocalNetworks n;
  EXPECT_TRUE(n.empty());
  EXPECT_EQ(n.direction(key("10.0.0.1", "192.0.2.1")), FlowDirection::kNone);
}

TEST(LocalNetworks, Ipv4Rules) {
  const auto n = nets({"10.0.0.0/8", "192.168.1.0/24"});
  EXPECT_EQ(n.direction(key("10.1.2.3", "198.51.100.7")), FlowDirection::kEgress);
  EXPECT_EQ(n.direction(key("198.51.100.7", "192.168.1.255")), FlowDirection::kIngress);
  EXPECT_EQ(n.direction(key("10.1.2.3", "192.168.1.1")), FlowDirection::kNone);   // local to local
  EXPECT_EQ(n.direction(key("192.168.2.1", "11.0.0.0")), FlowDirection::kNone);   // remote to remote
  EXPECT_EQ(n.direction(key("9.255.255.255", "10.0.0.0")), FlowDirection::kIngress);
  EXPECT_EQ(n.direction(key("10.255.255.255", "11.0.0.0")), FlowDirection::kEgress);
}

TEST(LocalNetworks, EdgePrefixes) {
  const auto host = nets({"192.0.2.1/32", "2001:db8::1/128"});
  EXPECT_EQ(host.direction(key("192.0.2.1", "192.0.2.2")), FlowDirection::kEgress);
  EXPECT_EQ(host.direction(key("192.0.2.0", "192.0.2.1")), FlowDirection::kIngress);
  EXPECT_EQ(host.direction(key("2001:db8::1", "2001:db8::2")), FlowDirection::kEgress);
  EXPECT_EQ(host.direction(key("2001:db8::", "2001:db8::1")), FlowDirection::kIngress);
  const auto bare = nets({"192.0.2.1", "2001:db8::1"});  // a bare address is one host
  EXPECT_EQ(bare.text(), (std::vector<std::string>{"192.0.2.1/32", "2001:db8::1/128"}));
  // /0: every address of that version is local; the other version's are not.
  const auto all4 = nets({"0.0.0.0/0"});
  EXPECT_EQ(all4.direction(key("1.2.3.4", "255.255.255.255")), FlowDirection::kNone);
  EXPECT_EQ(all4.direction(key("2001:db8::1", "2001:db9::1")), FlowDirection::kNone);
  EXPECT_TRUE(all4.contains(key("0.0.0.0", "1.1.1.1").src_addr, 4));
  const auto all6 = nets({"::/0"});
  EXPECT_TRUE(all6.contains(key("ffff::1", "::").src_addr, 6));
  EXPECT_FALSE(all6.contains(key("1.2.3.4", "1.2.3.4").src_addr, 4));
}

TEST(LocalNetworks, Ipv6PrefixesAcrossTheHalves) {
  const auto n = nets({"2001:db8::/32", "2001:db8:1:2:3:4::/96", "fd00::/8"});
  EXPECT_EQ(n.direction(key("2001:db8:ffff::1", "2a00::1")), FlowDirection::kEgress);
  EXPECT_EQ(n.direction(key("2a00::1", "fdff::1")), FlowDirection::kIngress);
  EXPECT_EQ(n.direction(key("2001:db9::1", "2a00::1")), FlowDirection::kNone);
  const auto p96 = nets({"2001:db8:1:2:3:4::/96"});
  EXPECT_TRUE(p96.contains(key("2001:db8:1:2:3:4:ffff:ffff", "::").src_addr, 6));
  EXPECT_FALSE(p96.contains(key("2001:db8:1:2:3:5::", "::").src_addr, 6));
}

TEST(LocalNetworks, BadEntries) {
  LocalNetworks n;
  EXPECT_NE(n.add("10.0.0.0/33").find("from 0 to 32"), std::string::npos);
  EXPECT_NE(n.add("2001:db8::/129").find("from 0 to 128"), std::string::npos);
  EXPECT_NE(n.add("10.0.0.0/").find("prefix length"), std::string::npos);
  EXPECT_NE(n.add("10.0.0.0/8x").find("prefix length"), std::string::npos);
  EXPECT_NE(n.add("10.0.0/8").find("not an IPv4 or IPv6 network"), std::string::npos);
  EXPECT_NE(n.add("lan").find("not an IPv4 or IPv6 network"), std::string::npos);
  EXPECT_EQ(n.add("10.1.0.0/8"), "'10.1.0.0/8' has host bits set below /8 (the network is 10.0.0.0/8)");
  EXPECT_EQ(n.add("2001:db8::1/64"),
            "'2001:db8::1/64' has host bits set below /64 (the network is 2001:db8::/64)");
  EXPECT_TRUE(n.empty());
}

}  // namespace
}  // namespace flowfold
