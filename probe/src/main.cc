// flowfold: capture -> flows -> IPFIX / NetFlow v9 / text.

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>

#include <unistd.h>

#include "flowfold/exporters/log.h"
#include "flowfold/probe/capture.h"
#include "flowfold/probe/cli.h"
#include "flowfold/probe/config.h"
#include "flowfold/probe/export_stage.h"
#include "flowfold/probe/exporter_factory.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/progress.h"
#include "flowfold/probe/stats.h"
#include "flowfold/probe/version.h"

namespace flowfold {
namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void onStopSignal(int) { g_stop = 1; }

void installSignalHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = onStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout/TCP peer is an error to count, not a death
}

LogLevel parseLevel(const std::string& s) {
  if (s == "error") return LogLevel::kError;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "debug") return LogLevel::kDebug;
  return LogLevel::kInfo;
}

int runFile(const Config& config) {
  PcapFileSource source(config.read_file, config.bpf_filter);
  const int dlt = source.datalink();
  if (!probe::Decoder::supportsLinkType(dlt)) {
    logWarn("link type %s of '%s' is not supported: its packets are counted as unsupported_link",
            source.datalinkName().c_str(), config.read_file.c_str());
  }
  ExportStage stage(makeExporters(config.exporters), config.export_queue_batches);
  PipelineOptions options;
  options.cache = config.cache;
  options.export_batch = config.export_batch;
  options.wait_when_queue_full = true;  // a file can wait; nothing is dropped
  Pipeline pipeline(options, dlt, stage);

  installSignalHandlers();
  using Clock = std::chrono::steady_clock;
  const auto stats_every = std::chrono::seconds(config.stats_interval_s);
  auto next_stats = Clock::now() + stats_every;
  ProgressBar progress(isatty(STDERR_FILENO) == 1 && logLevel() >= LogLevel::kInfo, source.fileSize());
  PcapFileSource::Result r = PcapFileSource::Result::kMore;
  while (!g_stop && (r = source.dispatch(pipeline, 4096)) == PcapFileSource::Result::kMore) {
    progress.update(source.bytesRead(), source.packetsRead());
    if (config.stats_interval_s != 0 && Clock::now() >= next_stats) {
      progress.finish();
      pipeline.publishStats();
      logInfo("%s", formatStatsLine(pipeline.stats(), stage).c_str());
      next_stats += stats_every;
    }
  }
  if (g_stop) {
    // A signal interrupts a blocking read (stdin, a pipe): that is a stop, not a cut capture.
    logInfo("stopping on signal: exporting every flow before exit");
    r = PcapFileSource::Result::kEnd;
  }
  progress.finish();
  pipeline.finish();
  stage.finish();
  logInfo("%s", formatStatsLine(pipeline.stats(), stage).c_str());
  if (r == PcapFileSource::Result::kTruncated) {
    logWarn("capture '%s' is cut short or corrupt after %llu packets (%s); the flows read so far were exported",
            config.read_file.c_str(), static_cast<unsigned long long>(pipeline.stats().decode.packets),
            source.error().c_str());
    return kExitTruncated;
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  CommandLine cl;
  Config config;
  try {
    config = parseCommandLine(argc, argv, cl);
    if (cl.show_help) {
      std::fputs(usageText().c_str(), stdout);
      return kExitOk;
    }
    if (cl.show_version) {
      std::printf("flowfold %s\n", kVersion);
      return kExitOk;
    }
    setLogLevel(parseLevel(config.log_level));
    logToSyslog(config.log_syslog);
    if (cl.check_config) {
      // A config file may leave the input to the command line or service.
      if (config.exporters.empty())
        throw ConfigError("no exporter: give a collector (-n HOST:PORT), --text, --json, --ipfix-file or 'exporters:'");
      std::printf("%s: configuration OK (%zu exporter%s)\n",
                  cl.config_file.empty() ? "command line" : cl.config_file.c_str(), config.exporters.size(),
                  config.exporters.size() == 1 ? "" : "s");
      for (const auto& e : config.exporters) std::printf("  %s\n", e.describe().c_str());
      return kExitOk;
    }
    validateConfig(config);
  } catch (const ConfigError& e) {
    logError("%s", e.what());
    return kExitUsage;
  }

  if (!config.interface.empty()) {
    logError("live capture (-i %s) is not available in this build yet; read a file with -r", config.interface.c_str());
    return kExitUsage;
  }
  try {
    return runFile(config);
  } catch (const InputError& e) {
    logError("%s", e.what());
    return kExitInput;
  } catch (const std::exception& e) {
    logError("%s", e.what());
    return kExitRuntime;
  }
}

}  // namespace
}  // namespace flowfold

int main(int argc, char** argv) { return flowfold::run(argc, argv); }
