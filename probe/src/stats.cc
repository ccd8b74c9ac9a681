#include "flowfold/probe/stats.h"

#include <string_view>

#include "flowfold/probe/pipeline.h"

namespace flowfold {

std::string formatStatsLine(const Pipeline& p) {
  std::string s = "stats:";
  auto add = [&](std::string_view name, uint64_t v, bool always = false) {
    if (v == 0 && !always) return;
    s += ' ';
    s += name;
    s += '=';
    s += std::to_string(v);
  };
  const auto& d = p.decodeCounters();
  add("packets", d.packets, true);
  add("decoded", d.decoded, true);
  add("skipped", d.skipped(), true);
  d.forEach([&](std::string_view name, uint64_t v) {
    if (name != "packets" && name != "decoded") add(name, v);
  });
  const auto& c = p.cacheCounters();
  add("flows_created", c.flows_created, true);
  add("flows_active", p.activeFlows(), true);
  add("flows_peak", c.peak_active, true);
  add("records", c.records, true);
  add("ended_idle", c.expired_idle);
  add("ended_active", c.expired_active);
  add("ended_tcp", c.ended_tcp);
  add("evicted", c.evicted);
  add("flushed", c.flushed);
  add("queue_dropped_records", p.queue().droppedRecords());
  for (const auto& e : p.exporters()) {
    const auto& ec = e->counters();
    s += " | " + e->name() + ":";
    add("records", ec.records_exported.load(), true);
    add("messages", ec.messages_sent.load(), true);
    add("bytes", ec.bytes_sent.load());
    add("errors", ec.export_errors.load());
    add("dropped", ec.records_dropped.load());
  }
  return s;
}

}  // namespace flowfold
