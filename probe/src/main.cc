// flowfold: capture -> flows -> IPFIX / NetFlow v9 / text.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <map>
#include <numeric>
#include <thread>
#include <vector>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>

#include <pthread.h>
#include <unistd.h>

#include "flowfold/dpi/dpi.h"
#include "flowfold/exporters/app_names.h"
#include "flowfold/log.h"
#include "flowfold/probe/capture.h"
#include "flowfold/probe/cli.h"
#include "flowfold/probe/config.h"
#include "flowfold/probe/export_stage.h"
#include "flowfold/probe/flow_log_exporter.h"
#include "flowfold/probe/extract.h"
#include "flowfold/probe/live_capture.h"
#include "flowfold/probe/metrics.h"
#include "flowfold/probe/metrics_families.h"
#include "flowfold/probe/privileges.h"
#include "flowfold/probe/exporter_factory.h"
#include "flowfold/probe/packet_sink.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/progress.h"
#include "flowfold/probe/recording_sink.h"
#include "flowfold/probe/service_notify.h"
#include "flowfold/probe/sharded_pipeline.h"
#include "flowfold/probe/stats.h"
#include "flowfold/probe/version.h"

namespace flowfold {
namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;
volatile std::sig_atomic_t g_dump_stats = 0;
extern "C" void onStopSignal(int) { g_stop = 1; }
extern "C" void onReloadSignal(int) { g_reload = 1; }
extern "C" void onStatsSignal(int) { g_dump_stats = 1; }

void installSignalHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: a blocking read returns EINTR, so the loop sees the flag.
  sa.sa_handler = onStopSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = onReloadSignal;
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = onStatsSignal;
  sigaction(SIGUSR1, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout/TCP peer is an error to count, not a death
}

int64_t steadyNowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

uint64_t systemNowMs() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

LogLevel parseLevel(const std::string& s) {
  if (s == "error") return LogLevel::kError;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "debug") return LogLevel::kDebug;
  return LogLevel::kInfo;
}

/// kExitExportLoss, with one warning saying how many, when records were lost
/// on their way: in the export queue (live) or in an exporter. Errors an
/// exporter recovered from (a TCP collector that came up late, a database
/// restart absorbed by the spool) lost nothing: only drops count.
int exportLossStatus(const ExportStage& stage) {
  const uint64_t in_queue = stage.queue().droppedRecords();
  uint64_t in_exporters = 0, refusals = 0;
  for (const auto& e : stage.exporterStats()) {
    in_exporters += e.dropped;
    refusals += e.refused;
  }
  if (in_queue != 0) {
    logWarn("%llu records were dropped before they reached the exporters (queue_dropped_records in the stats "
            "line): the exporters were slower than the traffic for too long, or did not take the cache's flows "
            "within cache.stop_timeout at the stop",
            static_cast<unsigned long long>(in_queue));
  }
  if (in_exporters != 0) {
    logWarn("some exporters lost %llu records (see errors= and dropped= in the stats line): not every flow reached them",
            static_cast<unsigned long long>(in_exporters));
  }
  if (refusals != 0) {
    logWarn("a UDP collector's host refused datagrams %llu times (ICMP port unreachable: nothing listened on that "
            "port; see refused= in the stats line). Each refusal lost a datagram that had already left, besides "
            "any counted in dropped=; which records they held, a UDP sender is not told, so they cannot be counted",
            static_cast<unsigned long long>(refusals));
  }
  return in_queue + in_exporters + refusals != 0 ? kExitExportLoss : kExitOk;
}

/// Reads the whole file through `pipeline` (a Pipeline, or a ShardedPipeline
/// with several workers), then exports every flow.
template <FlowPipeline P>
int readFile(const Config& config, PcapFileSource& source, ExportStage& stage, P& pipeline) {
  installSignalHandlers();
  using Clock = std::chrono::steady_clock;
  const auto stats_every = std::chrono::seconds(config.stats_interval_s);
  auto next_stats = Clock::now() + stats_every;
  auto next_publish = Clock::now();
  ProgressBar progress(isatty(STDERR_FILENO) == 1 && logLevel() >= LogLevel::kInfo, source.fileSize());
  PcapFileSource::Result r = PcapFileSource::Result::kMore;
  while (!g_stop && (r = source.dispatch(pipeline, 4096)) == PcapFileSource::Result::kMore) {
    progress.update(source.bytesRead(), source.packetsRead());
    // For the exporters' options records, which read the published counters
    // (ten times a second: a publication costs a system call).
    if (Clock::now() >= next_publish) {
      pipeline.publishStats();
      next_publish = Clock::now() + std::chrono::milliseconds(100);
    }
    if (g_dump_stats) {
      g_dump_stats = 0;
      pipeline.publishStats();
      progress.finish();
      logInfo("%s", formatStatsLine(pipeline.stats(), stage).c_str());
    }
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
  return exportLossStatus(stage);
}

/// Runs `f` when the scope ends, however it ends.
template <class F>
struct OnScopeExit {
  F f;
  ~OnScopeExit() { f(); }
};
template <class F>
OnScopeExit(F) -> OnScopeExit<F>;

/// The metering counters the exporters' options records report
/// (metering.h), read from the run's pipelines and captures once they exist
/// (before, and after they are gone: zeros).
class RunMetering final : public MeteringSource {
 public:
  using Reader = std::function<MeteringStatistics()>;
  void setReader(Reader reader) {
    std::lock_guard lock(mu_);
    reader_ = std::move(reader);
  }
  MeteringStatistics statistics() const override {
    std::lock_guard lock(mu_);
    return reader_ ? reader_() : MeteringStatistics{};
  }
 private:
  mutable std::mutex mu_;
  Reader reader_;
};

/// The stats line's counters in the options records' terms (metering.h).
MeteringStatistics meteringOf(const PipelineStats& p, const std::vector<CaptureStats>& captures,
                              uint64_t queue_dropped) {
  MeteringStatistics m;
  m.packets_selected = p.decode.packets;
  m.packets_observed = p.decode.packets + p.sampled_out;
  m.packets_ignored = p.decode.skipped();
  for (const CaptureStats& c : captures) m.packets_ignored += c.capture_dropped + c.interface_dropped;
  m.records_not_exported = queue_dropped;
  return m;
}

/// The boundaries every rotating file exporter cuts its files at are
/// multiples of their intervals' greatest common divisor (intervals are
/// aligned to the epoch); 0 when none rotates.
uint64_t rotationBoundaryMs(const std::vector<ExporterConfig>& exporters) {
  uint64_t g = 0;
  for (const ExporterConfig& e : exporters)
    if (const RotationOptions* rotation = e.rotation()) g = std::gcd(g, rotation->interval_ms);
  return g;
}

/// readFile(), with the packet recorder in front of the pipeline when one is
/// configured: the file's packets go to the ring (the reader waits for the
/// disk rather than drop any) and are indexed by the same run.
template <FlowPipeline P>
int readFileRecording(const Config& config, PcapFileSource& source, ExportStage& stage, P& pipeline,
                      recorder::SegmentRing* ring) {
  if (!ring) return readFile(config, source, stage, pipeline);
  recorder::Recorder rec(*ring, config.recorderOptions(), "file", static_cast<uint32_t>(source.datalink()), true);
  // A single pipeline tells the recorder each packet's flow (its index then
  // need not look keys up); workers fold in parallel, out of the reader's order.
  if constexpr (requires { pipeline.setFlowTags(nullptr); })
    if (pipeline.acceptsFlowTags()) pipeline.setFlowTags(rec.enableFlowTags());
  RecordingSink<P> sink(pipeline, rec, *ring);
  const int status = readFile(config, source, stage, sink);
  if constexpr (requires { pipeline.setFlowTags(nullptr); }) pipeline.setFlowTags(nullptr);  // rec goes first
  if (rec.failed()) return std::max(status, static_cast<int>(kExitRuntime));
  return status;
}

/// The exporters every run has besides the configured ones: with a ring, its flow log.
std::vector<std::unique_ptr<Exporter>> permanentExporters(const Config& config, recorder::SegmentRing* ring) {
  std::vector<std::unique_ptr<Exporter>> out;
  if (ring) out.push_back(makeFlowLogExporter(*ring, config.recorder.directories.front()));
  return out;
}

/// DPI on: exporters name labels by nDPI's own names (app_names.h).
void startDpi() {
  const dpi::Engine engine;
  auto protocols = engine.protocolNames();
  logInfo("dpi: nDPI %s, %zu protocols; each flow labelled on its first packets", dpi::Engine::version().c_str(),
          protocols.size());
  setAppNames(std::move(protocols), engine.categoryNames());
}

int runFile(const Config& config) {
  PcapFileSource source(config.read_file, config.bpf_filter);
  const int dlt = source.datalink();
  if (!probe::Decoder::supportsLinkType(dlt)) {
    logWarn("link type %s of '%s' is not supported: its packets are counted as unsupported_link",
            source.datalinkName().c_str(), config.read_file.c_str());
  }
  // A file waits on a full queue instead of dropping, so a deep queue only
  // holds memory: with the collector paced (rate_limit), all of it fills, a
  // batch of fresh pages (~400 KiB) each. A few batches keep the two threads
  // decoupled.
  constexpr uint32_t kFileQueueBatches = 8;
  std::unique_ptr<recorder::SegmentRing> ring;
  if (config.recorder.enabled()) ring = std::make_unique<recorder::SegmentRing>(config.recorderOptions());
  RunMetering metering;
  ExportStage stage(makeExporters(config.exporters, config.local_networks, config.sampling, config.dpi),
                    std::min(config.export_queue_batches, kFileQueueBatches), permanentExporters(config, ring.get()),
                    &metering);
  // Each pipeline below is forgotten before it goes: the stage's exporters
  // may still read the metering counters until the stage is gone.
  auto read_metering = [&](const auto& pipeline) {
    metering.setReader([&] { return meteringOf(pipeline.stats(), {}, stage.queue().droppedRecords()); });
  };
  PipelineOptions options;
  options.cache = config.cache;
  // A file's flows are numbered from 1, so that a run is reproducible; into
  // a ring, from above the ids it already knows, so that --flow-id names
  // one flow of the ring.
  if (ring) options.cache.flow_id_base = ring->highestFlowId() + 1;
  options.export_batch = config.export_batch;
  options.wait_when_queue_full = true;  // a file can wait; nothing is dropped
  options.tunnels = config.tunnels;
  options.sampling = config.sampling;
  options.dpi = config.dpi;
  options.handoff_boundary_ms = rotationBoundaryMs(config.exporters);
  if (config.workers <= 1) {
    Pipeline pipeline(options, dlt, stage);
    read_metering(pipeline);
    OnScopeExit forget{[&] { metering.setReader(nullptr); }};
    return readFileRecording(config, source, stage, pipeline, ring.get());
  }
  // The flow bound is for the whole probe: each worker holds its share.
  options.cache.max_flows = config.maxFlowsPerCache();
  ShardedPipeline pipeline(options, dlt, stage, config.workers);
  read_metering(pipeline);
  OnScopeExit forget{[&] { metering.setReader(nullptr); }};
  return readFileRecording(config, source, stage, pipeline, ring.get());
}

// ---------------------------------------------------------------- live

/// One interface: its capture, its pipeline and the thread that runs them.
/// Only that thread touches the pcap handle; it publishes the kernel counters.
struct LiveCapture {
  std::unique_ptr<PcapLiveSource> source;
  std::unique_ptr<Pipeline> pipeline;
  // Recording: this capture's writer into the run's ring (shared by all).
  std::unique_ptr<recorder::Recorder> recorder;
  recorder::SegmentRing* ring = nullptr;
  std::thread thread;
  std::string name;
  mutable std::mutex stats_mu;
  CaptureStats published;
  // When the capture loop last came round (steady clock, ms): the watchdog
  // is fed only while every loop turns.
  std::atomic<int64_t> heartbeat_ms{0};

  void publishCaptureStats() {
    const LiveCaptureStats s = source->stats();
    std::lock_guard lock(stats_mu);
    published = CaptureStats{name, s.captured, s.capture_dropped, s.interface_dropped};
  }
};

/// One read burst into the pipeline, through the recorder when recording.
PcapLiveSource::Result readBurst(LiveCapture& cap) {
  if (!cap.recorder) return cap.source->dispatch(*cap.pipeline, 4096);
  RecordingSink<Pipeline> sink(*cap.pipeline, *cap.recorder, *cap.ring);
  return cap.source->dispatch(sink, 4096);
}

void captureLoop(LiveCapture& cap, const std::atomic<bool>& stop) {
  PcapLiveSource& source = *cap.source;
  Pipeline& pipeline = *cap.pipeline;
  LogRateLimiter down_log(3, 60);
  auto backoff = std::chrono::milliseconds(250);
  auto next_publish = std::chrono::steady_clock::now();
  auto next_tick = next_publish;
  while (!stop.load(std::memory_order_relaxed)) {
    cap.heartbeat_ms.store(steadyNowMs(), std::memory_order_relaxed);
    const auto r = readBurst(cap);
    // The clock moves with the system time even on an idle link, so idle
    // flows expire on time without new packets.
    pipeline.advanceClock(systemNowMs());
    // Once a second the exporters hear the clock even without records: a
    // biflow half waiting for its reverse leaves on a quiet link too.
    const bool tick = std::chrono::steady_clock::now() >= next_tick;
    if (tick) next_tick = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    pipeline.handOffPending(tick);
    if (std::chrono::steady_clock::now() >= next_publish) {
      pipeline.publishStats();
      cap.publishCaptureStats();
      next_publish = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    }
    if (r != PcapLiveSource::Result::kInterfaceDown) {
      backoff = std::chrono::milliseconds(250);
      continue;
    }
    unsigned long long suppressed = 0;
    if (down_log.allow(suppressed))
      logWarn("capture on %s failed: %s; retrying every few seconds, flows in the cache are kept",
              source.name().c_str(), source.error().c_str());
    for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stop; waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      cap.heartbeat_ms.store(steadyNowMs(), std::memory_order_relaxed);  // waiting on purpose is not a stall
      pipeline.advanceClock(systemNowMs());
    }
    if (stop) break;
    if (source.reopen()) {
      logInfo("capture on %s resumed", source.name().c_str());
    } else {
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
  // A clean stop loses nothing already captured: read what the kernel still
  // holds for us (until a read comes back idle), then flush the cache.
  for (int rounds = 0; rounds < 1000; ++rounds) {
    if (readBurst(cap) != PcapLiveSource::Result::kPackets) break;
  }
  pipeline.advanceClock(systemNowMs());
  pipeline.finish();
  if (cap.recorder) cap.recorder->finish();  // every packet captured is on disk
  cap.publishCaptureStats();
}

using LiveCaptures = std::vector<std::unique_ptr<LiveCapture>>;


/// The capture threads start before any other, so that they alone inherit
/// CAP_NET_RAW for reopening a capture (capabilities are per thread and
/// copied at clone); they wait here until their pipelines exist.
class StartGate {
 public:
  /// Blocks until open() (true: go on) or cancel() (false: return at once).
  bool wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return state_ != State::kShut; });
    return state_ == State::kOpen;
  }
  void open() { settle(State::kOpen); }
  /// No effect once open.
  void cancel() { settle(State::kCancelled); }

 private:
  enum class State { kShut, kOpen, kCancelled };
  void settle(State to) {
    {
      std::lock_guard lock(mu_);
      if (state_ == State::kShut) state_ = to;
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kShut;
};

/// "ff-cap-eth0", cut to the 15 characters a thread name may have: tells the
/// capture threads from the others in /proc/PID/task/*/comm and top -H.
/// Named by the thread that starts it, so the name is there before anything
/// (the "capturing on" line, a look at /proc) can see the thread.
void nameCaptureThread(std::thread& thread, const std::string& interface) {
  pthread_setname_np(thread.native_handle(), ("ff-cap-" + interface).substr(0, 15).c_str());
}

/// Kernel counters per interface (the fanout members of one interface summed).
std::vector<CaptureStats> captureStats(const LiveCaptures& caps) {
  std::vector<CaptureStats> out;
  for (const auto& c : caps) {
    std::lock_guard lock(c->stats_mu);
    auto it = std::find_if(out.begin(), out.end(), [&](const CaptureStats& s) { return s.interface == c->name; });
    if (it == out.end()) {
      out.push_back(c->published);
    } else {
      it->captured += c->published.captured;
      it->capture_dropped += c->published.capture_dropped;
      it->interface_dropped += c->published.interface_dropped;
    }
  }
  return out;
}

PipelineStats totalStats(const LiveCaptures& caps) {
  PipelineStats total;
  for (const auto& c : caps) {
    PipelineStats s = c->pipeline->stats();
    if (c->recorder) {
      s.recording = true;
      s.recorder = c->recorder->counters();
    }
    addStats(total, s);
  }
  // The ring is the run's, shared by every capture: counted once.
  if (!caps.empty() && caps.front()->ring)
    total.recorder.recorder_segments_removed = caps.front()->ring->counters().segments_removed;
  return total;
}

/// Gives up root after the captures are open, before any exporter or file.
/// False when the configuration keeps root (run_as_root: true).
bool dropRootIfNeeded(const Config& config) {
  if (geteuid() != 0) {
    logInfo("running as uid %u with %s", getuid(), describeCapabilities().c_str());
    return true;
  }
  // run_as_root: true without a user: keeps root whether or not a flowfold
  // account exists on this machine, so what the configuration says decides.
  if (config.user.empty() && config.run_as_root) {
    logWarn("running as root (run_as_root: true)");
    return false;
  }
  std::string user = config.user;
  if (user.empty() && userExists("flowfold")) user = "flowfold";
  if (user.empty())
    throw ConfigError("refusing to keep running as root after opening the capture: create the 'flowfold' "
                      "user, set 'user:' in the configuration, or set 'run_as_root: true'");
  dropPrivileges(user, config.group, /*keep_capture_capability=*/true);
  logInfo("capture open; now running as user %s with %s", user.c_str(), describeCapabilities().c_str());
  return true;
}

/// Narrows the process to CAP_NET_RAW, then starts the capture threads (they
/// keep it, to reopen a capture) parked on the gate, then gives up every
/// capability in this thread, so that no thread started later has any.
void startCaptureThreads(LiveCaptures& caps, bool confine, StartGate& gate, const std::atomic<bool>& stop) {
  if (confine) {
    const bool bounded = confineCapabilities(/*keep_capture_capability=*/true);
    logInfo("capture threads keep %s, every other thread none; %s; no_new_privs set",
            describeCapabilities().c_str(),
            bounded ? "bounding set empty" : "bounding set as given (no CAP_SETPCAP to empty it)");
  }
  for (auto& c : caps) {
    LiveCapture* cap = c.get();
    c->thread = std::thread([cap, &gate, &stop] {
      if (gate.wait()) captureLoop(*cap, stop);
    });
    nameCaptureThread(c->thread, cap->name);
  }
  if (confine) dropThreadCapabilities();
}

/// One capture per worker on each interface (the default one when none is
/// named), opened while privileged; with workers > 1 the captures of an
/// interface form one fanout group.
LiveCaptures openCaptures(const Config& config) {
  LiveCaptures caps;
  std::vector<std::string> names = config.interfaces;
  if (names.empty()) {
    names.push_back(PcapLiveSource::defaultInterface());
    logInfo("no interface named: capturing on the default interface %s", names.back().c_str());
  }
  const uint32_t per_interface = std::max<uint32_t>(1, config.workers);
  std::shared_ptr<FanoutGroup> fanout;
  for (size_t index = 0; index < names.size() * per_interface; ++index) {
    LiveCaptureOptions o;
    o.interface = names[index / per_interface];
    if (per_interface > 1 && index % per_interface == 0) fanout = std::make_shared<FanoutGroup>();
    if (per_interface > 1) o.fanout = fanout;
    // Recording keeps whole packets (the recorder's snap length), with
    // nanosecond timestamps.
    o.snaplen = static_cast<int>(config.liveSnaplen());
    o.nanoseconds = config.recorder.enabled();
    o.promiscuous = config.promiscuous;
    o.buffer_size = static_cast<int>(std::min<uint64_t>(config.buffer_size, INT32_MAX));
    o.filter = config.bpf_filter;
    auto c = std::make_unique<LiveCapture>();
    c->source = std::make_unique<PcapLiveSource>(o);
    c->name = c->source->name();
    c->published.interface = c->name;
    if (!probe::Decoder::supportsLinkType(c->source->datalink()))
      logWarn("link type %s of %s is not supported: its packets are counted as unsupported_link",
              c->source->datalinkName().c_str(), c->name.c_str());
    caps.push_back(std::move(c));
  }
  return caps;
}

/// One pipeline per capture, handing off to `stage`; with a ring, one
/// recorder per capture into it (the stream: the interface, and the worker
/// when there are several).
void makePipelines(const Config& config, LiveCaptures& caps, ExportStage& stage, recorder::SegmentRing* ring) {
  // Flow ids: one base for the run, the start time in ms << 16, so ids are
  // unique across restarts without a state file (a run started t ms later
  // numbers from 65536 t higher: an earlier run would have had to create
  // over 65 million flows a second to reach it). Each cache (interfaces x
  // workers) takes every caps.size()-th id from its own offset.
  uint64_t flow_id_base = systemNowMs() << 16;
  // Above any id the ring knows (a clock set back, a file run into it).
  if (ring) flow_id_base = std::max(flow_id_base, ring->highestFlowId() + 1);
  std::map<std::string, int> workers;
  for (size_t k = 0; k < caps.size(); ++k) {
    auto& c = caps[k];
    if (ring) {
      const int worker = workers[c->name]++;
      const std::string stream = config.workers > 1 ? c->name + "." + std::to_string(worker) : c->name;
      c->ring = ring;
      c->recorder = std::make_unique<recorder::Recorder>(*ring, config.recorderOptions(), stream,
                                                         static_cast<uint32_t>(c->source->datalink()), false);
    }
    PipelineOptions o;
    o.cache = config.cache;
    o.cache.max_flows = config.maxFlowsPerCache();  // the bound is for the whole probe
    o.cache.flow_id_base = flow_id_base;
    o.cache.flow_id_stride = caps.size();
    o.cache.flow_id_offset = k;
    o.export_batch = std::min<uint32_t>(config.export_batch, 1024);
    // Live: a slower export must not stall capture; records wait in the
    // pipeline instead, and a stop waits for the exporters (stop_timeout).
    o.wait_when_queue_full = false;
    o.stop_timeout_ms = config.stop_timeout_ms;
    o.ingress_if = static_cast<uint16_t>(c->source->ifindex());
    o.tunnels = config.tunnels;
    o.sampling = config.sampling;
    o.dpi = config.dpi;
    c->pipeline = std::make_unique<Pipeline>(o, c->source->datalink(), stage);
    if (c->recorder && c->pipeline->acceptsFlowTags()) c->pipeline->setFlowTags(c->recorder->enableFlowTags());
  }
}

/// The Prometheus endpoint when metrics.listen is set; nullptr otherwise.
std::unique_ptr<MetricsServer> startMetrics(const Config& config, const LiveCaptures& caps, const ExportStage& stage) {
  if (config.metrics_listen.empty()) return nullptr;
  std::string host, port;
  parseHostPort(config.metrics_listen, host, port, "metrics.listen");
  MetricsServerOptions mo;
  mo.allow_non_loopback = config.metrics_allow_remote;
  auto metrics = std::make_unique<MetricsServer>(
      host, static_cast<uint16_t>(std::stoi(port)),
      [&] { return renderPrometheus(metricFamilies(totalStats(caps), stage, captureStats(caps))); }, mo);
  logInfo("metrics on %s", metrics->url().c_str());  // an IPv6 host in brackets
  return metrics;
}

std::string readyStatus(const LiveCaptures& caps, const Config& config) {
  return "capturing on " + std::to_string(caps.size()) + " capture" + (caps.size() == 1 ? "" : "s") + ", " +
         std::to_string(config.exporters.size()) + " exporter" + (config.exporters.size() == 1 ? "" : "s");
}

/// Feeds systemd's watchdog only while every capture loop comes round: one
/// comes round at least every read timeout (100 ms), so one that has not for
/// a whole watchdog period is stuck, and systemd is left to notice
/// (WatchdogSec) and restart the service.
void feedWatchdogIfTurning(ServiceNotifier& systemd, const LiveCaptures& caps) {
  const int64_t stale_before = steadyNowMs() - systemd.watchdogEvery().count();
  const bool turning = std::all_of(caps.begin(), caps.end(), [&](const auto& c) {
    return c->heartbeat_ms.load(std::memory_order_relaxed) >= stale_before;
  });
  if (turning) systemd.watchdog();
}

/// SIGHUP: the command line and configuration read again, new exporters in
/// place of the running ones; the flow cache is kept. A failure keeps them.
/// The pipelines keep the sampling they started with: the new exporters
/// announce that one, and a changed `sampling` is said to need a restart.
void reloadExporters(int argc, char** argv, ExportStage& stage, const SamplingOptions& sampling,
                     uint64_t split_interval_ms, bool dpi) {
  try {
    CommandLine cl;
    const Config fresh = parseCommandLine(argc, argv, cl);
    if (const std::string mismatch = accountingSplitMismatch(fresh, split_interval_ms); !mismatch.empty())
      throw ConfigError(mismatch);
    // What a start would refuse, a reload refuses too (before any exporter is made).
    for (const std::string& warning : validateConfig(fresh)) logWarn("%s", warning.c_str());
    if (fresh.sampling.interval != sampling.interval || fresh.sampling.mode != sampling.mode)
      logWarn("sampling is read at start only: still 1:%u %s until a restart", sampling.interval,
              samplingModeName(sampling.mode));
    if (fresh.dpi != dpi) logWarn("dpi is read at start only: still %s until a restart", dpi ? "on" : "off");
    stage.replaceExporters(makeExporters(fresh.exporters, fresh.local_networks, sampling, dpi), systemNowMs());
    logInfo("reloaded: %zu exporter%s, output files reopened; the flow cache was kept", fresh.exporters.size(),
            fresh.exporters.size() == 1 ? "" : "s");
  } catch (const std::exception& e) {
    logError("reload failed, keeping the running exporters: %s", e.what());
  }
}

/// The main thread until a stop signal: the watchdog, the statistics timer,
/// SIGUSR1 and SIGHUP.
void superviseUntilStopped(const Config& config, const LiveCaptures& caps, ExportStage& stage,
                           ServiceNotifier& systemd, const std::string& ready_status, int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  auto next_stats = Clock::now() + std::chrono::seconds(config.stats_interval_s);
  auto next_watchdog = Clock::now();
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (systemd.watchdogEvery().count() != 0 && Clock::now() >= next_watchdog) {
      feedWatchdogIfTurning(systemd, caps);
      next_watchdog = Clock::now() + systemd.watchdogEvery() / 2;
    }
    if (g_dump_stats || (config.stats_interval_s != 0 && Clock::now() >= next_stats)) {
      g_dump_stats = 0;
      next_stats = Clock::now() + std::chrono::seconds(config.stats_interval_s);
      logInfo("%s", formatStatsLine(totalStats(caps), stage, captureStats(caps)).c_str());
    }
    if (g_reload) {
      g_reload = 0;
      systemd.reloading();
      reloadExporters(argc, argv, stage, config.sampling, config.cache.split_interval_ms, config.dpi);
      systemd.ready(ready_status);
    }
  }
}

int runLive(const Config& config, int argc, char** argv) {
  ServiceNotifier systemd;  // $NOTIFY_SOCKET is reachable before and after the privilege drop
  // 1. Open every capture while privileged.
  LiveCaptures caps = openCaptures(config);
  // 2. Privileges go before any exporter, file or thread exists; the capture
  // threads start here, the only ones to keep a capability.
  const bool confine = dropRootIfNeeded(config);
  std::atomic<bool> stop{false};
  StartGate gate;
  // Leaving early (an exporter that cannot start, a metrics port in use)
  // must not leave a thread waiting or running (a joinable std::thread ends
  // the program), nor a pipeline that outlives the stage it hands off to.
  auto end_capture_threads = [&] {
    stop = true;
    gate.cancel();
    for (auto& c : caps)
      if (c->thread.joinable()) c->thread.join();
  };
  OnScopeExit stop_capture_threads{end_capture_threads};
  startCaptureThreads(caps, confine, gate, stop);

  // 3. Exporters, the export stage, one pipeline per capture.
  // The ring after the privilege drop: its directories must be writable by
  // the user flowfold runs as, and its files are that user's. Before the
  // stage, which writes its flow log.
  std::unique_ptr<recorder::SegmentRing> ring;
  if (config.recorder.enabled()) ring = std::make_unique<recorder::SegmentRing>(config.recorderOptions());
  RunMetering metering;
  ExportStage stage(makeExporters(config.exporters, config.local_networks, config.sampling, config.dpi), config.export_queue_batches,
                    permanentExporters(config, ring.get()), &metering);
  OnScopeExit end_pipelines_before_the_stage{[&] {
    end_capture_threads();
    metering.setReader(nullptr);
    for (auto& c : caps) c->pipeline.reset();
  }};
  OnScopeExit end_recorders_before_the_ring{[&] {
    end_capture_threads();
    for (auto& c : caps) {
      if (c->pipeline) c->pipeline->setFlowTags(nullptr);  // it writes into the recorder's buffers
      c->recorder.reset();
    }
  }};
  makePipelines(config, caps, stage, ring.get());
  metering.setReader([&] { return meteringOf(totalStats(caps), captureStats(caps), stage.queue().droppedRecords()); });
  std::unique_ptr<MetricsServer> metrics = startMetrics(config, caps, stage);

  installSignalHandlers();
  for (auto& c : caps) {
    logInfo("capturing on %s (ifindex %u, %s)", c->name.c_str(), c->source->ifindex(),
            c->source->datalinkName().c_str());
  }
  gate.open();
  const std::string ready_status = readyStatus(caps, config);
  systemd.ready(ready_status);

  // 4. The main thread watches signals, the statistics timer and the capture loops.
  superviseUntilStopped(config, caps, stage, systemd, ready_status, argc, argv);
  systemd.stopping();
  logInfo("stopping on signal: exporting every flow before exit");
  stop = true;  // each capture loop sees it within one read timeout
  for (auto& c : caps) c->thread.join();
  metrics.reset();  // its body provider reads the captures
  stage.finish();
  logInfo("%s", formatStatsLine(totalStats(caps), stage, captureStats(caps)).c_str());
  return exportLossStatus(stage);
}

int run(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "extract") == 0) return runExtract(argc - 1, argv + 1);
  detectJournalStream();
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
    // The same checks for --check-config as for a run, so that what it
    // accepts the run does not refuse later (after opening the capture).
    for (const std::string& warning : validateConfig(config)) logWarn("%s", warning.c_str());
    if (cl.check_config) {
      std::printf("%s: configuration OK (%zu exporter%s)\n",
                  cl.config_file.empty() ? "command line" : cl.config_file.c_str(), config.exporters.size(),
                  config.exporters.size() == 1 ? "" : "s");
      for (const auto& e : config.exporters) std::printf("  %s\n", e.describe().c_str());
      return kExitOk;
    }
  } catch (const ConfigError& e) {
    logError("%s", e.what());
    return kExitUsage;
  }

  try {
    if (config.dpi) startDpi();
    return config.live() ? runLive(config, argc, argv) : runFile(config);
  } catch (const InputError& e) {
    logError("%s", e.what());
    return kExitInput;
  } catch (const ConfigError& e) {
    logError("%s", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    logError("%s", e.what());
    return kExitRuntime;
  }
}

}  // namespace
}  // namespace flowfold

int main(int argc, char** argv) { return flowfold::run(argc, argv); }
