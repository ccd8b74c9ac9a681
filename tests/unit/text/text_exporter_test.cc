#include "flowfold/exporters/text_exporter.h"

#include <gtest/gtest.h>

namespace flowfold {
namespace {

FlowRecord sample() {
  FlowRecord r;
  r.key.ip_version = 4;
  r.key.protocol = 6;
  r.key.src_addr = {192, 0, 2, 10};
  r.key.dst_addr = {198, 51, 100, 7};
  r.key.src_port = 40000;
  r.key.dst_port = 443;
  r.key.vlan_id = 12;
  r.packets = 10;
  r.octets = 5000;
  r.first_ms = 1'700'000'000'123;
  r.last_ms = 1'700'000'001'456;
  r.tcp_flags = 0x1b;  // ACK PSH SYN FIN
  r.min_ttl = 60;
  r.max_ttl = 64;
  r.end_reason = FlowEndReason::kEndOfFlow;
  return r;
}

TEST(TextExporter, FormatsOneReadableLine) {
  EXPECT_EQ(formatFlowText(sample()),
            "2023-11-14T22:13:20.123Z 2023-11-14T22:13:21.456Z proto 6 192.0.2.10:40000 -> 198.51.100.7:443 "
            "vlan 12 pkts 10 bytes 5000 flags ...AP.SF tos 0 ttl 60-64 end end");
}

TEST(TextExporter, FormatsIcmpTypeAndCodeAndIPv6) {
  FlowRecord r = sample();
  r.key.ip_version = 6;
  r.key.protocol = 58;
  r.key.src_addr = {0x20, 0x01, 0x0d, 0xb8};
  r.key.src_addr[15] = 1;
  r.key.dst_addr = {0x20, 0x01, 0x0d, 0xb8};
  r.key.dst_addr[15] = 2;
  r.key.src_port = 0;
  r.key.dst_port = 128 * 256;  // echo request
  const std::string line = formatFlowText(r);
  EXPECT_NE(line.find("2001:db8::1 -> 2001:db8::2 icmp 128.0"), std::string::npos) << line;
}

TEST(TextExporter, FormatsJson) {
  const std::string j = formatFlowJson(sample());
  EXPECT_NE(j.find("\"src\":\"192.0.2.10\",\"src_port\":40000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"packets\":10,\"bytes\":5000"), std::string::npos) << j;
  EXPECT_NE(j.find("\"end_reason\":\"end\""), std::string::npos) << j;
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
}

}  // namespace
}  // namespace flowfold
