// fuzz_config: arbitrary text through parseConfig() and validateConfig().
//
// The contract (probe/config/include/flowfold/probe/config.h, README
// "Configuration reference"): a configuration either parses or is rejected
// with a ConfigError whose message starts with "NAME:LINE:COLUMN: ".
// Any other exception escaping is a bug (main would report it as an internal
// error rather than file:line:column); libFuzzer reports it as a crash.
// validateConfig() may throw ConfigError only. A configuration that parses
// must hold values inside the documented ranges.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "flowfold/probe/config.h"
#include "fuzz_util.h"

namespace {

constexpr const char* kName = "fuzz.yaml";


bool isDigits(const std::string& s, size_t from, size_t to) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// "fuzz.yaml:LINE:COLUMN: ..."
void checkLocated(const std::string& message) {
  const std::string prefix = std::string(kName) + ":";
  bool ok = message.compare(0, prefix.size(), prefix) == 0;
  if (ok) {
    const size_t line_end = message.find(':', prefix.size());
    const size_t col_end = line_end == std::string::npos ? line_end : message.find(':', line_end + 1);
    ok = col_end != std::string::npos && isDigits(message, prefix.size(), line_end) &&
         isDigits(message, line_end + 1, col_end) && message.compare(col_end, 2, ": ") == 0;
  }
  if (!ok) {
    std::fprintf(stderr, "fuzz_config: ConfigError without file:line:column: %s\n", message.c_str());
    std::abort();
  }
}

void checkRanges(const flowfold::Config& c) {
  FUZZ_CHECK(c.config_path == kName);
  FUZZ_CHECK(c.snaplen >= 64 && c.snaplen <= 262'144);
  FUZZ_CHECK(c.buffer_size >= (1u << 20) && c.buffer_size <= (4ull << 30));
  FUZZ_CHECK(c.cache.max_flows >= 1 && c.cache.max_flows <= (1u << 30));
  FUZZ_CHECK(c.cache.active_timeout_ms >= 1 && c.cache.active_timeout_ms <= 7 * 86'400'000ull);
  FUZZ_CHECK(c.cache.idle_timeout_ms >= 1 && c.cache.idle_timeout_ms <= 7 * 86'400'000ull);
  FUZZ_CHECK(c.stats_interval_s <= 86'400);
  FUZZ_CHECK(c.recorder.segment_size >= (64u << 10) && c.recorder.segment_size <= (uint64_t{64} << 30));
  FUZZ_CHECK(c.recorder.snaplen >= 64 && c.recorder.snaplen <= 262'144);
  FUZZ_CHECK(c.recorder.min_free_percent >= 0 && c.recorder.min_free_percent < 100);
  for (const auto& d : c.recorder.directories) FUZZ_CHECK(!d.empty());
  FUZZ_CHECK(c.log_level == "error" || c.log_level == "warn" || c.log_level == "info" ||
             c.log_level == "debug");
  for (const auto& e : c.exporters) {
    using T = flowfold::ExporterConfig;
    FUZZ_CHECK(e.origin.rfind(std::string(kName) + ":", 0) == 0);
    switch (e.type) {
      case T::Type::kText:
      case T::Type::kJson:
        FUZZ_CHECK(!e.as<flowfold::TextOptions>().path.empty());
        break;
      case T::Type::kNetflow9: {
        const auto& o = e.as<flowfold::NetflowV9Options>();
        FUZZ_CHECK(!o.host.empty() && !o.port.empty());
        FUZZ_CHECK(o.max_datagram == 0 || (o.max_datagram >= 256 && o.max_datagram <= 65'000));
        FUZZ_CHECK(o.template_refresh_ms >= 1'000 && o.template_refresh_ms <= 86'400'000);
        FUZZ_CHECK(o.template_refresh_packets >= 1 && o.template_refresh_packets <= 1'000'000);
        FUZZ_CHECK(o.max_datagrams_per_second <= 100'000'000);
        break;
      }
      case T::Type::kIpfix: {
        const auto& o = e.as<flowfold::IpfixOptions>();
        if (o.transport == flowfold::IpfixOptions::Transport::kFile) FUZZ_CHECK(!o.path.empty());
        else FUZZ_CHECK(!o.host.empty() && !o.port.empty());
        FUZZ_CHECK(o.mtu == 0 || (o.mtu >= 256 && o.mtu <= 65'000));
        FUZZ_CHECK(o.template_refresh_ms >= 1'000 && o.template_refresh_ms <= 86'400'000);
        FUZZ_CHECK(o.template_refresh_packets >= 1 && o.template_refresh_packets <= 1'000'000);
        FUZZ_CHECK(o.max_messages_per_second <= 100'000'000);
        break;
      }
      case T::Type::kMysql:  // checked by validateMysqlOptions
        break;
    }
    std::string e_host, e_port;
    if (const auto* o = std::get_if<flowfold::IpfixOptions>(&e.options)) e_host = o->host, e_port = o->port;
    if (const auto* o = std::get_if<flowfold::NetflowV9Options>(&e.options)) e_host = o->host, e_port = o->port;
    if (!e_host.empty()) {
      // What parseHostPort accepted it must accept again (the CLI re-parses).
      std::string host, port;
      const std::string text = e_host.find(':') != std::string::npos ? "[" + e_host + "]:" + e_port
                                                                      : e_host + ":" + e_port;
      flowfold::parseHostPort(text, host, port, "fuzz");
      FUZZ_CHECK(host == e_host && port == e_port);
    }
    FUZZ_CHECK(!e.describe().empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  flowfold::Config config;
  try {
    config = flowfold::parseConfig(text, kName);
  } catch (const flowfold::ConfigError& e) {
    checkLocated(e.what());
    return 0;
  }
  // Anything else propagates: libFuzzer reports the uncaught exception.
  checkRanges(config);
  try {
    flowfold::validateConfig(config);
  } catch (const flowfold::ConfigError&) {
  }
  return 0;
}
