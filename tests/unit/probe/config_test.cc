#include "flowfold/probe/config.h"

#include <gtest/gtest.h>

namespace flowfold {
namespace {

std::string errorOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "t.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, EmptyFileGivesDefaults) {
  const Config c = parseConfig("", "t.yaml");
  EXPECT_EQ(c.cache.max_flows, 1'000'000u);
  EXPECT_EQ(c.cache.active_timeout_ms, 60'000u);
  EXPECT_EQ(c.cache.idle_timeout_ms, 15'000u);
  EXPECT_TRUE(c.exporters.empty());
}

TEST(Config, DurationsAcceptUnits) {
  const Config c = parseConfig("cache:\n  active_timeout: 2m\n  idle_timeout: 500ms\n", "t.yaml");
  EXPECT_EQ(c.cache.active_timeout_ms, 120'000u);
  EXPECT_EQ(c.cache.idle_timeout_ms, 500u);
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 1.5\n", "t").cache.idle_timeout_ms, 1'500u);
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 1h\n", "t").cache.idle_timeout_ms, 3'600'000u);
  EXPECT_EQ(parseConfig("", "t").stop_timeout_ms, 45'000u);
  EXPECT_EQ(parseConfig("cache:\n  stop_timeout: 2m\n", "t").stop_timeout_ms, 120'000u);
}

TEST(Config, ReadsEveryExporterKind) {
  const Config c = parseConfig(
      "exporters:\n"
      "  - type: ipfix\n    collector: '[2001:db8::1]:4739'\n    transport: tcp\n    observation_domain: 5\n"
      "  - type: netflow9\n    collector: 127.0.0.1:2055\n    mtu: 1200\n    rate_limit: 0\n"
      "  - type: ipfix\n    path: /tmp/x.ipfix\n    encoder: libfixbuf\n"
      "  - type: json\n",
      "t.yaml");
  ASSERT_EQ(c.exporters.size(), 4u);
  EXPECT_EQ(c.exporters[0].host, "2001:db8::1");
  EXPECT_EQ(c.exporters[0].port, "4739");
  EXPECT_EQ(c.exporters[0].transport, ExporterConfig::Transport::kTcp);
  EXPECT_EQ(c.exporters[0].observation_domain, 5u);
  EXPECT_EQ(c.exporters[1].type, ExporterConfig::Type::kNetflow9);
  EXPECT_EQ(c.exporters[1].mtu, 1200u);
  EXPECT_EQ(c.exporters[1].rate_limit, 0u);
  EXPECT_EQ(c.exporters[2].transport, ExporterConfig::Transport::kFile);  // a path alone means a file
  EXPECT_EQ(c.exporters[2].ipfix_encoder, ExporterConfig::IpfixEncoder::kLibfixbuf);
  EXPECT_EQ(c.exporters[3].path, "-");
  EXPECT_EQ(c.exporters[1].origin, "t.yaml:6:5");
}

TEST(Config, ErrorsNameFileLineAndColumn) {
  EXPECT_EQ(errorOf("cache:\n  bogus: 1\n"),
            "t.yaml:2:3: unknown key 'bogus' in cache (known: active_timeout, idle_timeout, max_flows, stop_timeout, workers)");
  EXPECT_EQ(errorOf("cache:\n  max_flows: -3\n"), "t.yaml:2:14: 'max_flows' must be a whole number, not '-3'");
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 5 years\n"),
            "t.yaml:2:17: 'idle_timeout' has an unknown unit ' years' (use ms, s, m or h)");
  EXPECT_EQ(errorOf("exporters:\n  - type: netflow9\n    collector: 10.0.0.1:2055\n    transport: tcp\n"),
            "t.yaml:2:5: NetFlow v9 is exported over UDP only");
  EXPECT_EQ(errorOf("exporters:\n  - collector: 1.2.3.4:5\n"),
            "t.yaml:2:5: each exporter needs a 'type' (ipfix, netflow9, text, json or mysql)");
  EXPECT_EQ(errorOf("input: [1, 2]\n"), "t.yaml:1:8: 'input' must be a mapping of key: value");
  EXPECT_EQ(errorOf("log:\n  level: loud\n"), "t.yaml:2:10: unknown log level 'loud' (error, warn, info, debug)");
}

TEST(Config, TunnelModeInTheDecoderSection) {
  EXPECT_EQ(parseConfig("", "t.yaml").tunnels, probe::TunnelMode::kOuter);
  EXPECT_EQ(parseConfig("decoder:\n  tunnels: inner\n", "t.yaml").tunnels, probe::TunnelMode::kInner);
  EXPECT_EQ(parseConfig("decoder:\n  tunnels: both\n", "t.yaml").tunnels, probe::TunnelMode::kBoth);
  EXPECT_EQ(parseConfig("decoder:\n  tunnels: outer\n", "t.yaml").tunnels, probe::TunnelMode::kOuter);
  EXPECT_EQ(errorOf("decoder:\n  tunnels: deep\n"), "t.yaml:2:12: unknown tunnels mode 'deep' (outer, inner, both)");
  EXPECT_EQ(errorOf("decoder:\n  tunnel: inner\n"), "t.yaml:2:3: unknown key 'tunnel' in decoder (known: tunnels)");
  EXPECT_EQ(errorOf("decoder:\n  tunnels: [inner]\n"), "t.yaml:2:12: 'tunnels' must be a single value");
}

// Found by fuzz_config: a list or a mapping used as a key escaped as
// yaml-cpp's BadConversion instead of a ConfigError with file:line:column.
TEST(Config, KeyThatIsNotANameIsAConfigError) {
  EXPECT_EQ(errorOf("? [input]\n: 1\n"),
            "t.yaml:1:3: a key in the configuration must be a name, not a list or a mapping");
  EXPECT_EQ(errorOf("metrics:\n  ? {listen: 1}\n  : 2\n"),
            "t.yaml:2:5: a key in metrics must be a name, not a list or a mapping");
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    [dsn]: x\n"),
            "t.yaml:3:5: a key in a mysql exporter must be a name, not a list or a mapping");
}

TEST(Config, AutomaticMtuIsLargerOnlyForLoopbackCollectors) {
  ExporterConfig e;
  for (const char* host : {"127.0.0.1", "127.9.9.9", "::1", "localhost"}) {
    e.host = host;
    EXPECT_EQ(e.effectiveMtu(), ExporterConfig::kLoopbackMtu) << host;
  }
  for (const char* host : {"10.0.0.1", "192.0.2.7", "2001:db8::1", "collector.example"}) {
    e.host = host;
    EXPECT_EQ(e.effectiveMtu(), ExporterConfig::kDefaultMtu) << host;
  }
  e.mtu = 9000;
  EXPECT_EQ(e.effectiveMtu(), 9000u);
  // Collectors cut longer datagrams: pmacct nfacctd 1.7 at 10000 bytes,
  // GoFlow2 at 9000 (tests/integration: PmacctCollector).
  EXPECT_LE(ExporterConfig::kLoopbackMtu, 9000u);
}

TEST(Config, HostPortForms) {
  std::string h, p;
  parseHostPort("collector.example:2055", h, p, "x");
  EXPECT_EQ(h, "collector.example");
  EXPECT_EQ(p, "2055");
  parseHostPort("[::1]:4739", h, p, "x");
  EXPECT_EQ(h, "::1");
  EXPECT_THROW(parseHostPort("::1:4739", h, p, "x"), ConfigError);  // ambiguous IPv6 without brackets
  EXPECT_THROW(parseHostPort("host:0", h, p, "x"), ConfigError);
  EXPECT_THROW(parseHostPort("host:65536", h, p, "x"), ConfigError);
  EXPECT_THROW(parseHostPort(":2055", h, p, "x"), ConfigError);
}

TEST(Config, ValidationNeedsAnExporterAndAtMostOneKindOfInput) {
  Config c;
  EXPECT_THROW(validateConfig(c), ConfigError);  // no exporter
  c.exporters.emplace_back();
  EXPECT_NO_THROW(validateConfig(c));  // no input at all: live on the default interface
  EXPECT_TRUE(c.live());
  c.read_file = "x.pcap";
  EXPECT_NO_THROW(validateConfig(c));
  EXPECT_FALSE(c.live());
  c.interfaces = {"eth0"};
  EXPECT_THROW(validateConfig(c), ConfigError);
}

TEST(Config, LiveSettings) {
  const Config c = parseConfig(
      "input:\n  interface: [eth0, eth1]\n  promiscuous: false\nuser: nobody\nrun_as_root: true\n"
      "metrics:\n  listen: 127.0.0.1:9108\n",
      "t.yaml");
  EXPECT_EQ(c.interfaces, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_FALSE(c.promiscuous);
  EXPECT_EQ(c.user, "nobody");
  EXPECT_TRUE(c.run_as_root);
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:9108");
  EXPECT_TRUE(parseConfig("input:\n  interface: default\n", "t").interfaces.empty());
  EXPECT_NE(errorOf("metrics:\n  listen: nowhere\n").find("t.yaml:2:11:"), std::string::npos);
}

}  // namespace
}  // namespace flowfold
