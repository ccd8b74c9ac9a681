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
  auto& c = a.cache;
  const auto& d = b.cache;
  c.packets += d.packets;
  c.flows_created += d.flows_created;
  c.expired_idle += d.expired_idle;
  c.expired_active += d.expired_active;
  c.ended_tcp += d.ended_tcp;
  c.evicted += d.evicted;
  c.flushed += d.flushed;
  c.records += d.records;
  c.peak_active += d.peak_active;
  a.active_flows += b.active_flows;
  if (b.now_ms > a.now_ms) a.now_ms = b.now_ms;
  a.cpu_ns += b.cpu_ns;
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
    add("captured", cap.received, true);
    add("capture_dropped", cap.dropped, true);
    add("interface_dropped", cap.if_dropped);
  }
  const auto& d = p.decode;
  add("packets", d.packets, true);
  add("decoded", d.decoded, true);
  add("skipped", d.skipped(), true);
  d.forEach([&](std::string_view name, uint64_t v) {
    if (name != "packets" && name != "decoded") add(name, v);
  });
  const auto& c = p.cache;
  add("flows_created", c.flows_created, true);
  add("flows_active", p.active_flows, true);
  add("flows_peak", c.peak_active, true);
  add("records", c.records, true);
  add("ended_idle", c.expired_idle);
  add("ended_active", c.expired_active);
  add("ended_tcp", c.ended_tcp);
  add("evicted", c.evicted);
  add("flushed", c.flushed);
  add("queue_dropped_records", stage.queue().droppedRecords());
  for (const auto& e : stage.exporterStats()) {
    s += " | " + e.name + ":";
    add("records", e.records_exported, true);
    add("messages", e.messages_sent, true);
    add("bytes", e.bytes_sent);
    add("errors", e.export_errors);
    add("dropped", e.records_dropped);
    add("collector_drops", e.collector_drops);
    add("refused", e.collector_refusals);
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
