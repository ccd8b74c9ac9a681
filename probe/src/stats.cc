#include "flowfold/probe/stats.h"

#include <string_view>

namespace flowfold {

void addStats(PipelineStats& a, const PipelineStats& b) {
  a.decode.packets += b.decode.packets;
  a.decode.decoded += b.decode.decoded;
#define FLOWFOLD_ADD_COUNTER(name, ...) a.decode.name += b.decode.name;
  FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_ADD_COUNTER)
  FLOWFOLD_DECODER_INFO_COUNTERS(FLOWFOLD_ADD_COUNTER)
#undef FLOWFOLD_ADD_COUNTER
  // Every cache counter adds up, flows_active and flows_peak too (the flows
  // of all caches, the sum of their peaks).
  for (const auto& c : kFlowCacheCounters) a.cache.*c.value += b.cache.*c.value;
  if (b.now_ms > a.now_ms) a.now_ms = b.now_ms;
  a.cpu_ns += b.cpu_ns;
  a.sampled_out += b.sampled_out;
  a.recording = a.recording || b.recording;
#define FLOWFOLD_ADD_RECORDER(name, help) a.recorder.name += b.recorder.name;
  FLOWFOLD_RECORDER_COUNTERS(FLOWFOLD_ADD_RECORDER)
#undef FLOWFOLD_ADD_RECORDER
  a.dpi = a.dpi || b.dpi;
  a.dpi_counters += b.dpi_counters;
}

std::string formatStatsLine(const PipelineStats& p, const ExportStage& stage,
                            const std::vector<CaptureStats>& captures) {
  std::string s = "stats:";
  auto add = [&](std::string_view name, uint64_t v, bool always = false) {
    if (v == 0 && !always) return;
    s += ' ';
    s += name;
    s += '=';
    s += std::to_string(v);
  };
  for (const auto& cap : captures) {
    add("captured", cap.captured, true);
    add("capture_dropped", cap.capture_dropped, true);
    add("interface_dropped", cap.interface_dropped);
  }
  const auto& d = p.decode;
  add("sampled_out", p.sampled_out);  // sampling: packets read = sampled_out + packets
  add("packets", d.packets, true);
  add("decoded", d.decoded, true);
  add("skipped", d.skipped(), true);
  d.forEach([&](std::string_view name, uint64_t v) {
    if (name != "packets" && name != "decoded") add(name, v);
  });
  for (const auto& c : kFlowCacheCounters) {
    if (c.shown == CounterShown::kInternal) continue;
    add(c.name, p.cache.*c.value, c.shown != CounterShown::kEndReason);
  }
  add("queue_dropped_records", stage.queue().droppedRecords());
  if (p.recording) {
    // Always shown while recording: a 0 says the recorder lost nothing.
#define FLOWFOLD_SHOW_RECORDER(name, help) add(#name, p.recorder.name, true);
    FLOWFOLD_RECORDER_COUNTERS(FLOWFOLD_SHOW_RECORDER)
#undef FLOWFOLD_SHOW_RECORDER
  }
  if (p.dpi) {
    // Always shown with DPI on: a 0 dpi_failures says no flow went unlabelled.
    p.dpi_counters.forEach([&](std::string_view name, uint64_t v) { add(name, v, true); });
  }
  for (const auto& e : stage.exporterStats()) {
    s += " | " + e.name + ":";
    for (const auto& c : kExporterCounters) add(c.name, e.*c.value, c.shown == CounterShown::kAlways);
    for (const auto& x : e.extra) add(x.name, x.value);
  }
  // Where the process's CPU went: the packet side (reading, decoding, the
  // flow table; with workers, the reader and every worker) and the export
  // thread (encoding, sending).
  s += " | cpu_ms:";
  add("packet", p.cpu_ns / 1'000'000, true);
  add("export", stage.exportThreadCpuNs() / 1'000'000, true);
  return s;
}

}  // namespace flowfold
