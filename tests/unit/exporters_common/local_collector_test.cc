// The /proc/net/udp and /proc/net/udp6 parser behind collector_drops, on
// lines in the kernel's format (net/ipv4/udp.c, net/ipv6/datagram.c).
// UdpSender's tests count real drops against what a real socket received.

#include "flowfold/exporters/local_collector.h"

#include <gtest/gtest.h>

#include <array>

namespace flowfold {
namespace {

constexpr const char* kUdp =
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops            \n"
    " 3464: 0100007F:9AB0 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1802764 2 "
    "0000000099e056ab 159041  \n"
    " 3564: 00000000:0801 0100007F:D431 01 00000000:00000000 00:00000000 00000000   105        0 77 2 "
    "00000000344a45a2 0   \n"
    "  garbage line\n";

constexpr const char* kUdp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
    "tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "  123: 00000000000000000000000001000000:0801 00000000000000000000000000000000:0000 07 00000000:00000000 "
    "00:00000000 00000000     0        0 555 2 0000000000000000 7\n"
    "  124: 0000000000000000FFFF00000100007F:0802 00000000000000000000000000000000:0000 07 00000000:00000000 "
    "00:00000000 00000000     0        0 556 2 0000000000000000 12";

TEST(ProcNetUdp, ParsesAddressPortInodeAndDrops) {
  const auto sockets = parseProcNetUdp(kUdp, false);
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].addr, (std::array<uint8_t, 16>{127, 0, 0, 1}));
  EXPECT_EQ(sockets[0].port, 39600);
  EXPECT_EQ(sockets[0].inode, 1802764u);
  EXPECT_EQ(sockets[0].drops, 159041u);
  EXPECT_FALSE(sockets[0].v6);
  EXPECT_EQ(sockets[1].addr, (std::array<uint8_t, 16>{}));
  EXPECT_EQ(sockets[1].port, 2049);
  EXPECT_EQ(sockets[1].drops, 0u);
}

TEST(ProcNetUdp, ParsesIpv6AndIpv4MappedAddresses) {
  const auto sockets = parseProcNetUdp(kUdp6, true);
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].addr, (std::array<uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(sockets[0].port, 2049);
  EXPECT_EQ(sockets[0].inode, 555u);
  EXPECT_EQ(sockets[0].drops, 7u);
  EXPECT_TRUE(sockets[0].v6);
  EXPECT_EQ(sockets[1].addr, (std::array<uint8_t, 16>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}));
  EXPECT_EQ(sockets[1].port, 2050);
  EXPECT_EQ(sockets[1].drops, 12u);
}

TEST(ProcNetUdp, AnIpv4LineIsNotReadAsIpv6) {
  EXPECT_TRUE(parseProcNetUdp(kUdp, true).empty());
  EXPECT_TRUE(parseProcNetUdp(kUdp6, false).empty());
}

}  // namespace
}  // namespace flowfold
