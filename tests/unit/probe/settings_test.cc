// The settings table (settings.h) serves the file and the command line: the
// same words give the same Config either way.
#include "flowfold/probe/settings.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "flowfold/probe/cli.h"

namespace flowfold {
namespace {

Config fromCommandLine(std::vector<std::string> args) {
  args.insert(args.begin(), "flowfold");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  CommandLine cl;
  return parseCommandLine(static_cast<int>(args.size()), argv.data(), cl);
}

TEST(Settings, EveryOptionOfTheTableIsInTheUsageText) {
  const std::string usage = usageText();
  std::set<std::string> keys;
  for (const auto& s : probeSettings()) {
    EXPECT_TRUE(keys.insert(std::string(s.section) + "." + std::string(s.key)).second) << s.key << " twice";
    if (!s.option.empty()) {
      EXPECT_NE(usage.find("  " + std::string(s.option) + " "), std::string::npos) << s.option;
    }
  }
  const auto inUsage = [&](auto table) {
    for (const auto& s : table) {
      if (!s.option.empty()) {
        EXPECT_NE(usage.find("  " + std::string(s.option) + " "), std::string::npos) << s.option;
      }
    }
  };
  inUsage(ipfixSettings());
  inUsage(netflow9Settings());
  inUsage(textSettings());
}

TEST(Settings, TheFileAndTheCommandLineGiveTheSameConfig) {
  const Config file = parseConfig(
      "input:\n  file: in.pcap\ncache:\n  max_flows: 5000\n  workers: 3\n  active_timeout: 2m\n"
      "  idle_timeout: 500ms\ndecoder:\n  tunnels: inner\nlog:\n  level: debug\n"
      "exporters:\n  - type: ipfix\n    collector: 127.0.0.1:4739\n    mtu: 1500\n    observation_domain: 9\n"
      "    rate_limit: 7\n"
      "    encoder: libfixbuf\n",
      "t.yaml");
  const Config cli = fromCommandLine({"-r", "in.pcap", "-m", "5000", "--workers", "3", "--active-timeout", "2m",
                                      "--idle-timeout", "500ms", "--tunnels", "inner", "--log-level", "debug",
                                      "-n", "127.0.0.1:4739", "--mtu", "1500", "--observation-domain", "9", "--export-rate", "7",
                                      "--ipfix-encoder", "libfixbuf"});
  for (const Config* c : {&file, &cli}) {
    EXPECT_EQ(c->read_file, "in.pcap");
    EXPECT_EQ(c->cache.max_flows, 5000u);
    EXPECT_EQ(c->workers, 3u);
    EXPECT_EQ(c->cache.active_timeout_ms, 120'000u);
    EXPECT_EQ(c->cache.idle_timeout_ms, 500u);
    EXPECT_EQ(c->tunnels, probe::TunnelMode::kInner);
    EXPECT_EQ(c->log_level, "debug");
    ASSERT_EQ(c->exporters.size(), 1u);
    const ExporterConfig& e = c->exporters[0];
    EXPECT_EQ(e.type, ExporterConfig::Type::kIpfix);
    const auto& o = e.as<IpfixOptions>();
    EXPECT_EQ(o.host, "127.0.0.1");
    EXPECT_EQ(o.port, "4739");
    EXPECT_EQ(o.mtu, 1500u);
    EXPECT_EQ(o.observation_domain, 9u);
    EXPECT_EQ(o.max_messages_per_second, 7u);
    EXPECT_EQ(o.encoder, IpfixOptions::Encoder::kLibfixbuf);
  }
  EXPECT_EQ(fromCommandLine({"-r", "x", "--text", "-t", "maxlife=2m", "-t", "general=500ms"}).cache.active_timeout_ms,
            120'000u);
}

// One range for both: the bound the file refuses, the command line refuses.
// The YAML that sets one key of the table: in its section, or at the top level.
std::string yamlSetting(const Setting<Config>& s, const std::string& value) {
  if (s.section.empty()) return std::string(s.key) + ": " + value + "\n";
  return std::string(s.section) + ":\n  " + std::string(s.key) + ": " + value + "\n";
}

TEST(Settings, TheFileAndTheCommandLineRefuseTheSameValues) {
  for (const auto& s : probeSettings()) {
    if (s.option.empty() || s.value.kind != ValueSpec::Kind::kWhole) continue;
    const std::string over = std::to_string(s.value.max + 1);
    EXPECT_THROW(parseConfig(yamlSetting(s, over), "t"), ConfigError) << s.key;
    EXPECT_THROW(fromCommandLine({"-r", "x", "--text", std::string(s.option), over}), ConfigError) << s.option;
    const std::string top = std::to_string(s.value.max);
    EXPECT_NO_THROW(parseConfig(yamlSetting(s, top), "t")) << s.key;
    EXPECT_NO_THROW(fromCommandLine({"-r", "x", "--text", std::string(s.option), top})) << s.option;
  }
}

// A key two kinds of exporter share has one range, and the file refuses
// what the command line refuses, for every kind that has it.
TEST(Settings, ExporterKeysSharedByKindsHaveOneRange) {
  for (const auto& v9 : netflow9Settings()) {
    for (const auto& ipfix : ipfixSettings()) {
      if (ipfix.key != v9.key) continue;
      EXPECT_EQ(ipfix.option, v9.option) << v9.key;
      EXPECT_EQ(ipfix.value.kind, v9.value.kind) << v9.key;
      EXPECT_EQ(ipfix.value.min, v9.value.min) << v9.key;
      EXPECT_EQ(ipfix.value.max, v9.value.max) << v9.key;
    }
    if (v9.option.empty() || v9.value.kind != ValueSpec::Kind::kWhole) continue;
    const std::string over = std::to_string(v9.value.max + 1);
    EXPECT_THROW(parseConfig("exporters:\n  - type: netflow9\n    collector: 127.0.0.1:2055\n    " +
                                 std::string(v9.key) + ": " + over + "\n",
                             "t"),
                 ConfigError)
        << v9.key;
    EXPECT_THROW(fromCommandLine({"-r", "x", "-n", "127.0.0.1:2055", "-v", "9", std::string(v9.option), over}),
                 ConfigError)
        << v9.option;
    const Config top = fromCommandLine(
        {"-r", "x", "-n", "127.0.0.1:2055", "-v", "9", std::string(v9.option), std::to_string(v9.value.max)});
    ASSERT_EQ(top.exporters.size(), 1u);
  }
}

TEST(Settings, BooleansAreOneGrammar) {
  for (const char* yes : {"true", "yes", "on", "1"})
    EXPECT_TRUE(parseConfig(std::string("run_as_root: ") + yes + "\n", "t").run_as_root) << yes;
  for (const char* no : {"false", "no", "off", "0"})
    EXPECT_FALSE(parseConfig(std::string("input:\n  promiscuous: ") + no + "\n", "t").promiscuous) << no;
}

}  // namespace
}  // namespace flowfold
