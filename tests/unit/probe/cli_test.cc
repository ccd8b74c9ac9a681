#include "flowfold/probe/cli.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <vector>

namespace flowfold {
namespace {

Config parse(std::vector<std::string> args, CommandLine& cl) {
  args.insert(args.begin(), "flowfold");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parseCommandLine(static_cast<int>(args.size()), argv.data(), cl);
}

TEST(CommandLine, SoftflowdLettersBuildExporters) {
  CommandLine cl;
  const Config c = parse({"-r", "in.pcap", "-n", "127.0.0.1:2055", "-n", "[::1]:9995", "-v", "9", "-m", "5000",
                          "-t", "maxlife=120", "-t", "general=30", "tcp", "port", "80"},
                         cl);
  EXPECT_EQ(c.read_file, "in.pcap");
  ASSERT_EQ(c.exporters.size(), 2u);
  EXPECT_EQ(c.exporters[0].type, ExporterConfig::Type::kNetflow9);
  EXPECT_EQ(c.exporters[1].as<NetflowV9Options>().host, "::1");
  EXPECT_EQ(c.exporters[1].as<NetflowV9Options>().port, "9995");
  EXPECT_EQ(c.cache.max_flows, 5000u);
  EXPECT_EQ(c.cache.active_timeout_ms, 120'000u);
  EXPECT_EQ(c.cache.idle_timeout_ms, 30'000u);
  EXPECT_EQ(c.bpf_filter, "tcp port 80");
}

TEST(CommandLine, TcpEndTimeoutSoftflowdStyleAndLong) {
  CommandLine cl;
  EXPECT_EQ(parse({"-r", "x"}, cl).cache.tcp_end_timeout_ms, 10'000u);  // the default
  EXPECT_EQ(parse({"-r", "x", "-t", "tcp_end=3"}, cl).cache.tcp_end_timeout_ms, 3'000u);
  EXPECT_EQ(parse({"-r", "x", "-t", "tcp_end=0"}, cl).cache.tcp_end_timeout_ms, 0u);  // off
  EXPECT_EQ(parse({"-r", "x", "--tcp-end-timeout", "500ms"}, cl).cache.tcp_end_timeout_ms, 500u);
  EXPECT_THROW(parse({"-r", "x", "-t", "tcp_end=-1"}, cl), ConfigError);
  // An unknown name still fails; 0 stays refused for the other timeouts.
  EXPECT_THROW(parse({"-r", "x", "-t", "tcp_rst=3"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "-t", "idle=0"}, cl), ConfigError);
}

TEST(CommandLine, IpfixOverTcpAndHumanOutputs) {
  CommandLine cl;
  const Config c = parse({"-r", "-", "-n", "c:4739", "-P", "tcp", "--json=out.json", "--text",
                          "--ipfix-file", "f.ipfix", "--export-rate", "0", "--observation-domain", "7"},
                         cl);
  ASSERT_EQ(c.exporters.size(), 4u);
  EXPECT_EQ(c.exporters[0].type, ExporterConfig::Type::kIpfix);
  EXPECT_EQ(c.exporters[0].as<IpfixOptions>().transport, IpfixOptions::Transport::kTcp);
  EXPECT_EQ(c.exporters[1].type, ExporterConfig::Type::kJson);
  EXPECT_EQ(c.exporters[1].as<TextOptions>().path, "out.json");
  EXPECT_EQ(c.exporters[2].as<TextOptions>().path, "-");
  EXPECT_EQ(c.exporters[3].as<IpfixOptions>().transport, IpfixOptions::Transport::kFile);
  // The exporter settings apply to every exporter that has them.
  for (size_t i : {0, 3}) {
    EXPECT_EQ(c.exporters[i].as<IpfixOptions>().max_messages_per_second, 0u);
    EXPECT_EQ(c.exporters[i].as<IpfixOptions>().observation_domain, 7u);
  }
  const Config v9 = parse({"-r", "-", "-n", "c:2055", "-v", "9", "--mysql", "mysql://u@db/flows",
                           "--observation-domain", "8", "--mtu", "900"},
                          cl);
  EXPECT_EQ(v9.exporters.at(0).as<NetflowV9Options>().source_id, 8u);
  EXPECT_EQ(v9.exporters.at(0).as<NetflowV9Options>().max_datagram, 900u);
  EXPECT_EQ(v9.exporters.at(1).as<MysqlOptions>().observation_domain, 8u);  // a sink's key of the same name
  EXPECT_EQ(v9.exporters.at(1).as<MysqlOptions>().host, "db");
}

TEST(CommandLine, RejectsWhatItCannotDo) {
  CommandLine cl;
  EXPECT_THROW(parse({"-r", "x", "-n", "h:1", "-v", "9", "-P", "tcp"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "-v", "5"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "-m", "0"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "-t", "idle"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "-t", "lifetime=3"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "--nope"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r"}, cl), ConfigError);
}

TEST(CommandLine, TunnelsOptionOverridesTheFile) {
  CommandLine cl;
  EXPECT_EQ(parse({"-r", "x"}, cl).tunnels, probe::TunnelMode::kOuter);
  EXPECT_EQ(parse({"-r", "x", "--tunnels", "inner"}, cl).tunnels, probe::TunnelMode::kInner);
  EXPECT_EQ(parse({"-r", "x", "--tunnels=both"}, cl).tunnels, probe::TunnelMode::kBoth);
  char path[] = "/tmp/flowfold-cli-tunnels-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string yaml = "decoder:\n  tunnels: inner\n";
  ASSERT_EQ(write(fd, yaml.data(), yaml.size()), static_cast<ssize_t>(yaml.size()));
  close(fd);
  EXPECT_EQ(parse({"-c", path, "-r", "x"}, cl).tunnels, probe::TunnelMode::kInner);
  EXPECT_EQ(parse({"-c", path, "-r", "x", "--tunnels", "outer"}, cl).tunnels, probe::TunnelMode::kOuter);
  unlink(path);
  try {
    parse({"-r", "x", "--tunnels", "all"}, cl);
    ADD_FAILURE() << "--tunnels all accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "command line: --tunnels takes outer, inner or both, not 'all'");
  }
  EXPECT_THROW(parse({"-r", "x", "--tunnels"}, cl), ConfigError);
}

TEST(CommandLine, CheckConfigTakesTheFileAsAnArgumentToo) {
  const std::string path = ::testing::TempDir() + "/check.yaml";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("exporters:\n  - type: json\n", f);
  std::fclose(f);
  CommandLine cl;
  const Config c = parse({"--check-config", path}, cl);
  EXPECT_TRUE(cl.check_config);
  EXPECT_EQ(cl.config_file, path);
  EXPECT_EQ(c.exporters.size(), 1u);
  EXPECT_TRUE(c.bpf_filter.empty());
}

TEST(CommandLine, HelpAndVersionFlags) {
  CommandLine a, b;
  parse({"--help"}, a);
  parse({"--version"}, b);
  EXPECT_TRUE(a.show_help);
  EXPECT_TRUE(b.show_version);
  EXPECT_NE(usageText().find("-r FILE"), std::string::npos);
}

std::string errorOf(std::vector<std::string> args) {
  CommandLine cl;
  try {
    parse(std::move(args), cl);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Issue 16, item 10: a long option without its value printed optopt as a
// char: "missing value: -\xEF".
TEST(CommandLine, MissingValueNamesTheOption) {
  for (const char* option : {"--mtu", "--workers", "--ipfix-file", "--log-level", "--tunnels", "--mysql",
                             "--export-rate", "--observation-domain", "--active-timeout", "--idle-timeout",
                             "--ipfix-encoder", "-r", "-i", "-n", "-c", "-m", "-t", "-v", "-P"})
    EXPECT_EQ(errorOf({"--text", option}),
              std::string("command line: ") + option + " needs a value (see flowfold --help)");
  EXPECT_EQ(errorOf({"--text", "--mt"}), "command line: --mtu needs a value (see flowfold --help)");  // abbreviated
}

TEST(CommandLine, UnknownOptionsAndStrayValuesAreNamedAsTyped) {
  EXPECT_EQ(errorOf({"--text", "--nope"}), "command line: unknown option --nope (see flowfold --help)");
  EXPECT_EQ(errorOf({"--text", "--nope=3"}), "command line: unknown option --nope (see flowfold --help)");
  EXPECT_EQ(errorOf({"--text", "-x"}), "command line: unknown option -x (see flowfold --help)");
  EXPECT_EQ(errorOf({"--text", "--version=1"}), "command line: --version takes no value (see flowfold --help)");
  EXPECT_EQ(errorOf({"--text", "--check-config=x"}),
            "command line: --check-config takes no value (see flowfold --help)");
}

// Issue 16, item 11: `-r ''` was taken as "no file" and captured live on the
// default interface; `-c ''` read no configuration at all.
TEST(CommandLine, EmptyValueIsABadCommandLine) {
  for (const char* option : {"-r", "-i", "-n", "-c", "-v", "-P", "-m", "-t", "--ipfix-file", "--mysql", "--log-level",
                             "--tunnels", "--mtu", "--workers", "--ipfix-encoder", "--active-timeout"})
    EXPECT_EQ(errorOf({"--text", option, ""}),
              std::string("command line: ") + option + " needs a value, not an empty string");
  EXPECT_EQ(errorOf({"-r", "x", "--mtu="}), "command line: --mtu needs a value, not an empty string");
  EXPECT_EQ(errorOf({"-r", "x", "--text="}),
            "command line: --text= needs a file name (--text alone writes to standard output)");
  EXPECT_EQ(errorOf({"-r", "x", "--json="}),
            "command line: --json= needs a file name (--json alone writes to standard output)");
  CommandLine cl;
  EXPECT_EQ(parse({"-r", "x", "--text"}, cl).exporters.at(0).as<TextOptions>().path, "-");  // stdout, as documented
}

TEST(CommandLine, LocalNetworksReplaceTheFilesAndAddUp) {
  CommandLine cl;
  const Config c =
      parse({"-r", "x", "--text", "--local-networks", "10.0.0.0/8,2001:db8::/32", "--local-networks", "192.0.2.0/24"}, cl);
  EXPECT_EQ(c.local_networks.text(), (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"}));
  try {
    parse({"-r", "x", "--text", "--local-networks", "10.0.0.0/8,10.0.0.1/24"}, cl);
    ADD_FAILURE() << "accepted a network with host bits";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "command line: --local-networks: '10.0.0.1/24' has host bits set below /24 (the network is "
                 "10.0.0.0/24)");
  }
  EXPECT_THROW(parse({"-r", "x", "--text", "--local-networks", "10.0.0.0/8,"}, cl), ConfigError);
}
TEST(CommandLine, RecordDirectoriesAndSize) {
  CommandLine cl;
  const Config c = parse({"-r", "x", "--text", "--record", "/a", "--record", "/b", "--record-size", "2G"}, cl);
  EXPECT_EQ(c.recorder.directories, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(c.recorder.max_size, 2ull << 30);
  EXPECT_THROW(parse({"-r", "x", "--text", "--record-size", "2 G"}, cl), ConfigError);
  EXPECT_THROW(parse({"-r", "x", "--text", "--record", ""}, cl), ConfigError);
}

}  // namespace
}  // namespace flowfold
