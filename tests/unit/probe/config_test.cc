#include "flowfold/probe/config.h"
#include "flowfold/exporters/host_port.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

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
  const auto& tcp = c.exporters[0].as<IpfixOptions>();
  EXPECT_EQ(tcp.host, "2001:db8::1");
  EXPECT_EQ(tcp.port, "4739");
  EXPECT_EQ(tcp.transport, IpfixOptions::Transport::kTcp);
  EXPECT_EQ(tcp.observation_domain, 5u);
  EXPECT_EQ(tcp.mtu, 0u);  // automatic
  EXPECT_EQ(tcp.max_messages_per_second, 20'000u);
  EXPECT_EQ(tcp.encoder, IpfixOptions::Encoder::kDirect);
  EXPECT_EQ(c.exporters[1].type, ExporterConfig::Type::kNetflow9);
  EXPECT_EQ(c.exporters[1].as<NetflowV9Options>().max_datagram, 1200u);
  EXPECT_EQ(c.exporters[1].as<NetflowV9Options>().max_datagrams_per_second, 0u);
  EXPECT_EQ(c.exporters[1].as<NetflowV9Options>().host, "127.0.0.1");
  EXPECT_EQ(c.exporters[2].as<IpfixOptions>().transport, IpfixOptions::Transport::kFile);  // a path alone means a file
  EXPECT_EQ(c.exporters[2].as<IpfixOptions>().encoder, IpfixOptions::Encoder::kLibfixbuf);
  EXPECT_EQ(c.exporters[3].as<TextOptions>().path, "-");
  EXPECT_EQ(c.exporters[3].as<TextOptions>().format, TextOptions::Format::kJson);
  EXPECT_EQ(c.exporters[1].origin, "t.yaml:6:5");
}

TEST(Config, ErrorsNameFileLineAndColumn) {
  EXPECT_EQ(errorOf("cache:\n  bogus: 1\n"),
            "t.yaml:2:3: unknown key 'bogus' in cache (known: active_timeout, idle_timeout, max_flows, split_interval, stop_timeout, "
            "tcp_end_timeout, workers)");
  EXPECT_EQ(errorOf("cache:\n  max_flows: -3\n"), "t.yaml:2:14: 'max_flows' must be a whole number, not '-3'");
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 5 years\n"),
            "t.yaml:2:17: 'idle_timeout' has an unknown unit ' years' (use ms, s, m, h or d)");
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
  // ::ffff:127.0.0.1 is 127.0.0.1 written as IPv6 (issue 16, item 15).
  for (const char* host : {"127.0.0.1", "127.9.9.9", "::1", "localhost", "::ffff:127.0.0.1", "::ffff:127.1.2.3"})
    EXPECT_EQ(automaticDatagramBytes(host), 8192u) << host;
  for (const char* host : {"10.0.0.1", "192.0.2.7", "2001:db8::1", "collector.example", "::ffff:10.0.0.1",
                           "::ffff:128.0.0.1"})
    EXPECT_EQ(automaticDatagramBytes(host), 1400u) << host;
  // Collectors cut longer datagrams: pmacct nfacctd 1.7 at 10000 bytes,
  // GoFlow2 at 9000 (tests/integration: PmacctCollector).
  EXPECT_LE(kLoopbackDatagramBytes, 9000u);
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
  c.run_as_root = true;  // whoever runs the test: root without a user to become is another test
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

TEST(Config, TwoExportersCannotWriteOneOutput) {
  auto errorOfValidating = [](const std::string& yaml) -> std::string {
    Config c = parseConfig("run_as_root: true\ninput:\n  file: x.pcap\nexporters:\n" + yaml, "t.yaml");
    try {
      validateConfig(c);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  const std::string both_stdout = errorOfValidating("  - type: json\n  - type: ipfix\n    transport: file\n    path: '-'\n");
  EXPECT_NE(both_stdout.find("both write to standard output"), std::string::npos) << both_stdout;
  EXPECT_NE(both_stdout.find("t.yaml:6:5"), std::string::npos) << both_stdout;  // the second one
  const std::string one_file =
      errorOfValidating("  - type: text\n    path: out.txt\n  - type: json\n    path: out.txt\n");
  EXPECT_NE(one_file.find("both write to 'out.txt'"), std::string::npos) << one_file;
  EXPECT_EQ(errorOfValidating("  - type: text\n    path: a.txt\n  - type: json\n  - type: ipfix\n    transport: file\n"
                              "    path: a.ipfix\n"),
            "");
  EXPECT_EQ(errorOfValidating("  - type: text\n    path: /dev/null\n  - type: json\n    path: /dev/null\n"), "")
      << "a device keeps nothing to read back: it may be shared";
}

TEST(Config, APasswordInAFileEveryUserCanReadIsWarnedOf) {
  char dir[] = "/tmp/flowfold-config-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/flowfold.yaml";
  auto warningsFor = [&](const std::string& exporter, mode_t mode) {
    {
      std::ofstream(path) << "run_as_root: true\ninput:\n  file: x.pcap\nexporters:\n" << exporter;
    }
    ::chmod(path.c_str(), mode);
    std::string all;
    for (const std::string& w : validateConfig(loadConfigFile(path))) all += w + "\n";
    return all;
  };
  const std::string with_password = "  - type: mysql\n    dsn: mysql://acct@db/netflow\n    password: hunter2\n";
  const std::string warned = warningsFor(with_password, 0644);
  EXPECT_NE(warned.find(path + " holds a MySQL password and every user can read it (mode 0644)"), std::string::npos)
      << warned;
  EXPECT_EQ(warned.find("hunter2"), std::string::npos) << "the warning repeats the password";
  EXPECT_EQ(warningsFor(with_password, 0640), "");
  EXPECT_EQ(warningsFor("  - type: mysql\n    dsn: mysql://acct@db/netflow\n    password_file: /etc/pw\n", 0644), "");
  ::unlink(path.c_str());
  ::rmdir(dir);
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

// Issue 16, item 14: yaml-cpp keeps both values of a repeated key; two
// `exporters:` lists were merged. The second occurrence is the error.
TEST(Config, DuplicateKeysAreErrorsAtTheSecondOne) {
  EXPECT_EQ(errorOf("exporters:\n  - type: json\nexporters:\n  - type: text\n"),
            "t.yaml:3:1: duplicate key 'exporters' in the configuration (first at line 1, column 1)");
  EXPECT_EQ(errorOf("cache:\n  max_flows: 10\n  max_flows: 20\n"),
            "t.yaml:3:3: duplicate key 'max_flows' in cache (first at line 2, column 3)");
  EXPECT_EQ(errorOf("exporters:\n  - type: ipfix\n    collector: 10.0.0.1:4739\n    collector: 10.0.0.2:4739\n"),
            "t.yaml:4:5: duplicate key 'collector' in exporter (first at line 3, column 5)");
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    table: a\n    table: b\n"),
            "t.yaml:5:5: duplicate key 'table' in a mysql exporter (first at line 4, column 5)");
  // `type` first read as mysql, then written again: still the mapping's rule.
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    type: ipfix\n"),
            "t.yaml:4:5: duplicate key 'type' in a mysql exporter (first at line 2, column 5)");
  EXPECT_EQ(errorOf("input:\n  file: a.pcap\n  file: b.pcap\n"),
            "t.yaml:3:3: duplicate key 'file' in input (first at line 2, column 3)");
}

// Issue 16, item 14: strtod read "0x10" as 16 s and "1e3" as 1000 s.
TEST(Config, DurationsAreDecimalNumbersReadExactly) {
  for (const char* bad : {"0x10", "1e3", "inf", "nan", "+5", ".5", "5.", "-1", "0x1p4"})
    EXPECT_EQ(errorOf(std::string("cache:\n  idle_timeout: '") + bad + "'\n"),
              std::string("t.yaml:2:17: 'idle_timeout' must be a duration such as 15, 15s, 500ms or 2m, not '") + bad +
                  "'")
        << bad;
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 010\n"),
            "t.yaml:2:17: 'idle_timeout' = 010 has a leading zero: write the decimal number without it");
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 1.0005\n"),
            "t.yaml:2:17: 'idle_timeout' = 1.0005 is finer than a millisecond");
  // 5124095576031 h is 2^64 ms + 2048 s: it must not wrap around to 2048 s.
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 5124095576031h\n"),
            "t.yaml:2:17: 'idle_timeout' = 5124095576031h is far too long");
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 100000000000h\n"),
            "t.yaml:2:17: 'idle_timeout' = 100000000000h is out of range [1 ms, 604800 s]");
  // Days: 2^64 ms is 213503982 days and a bit; the bound keeps whole * a day's ms in range.
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 213503983d\n"),
            "t.yaml:2:17: 'idle_timeout' = 213503983d is out of range [1 ms, 604800 s]");
  EXPECT_EQ(errorOf("cache:\n  idle_timeout: 100000000001d\n"),
            "t.yaml:2:17: 'idle_timeout' = 100000000001d is far too long");
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 7d\n", "t").cache.idle_timeout_ms, 604'800'000u);
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 0.5\n", "t").cache.idle_timeout_ms, 500u);
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 1.001\n", "t").cache.idle_timeout_ms, 1'001u);
  EXPECT_EQ(parseConfig("cache:\n  idle_timeout: 0.25m\n", "t").cache.idle_timeout_ms, 15'000u);
  EXPECT_EQ(parseConfig("cache:\n  active_timeout: 10\n", "t").cache.active_timeout_ms, 10'000u);
}

TEST(Config, WholeNumbersAreDecimalWithoutALeadingZero) {
  EXPECT_EQ(errorOf("cache:\n  max_flows: 010\n"),
            "t.yaml:2:14: 'max_flows' = 010 has a leading zero: write the decimal number without it");
  EXPECT_EQ(errorOf("cache:\n  max_flows: 0x10\n"), "t.yaml:2:14: 'max_flows' must be a whole number, not '0x10'");
  EXPECT_EQ(errorOf("cache:\n  max_flows: 1e3\n"), "t.yaml:2:14: 'max_flows' must be a whole number, not '1e3'");
  EXPECT_EQ(parseConfig("cache:\n  max_flows: 10\n", "t").cache.max_flows, 10u);
}

// Issue 16, item 14: stats_interval counts seconds; 500ms became 0 (off).
TEST(Config, StatsIntervalTakesWholeSecondsOnly) {
  EXPECT_EQ(errorOf("log:\n  stats_interval: 500ms\n"),
            "t.yaml:2:19: 'stats_interval' = 500ms is not a whole number of seconds, and only whole seconds count "
            "here");
  EXPECT_NE(errorOf("log:\n  stats_interval: 1.5\n").find("t.yaml:2:19: 'stats_interval' = 1.5 is not a whole"),
            std::string::npos);
  EXPECT_EQ(parseConfig("log:\n  stats_interval: 2000ms\n", "t").stats_interval_s, 2u);
  EXPECT_EQ(parseConfig("log:\n  stats_interval: 1m\n", "t").stats_interval_s, 60u);
  EXPECT_EQ(parseConfig("log:\n  stats_interval: 0\n", "t").stats_interval_s, 0u);
}

// Issue 16, item 12: the metrics server refused these after the capture was
// open (exit 1); they are configuration errors, found by --check-config.
TEST(Config, MetricsListenIsALoopbackAddressUnlessAllowed) {
  EXPECT_EQ(errorOf("metrics:\n  listen: 0.0.0.0:9108\n"),
            "t.yaml:2:11: metrics.listen 0.0.0.0:9108 is not a loopback address: set 'allow_remote: true' under "
            "'metrics:' to serve metrics beyond this machine");
  EXPECT_NE(errorOf("metrics:\n  listen: '[2001:db8::1]:9108'\n").find("t.yaml:2:11: metrics.listen [2001:db8::1]"),
            std::string::npos);
  EXPECT_EQ(errorOf("metrics:\n  listen: localhost:9108\n  allow_remote: true\n"),
            "t.yaml:2:11: metrics.listen needs an IP address such as 127.0.0.1:9108 or [::1]:9108, not the name "
            "'localhost' (the endpoint binds exactly one address)");
  // allow_remote after or before listen: the mapping is read as a whole.
  EXPECT_TRUE(parseConfig("metrics:\n  listen: 0.0.0.0:9108\n  allow_remote: true\n", "t").metrics_allow_remote);
  EXPECT_TRUE(parseConfig("metrics:\n  allow_remote: true\n  listen: 0.0.0.0:9108\n", "t").metrics_allow_remote);
  for (const char* ok : {"127.0.0.1:9108", "127.0.0.53:1", "'[::1]:9108'", "'[::ffff:127.0.0.1]:9108'"})
    EXPECT_EQ(errorOf(std::string("metrics:\n  listen: ") + ok + "\n"), "") << ok;
}

Config withJson(const std::string& yaml) {
  Config c = parseConfig(yaml + "exporters:\n  - type: json\n", "t.yaml");
  return c;
}

std::string validationErrorOf(const Config& c, bool running_as_root) {
  try {
    validateConfig(c, running_as_root);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Issue 16, item 12: `user: root` and a user that does not exist failed
// only after the capture was open (exit 1).
TEST(Config, UserAndGroupMustExistAndNotBeRoot) {
  EXPECT_EQ(validationErrorOf(withJson("user: root\n"), false),
            "t.yaml:1:7: 'user' = root is root (uid 0); flowfold runs as root only when asked: leave 'user' out and "
            "set 'run_as_root: true'");
  EXPECT_EQ(validationErrorOf(withJson("user: flowfold-no-such-user\n"), false),
            "t.yaml:1:7: 'user' = flowfold-no-such-user: no such user (create it, e.g. useradd --system "
            "--no-create-home --shell /usr/sbin/nologin flowfold-no-such-user)");
  EXPECT_EQ(validationErrorOf(withJson("user: nobody\ngroup: flowfold-no-such-group\n"), false),
            "t.yaml:2:8: 'group' = flowfold-no-such-group: no such group");
  EXPECT_EQ(validationErrorOf(withJson("user: nobody\n"), true), "");
  EXPECT_EQ(validationErrorOf(withJson("user: nobody\ngroup: root\n"), true), "");
}

TEST(Config, RootWithNoUserToBecomeIsRefusedBeforeTheCaptureOpens) {
  if (getpwnam("flowfold") != nullptr) GTEST_SKIP() << "a 'flowfold' user exists here: it would be used";
  EXPECT_EQ(validationErrorOf(withJson(""), true),
            "refusing to keep running as root after opening the capture: create the 'flowfold' user, set 'user:' in "
            "the configuration, or set 'run_as_root: true'");
  EXPECT_EQ(validationErrorOf(withJson("run_as_root: true\n"), true), "");
  EXPECT_EQ(validationErrorOf(withJson("input:\n  file: x.pcap\n"), true), "");  // a file run keeps no capture open
  EXPECT_EQ(validationErrorOf(withJson(""), false), "");
}

// Issue 16, item 12: with -r the metrics endpoint is not started; say so.
TEST(Config, MetricsListenWithACaptureFileIsAWarning) {
  Config c = withJson("metrics:\n  listen: 127.0.0.1:9108\n");
  EXPECT_TRUE(validateConfig(c, false).empty());
  c.read_file = "x.pcap";
  EXPECT_EQ(validateConfig(c, false),
            std::vector<std::string>{"t.yaml:2:11: metrics.listen is ignored when reading a capture file (-r or "
                                     "input.file): the metrics endpoint serves live captures only"});
}

// Issue 16, item 15: -m 3 --workers 8 kept 8 flows (each worker rounded up).
TEST(Config, MaxFlowsBoundsTheWholeProbe) {
  Config c = withJson("input:\n  file: x.pcap\n");
  c.cache.max_flows = 3;
  c.workers = 8;
  EXPECT_EQ(validationErrorOf(c, false),
            "cache.max_flows = 3 cannot be shared among 8 flow caches (one per worker and interface): give at least "
            "one flow to each, or fewer workers");
  c.cache.max_flows = 10;
  c.workers = 3;
  EXPECT_EQ(validationErrorOf(c, false), "");
  EXPECT_EQ(c.flowCacheCount(), 3u);
  EXPECT_EQ(c.maxFlowsPerCache(), 3u);  // 3 x 3 = 9 <= 10 (rounding up gave 4 x 3 = 12)
  c.cache.max_flows = 8;
  c.workers = 8;
  EXPECT_EQ(c.maxFlowsPerCache(), 1u);
  // Live: a cache per worker on each interface.
  c.read_file.clear();
  c.interfaces = {"eth0", "eth1"};
  c.workers = 2;
  c.cache.max_flows = 103;
  EXPECT_EQ(c.flowCacheCount(), 4u);
  EXPECT_EQ(c.maxFlowsPerCache(), 25u);
  c.interfaces.clear();  // the default interface: one
  EXPECT_EQ(c.flowCacheCount(), 2u);
  EXPECT_EQ(c.maxFlowsPerCache(), 51u);
}

// Issue 16, item 11 (its sibling in the file): `file: ""` was "no file", so a
// live capture on the default interface; `path: ""` of a text exporter was
// standard output.
TEST(Config, EmptyNameIsAnError) {
  EXPECT_EQ(errorOf("input:\n  file: ''\n"), "t.yaml:2:9: 'file' is empty: give a name, or leave the key out");
  EXPECT_EQ(errorOf("input:\n  interface: [eth0, '']\n"),
            "t.yaml:2:21: 'interface' is empty: give a name, or leave the key out");
  EXPECT_EQ(errorOf("exporters:\n  - type: text\n    path: ''\n"),
            "t.yaml:3:11: 'path' is empty: give a name, or leave the key out");
  EXPECT_EQ(errorOf("input:\n  interface: ''\n"),
            "t.yaml:2:14: 'interface' is empty: give a name, or leave the key out");
  EXPECT_TRUE(parseConfig("input:\n  interface: default\n", "t").interfaces.empty());  // the documented word
  EXPECT_EQ(parseConfig("exporters:\n  - type: text\n", "t").exporters.at(0).as<TextOptions>().path, "-");
}

}  // namespace
}  // namespace flowfold

namespace flowfold {
namespace {

TEST(Config, RotationOfFileOutputs) {
  const Config c = parseConfig(
      "exporters:\n"
      "  - type: ipfix\n    path: /var/log/flowfold/flows.ipfix\n    rotate: 5m\n    max_files: 288\n"
      "  - type: json\n    path: /var/log/flowfold/flows.json\n    rotate: 1h\n    max_age: 30d\n"
      "  - type: text\n    path: /var/log/flowfold/flows.txt\n",
      "t.yaml");
  ASSERT_EQ(c.exporters.size(), 3u);
  EXPECT_EQ(c.exporters[0].rotation()->interval_ms, 300'000u);
  EXPECT_EQ(c.exporters[0].rotation()->max_files, 288u);
  EXPECT_EQ(c.exporters[0].rotation()->max_age_ms, 0u);
  EXPECT_EQ(c.exporters[1].rotation()->interval_ms, 3'600'000u);
  EXPECT_EQ(c.exporters[1].rotation()->max_age_ms, 30ull * 86'400'000u);
  EXPECT_EQ(c.exporters[2].rotation()->interval_ms, 0u);
}

TEST(Config, RotationIsRefusedWhereItCannotApply) {
  const auto err = [](const std::string& yaml) {
    try {
      parseConfig(yaml, "t.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(err("exporters:\n  - type: ipfix\n    collector: 127.0.0.1:4739\n    rotate: 5m\n"),
            "t.yaml:2:5: 'rotate' is for an exporter that writes a file (ipfix with 'path', text, json)");
  EXPECT_EQ(err("exporters:\n  - type: json\n    rotate: 5m\n"),
            "t.yaml:2:5: 'rotate' needs a 'path' (a file in a directory), not standard output");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: '-'\n    rotate: 5m\n"),
            "t.yaml:2:5: 'rotate' needs a 'path' (a file in a directory), not standard output");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: /tmp/f\n    max_files: 3\n"),
            "t.yaml:2:5: 'max_files' and 'max_age' cap rotated files: set 'rotate' too (e.g. rotate: 5m)");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: /tmp/f\n    rotate: 1h\n    max_age: 30m\n"),
            "t.yaml:2:5: 'max_age' is shorter than 'rotate': every file would be removed as soon as it is complete");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: /tmp/f\n    rotate: 90s\n"), "(accepted)");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: /tmp/f\n    rotate: 1.5s\n"),
            "t.yaml:4:13: 'rotate' = 1.5s is not a whole number of seconds, and only whole seconds count here");
  EXPECT_EQ(err("exporters:\n  - type: text\n    path: /tmp/f\n    rotate: 2d\n"),
            "t.yaml:4:13: 'rotate' = 2d is out of range [1000 ms, 86400 s]");
}

}  // namespace
}  // namespace flowfold

namespace flowfold {
namespace {

// A key that another kind of exporter has would do nothing here: it is
// refused where it is written, with the kind's own keys.
TEST(Config, EachKindOfExporterTakesOnlyItsOwnKeys) {
  const auto err = [](const std::string& yaml) {
    try {
      parseConfig(yaml, "t.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(err("exporters:\n  - type: text\n    mtu: 1200\n"),
            "t.yaml:3:10: 'mtu' is not a setting of a text exporter (its settings: type, path, rotate, max_files, "
            "max_age)");
  EXPECT_EQ(err("exporters:\n  - type: netflow9\n    collector: 127.0.0.1:2055\n    encoder: direct\n"),
            "t.yaml:4:14: 'encoder' is not a setting of a netflow9 exporter (its settings: type, collector, "
            "observation_domain, mtu, template_refresh, template_refresh_packets, rate_limit, options_interval)");
  EXPECT_EQ(err("exporters:\n  - type: netflow9\n    collector: 127.0.0.1:2055\n    rotate: 5m\n"),
            "t.yaml:4:13: 'rotate' is not a setting of a netflow9 exporter (its settings: type, collector, "
            "observation_domain, mtu, template_refresh, template_refresh_packets, rate_limit, options_interval)");
  EXPECT_EQ(err("exporters:\n  - type: json\n    transport: tcp\n"),
            "t.yaml:3:16: 'transport' is not a setting of a json exporter (its settings: type, path, rotate, "
            "max_files, max_age)");
  // The keys are read whatever their order: the type may come last.
  EXPECT_EQ(err("exporters:\n  - mtu: 1200\n    collector: 127.0.0.1:2055\n    type: netflow9\n"), "(accepted)");
  EXPECT_EQ(err("exporters:\n  - tcp_buffer_mb: 8\n    type: ipfix\n    collector: 127.0.0.1:4739\n    "
                "transport: tcp\n"),
            "(accepted)");
}

TEST(Config, LocalNetworksTakeAListOrOneCidrOfEitherVersion) {
  const Config c = parseConfig("local_networks: [10.0.0.0/8, '2001:db8::/32', 192.0.2.7]\n", "t.yaml");
  EXPECT_EQ(c.local_networks.text(),
            (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"}));
  const Config block = parseConfig("local_networks:\n  - 0.0.0.0/0\n  - ::/0\n", "t.yaml");
  EXPECT_EQ(block.local_networks.size(), 2u);
  EXPECT_EQ(parseConfig("local_networks: fd00::/8\n", "t.yaml").local_networks.text(),
            (std::vector<std::string>{"fd00::/8"}));
  EXPECT_TRUE(parseConfig("cache:\n  max_flows: 10\n", "t.yaml").local_networks.empty());
}

TEST(Config, BadLocalNetworksAreNamedAtTheirPlace) {
  EXPECT_EQ(errorOf("local_networks:\n  - 10.0.0.0/8\n  - 10.1.0.0/8\n"),
            "t.yaml:3:5: local_networks: '10.1.0.0/8' has host bits set below /8 (the network is 10.0.0.0/8)");
  EXPECT_EQ(errorOf("local_networks: [10.0.0.0/8, 10.0.0.0/33]\n"),
            "t.yaml:1:30: local_networks: '10.0.0.0/33': the prefix length must be a number from 0 to 32");
  EXPECT_EQ(errorOf("local_networks:\n  - lan\n"),
            "t.yaml:2:5: local_networks: 'lan' is not an IPv4 or IPv6 network (ADDRESS/LENGTH, e.g. 192.0.2.0/24 "
            "or 2001:db8::/32)");
  EXPECT_EQ(errorOf("local_networks:\n  - '2001:db8::/129'\n"),
            "t.yaml:2:5: local_networks: '2001:db8::/129': the prefix length must be a number from 0 to 128");
  EXPECT_NE(errorOf("local_networks:\n  - {a: 1}\n"), "");
}
TEST(Config, RecorderKeys) {
  const Config c = parseConfig(
      "recorder:\n  directory: [/data1/ring, /data2/ring]\n  max_size: 500G\n  min_free: 20G\n"
      "  max_age: 7d\n  segment_size: 256M\n  snaplen: 128\n  buffer_size: 16M\n",
      "t.yaml");
  EXPECT_EQ(c.recorder.directories, (std::vector<std::string>{"/data1/ring", "/data2/ring"}));
  EXPECT_EQ(c.recorder.max_size, 500ull << 30);
  EXPECT_EQ(c.recorder.min_free_bytes, 20ull << 30);
  EXPECT_EQ(c.recorder.max_age_ms, 7ull * 86'400'000);
  EXPECT_EQ(c.recorder.segment_size, 256ull << 20);
  EXPECT_EQ(c.recorder.snaplen, 128u);
  EXPECT_EQ(c.recorder.buffer_size, 16ull << 20);
  const Config pct = parseConfig("recorder:\n  directory: /r\n  min_free: 12.5%\n", "t.yaml");
  EXPECT_EQ(pct.recorder.min_free_percent, 12.5);
  EXPECT_EQ(pct.recorder.min_free_bytes, 0u);
  EXPECT_FALSE(parseConfig("", "t.yaml").recorder.enabled());
  EXPECT_EQ(errorOf("recorder:\n  directory: /r\n  max_size: large\n"),
            "t.yaml:3:13: 'max_size' must be a size such as 512M or 1G, not 'large'");
  EXPECT_EQ(errorOf("recorder:\n  directory: /r\n  max_size: 5X\n"),
            "t.yaml:3:13: 'max_size' has an unknown unit 'X' (use k, M, G or T)");
  EXPECT_EQ(errorOf("recorder:\n  min_free: 100%\n"),
            "t.yaml:2:13: 'min_free' = 100% must be a percentage in [0, 100), such as 5%, or a size such as 20G");
  EXPECT_EQ(errorOf("recorder:\n  directory: ''\n"),
            "t.yaml:2:14: 'directory' is empty: give a name, or leave the key out");
  EXPECT_EQ(errorOf("recorder:\n  dir: /r\n"),
            "t.yaml:2:3: unknown key 'dir' in recorder (known: buffer_size, directory, max_age, max_size, min_free, "
            "segment_size, snaplen)");
}

TEST(Config, RecorderNeedsRoomForTwoSegments) {
  Config c = parseConfig("recorder:\n  directory: /tmp\n  max_size: 1G\n  segment_size: 1G\n", "t.yaml");
  c.read_file = "x.pcap";
  c.exporters.push_back(ExporterConfig::ofType(ExporterConfig::Type::kText, "t"));
  try {
    validateConfig(c, false);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than two segments"), std::string::npos) << e.what();
  }
  c.recorder.max_size = 0;
  EXPECT_NO_THROW(validateConfig(c, false));
  c.read_file.clear();  // live: recorded too
  EXPECT_NO_THROW(validateConfig(c, false));
}

TEST(Config, MysqlAccountingIsAMappingWithItsOwnPlaces) {
  const Config c = parseConfig(
      "exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    accounting:\n      interval: 5m\n"
      "      by: [host, service]\n      retention_days: 400\n      flush: 1m\n",
      "t.yaml");
  const auto& a = c.exporters[0].as<MysqlOptions>().accounting;
  EXPECT_EQ(a.interval_ms, 300'000u);
  EXPECT_TRUE(a.by_host);
  EXPECT_FALSE(a.by_host_pair);
  EXPECT_TRUE(a.by_service);
  EXPECT_EQ(a.retention_days, 400u);
  EXPECT_EQ(a.flush_ms, 60'000u);
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    accounting:\n      interval: 7m\n"),
            "t.yaml:5:17: mysql option accounting_interval: 7m does not divide a day (1m, 5m, 10m, 15m, 30m, 1h, "
            "... do)");
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    accounting:\n      every: 5m\n"),
            "t.yaml:5:7: unknown key 'every' in 'accounting' of a mysql exporter (known: interval, by, "
            "retention_days, flush)");
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    accounting: 5m\n"),
            "t.yaml:4:17: 'accounting' of a mysql exporter must be a mapping (interval, by, retention_days, "
            "flush)");
  EXPECT_EQ(errorOf("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n    accounting:\n      interval: 1h\n"
                    "      by: [host, ports]\n"),
            "t.yaml:6:11: mysql option accounting_by: unknown table 'ports' (host, host_pair, service)");
}

TEST(Config, AccountingIntervalsSetTheCacheSplitOrMustBeMultiplesOfIt) {
  const std::string two = "exporters:\n"
                          "  - type: mysql\n    dsn: mysql://u@h/d\n    accounting:\n      interval: 15m\n"
                          "  - type: mysql\n    dsn: mysql://u@h/e\n    accounting:\n      interval: 1h\n";
  Config c = parseConfig(two, "t.yaml");
  std::vector<std::string> notes;
  splitAtAccountingIntervals(c, &notes);
  EXPECT_EQ(c.cache.split_interval_ms, 900'000u);  // divides both
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("cache.split_interval set to 15m"), std::string::npos);
  EXPECT_EQ(accountingSplitMismatch(c, 900'000), "");
  EXPECT_EQ(accountingSplitMismatch(c, 300'000), "");
  EXPECT_NE(accountingSplitMismatch(c, 0).find("does not split them"), std::string::npos);
  EXPECT_NE(accountingSplitMismatch(c, 3'600'000).find("t.yaml:2:5: the accounting interval 15m"), std::string::npos);

  Config set = parseConfig("cache:\n  split_interval: 1m\n" + two, "t.yaml");
  splitAtAccountingIntervals(set);
  EXPECT_EQ(set.cache.split_interval_ms, 60'000u);  // kept: it divides both
  Config bad = parseConfig("cache:\n  split_interval: 7m\n" + two, "t.yaml");
  try {
    splitAtAccountingIntervals(bad);
    ADD_FAILURE() << "a split interval that does not divide the accounting interval was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the accounting interval 15m is not a multiple of cache.split_interval (7m)"),
              std::string::npos);
  }
  Config none = parseConfig("exporters:\n  - type: mysql\n    dsn: mysql://u@h/d\n", "t.yaml");
  splitAtAccountingIntervals(none);
  EXPECT_EQ(none.cache.split_interval_ms, 0u);
}

}  // namespace
}  // namespace flowfold
