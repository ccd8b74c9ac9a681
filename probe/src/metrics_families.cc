#include "flowfold/probe/metrics_families.h"

#include <string>
#include <string_view>

namespace flowfold {

namespace {

MetricFamily counter(std::string name, std::string help) {
  return MetricFamily{std::move(name), std::move(help), MetricFamily::Type::kCounter, {}};
}
MetricFamily gauge(std::string name, std::string help) {
  return MetricFamily{std::move(name), std::move(help), MetricFamily::Type::kGauge, {}};
}
void add(MetricFamily& f, uint64_t v, std::vector<std::pair<std::string, std::string>> labels = {}) {
  f.samples.push_back(MetricSample{std::move(labels), v});
}

bool isSkipReason(std::string_view name) {
#define FLOWFOLD_IS_SKIP(reason, ...) \
  if (name == #reason) return true;
  FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_IS_SKIP)
#undef FLOWFOLD_IS_SKIP
  return false;
}

}  // namespace

std::vector<MetricFamily> metricFamilies(const PipelineStats& p, const ExportStage& stage,
                                         const std::vector<CaptureStats>& captures) {
  std::vector<MetricFamily> out;

  auto received = counter("flowfold_capture_received_packets_total",
                          "Packets the kernel delivered to the capture (pcap ps_recv).");
  auto dropped = counter("flowfold_capture_dropped_packets_total",
                         "Packets dropped because the capture buffer was full (pcap ps_drop).");
  auto if_dropped = counter("flowfold_capture_interface_dropped_packets_total",
                            "Packets dropped by the interface or driver (pcap ps_ifdrop).");
  for (const auto& c : captures) {
    add(received, c.received, {{"interface", c.interface}});
    add(dropped, c.dropped, {{"interface", c.interface}});
    add(if_dropped, c.if_dropped, {{"interface", c.interface}});
  }
  if (!captures.empty()) {
    out.push_back(std::move(received));
    out.push_back(std::move(dropped));
    out.push_back(std::move(if_dropped));
  }

  auto packets = counter("flowfold_packets_total", "Packets read by the decoder.");
  add(packets, p.decode.packets);
  out.push_back(std::move(packets));
  auto decoded = counter("flowfold_packets_decoded_total", "Packets decoded and accounted into flows.");
  add(decoded, p.decode.decoded);
  out.push_back(std::move(decoded));
  auto skipped = counter("flowfold_packets_skipped_total",
                         "Packets not accounted, by reason (packets = decoded + sum of skipped).");
  auto info = counter("flowfold_decoder_events_total",
                      "Decoder observations about accounted packets (fragments, lengths, ...).");
  p.decode.forEach([&](std::string_view name, uint64_t v) {
    if (name == "packets" || name == "decoded") return;
    add(isSkipReason(name) ? skipped : info, v, {{"reason", std::string(name)}});
  });
  out.push_back(std::move(skipped));
  out.push_back(std::move(info));

  auto created = counter("flowfold_flows_created_total", "Flows created in the cache.");
  add(created, p.cache.flows_created);
  out.push_back(std::move(created));
  auto active = gauge("flowfold_flows_active", "Flows in the cache now.");
  add(active, p.active_flows);
  out.push_back(std::move(active));
  auto peak = gauge("flowfold_flows_peak", "Most flows held in the cache at once.");
  add(peak, p.cache.peak_active);
  out.push_back(std::move(peak));
  auto ended = counter("flowfold_flow_records_total",
                       "Flow records emitted by the cache, by end reason (IPFIX flowEndReason).");
  add(ended, p.cache.expired_idle, {{"reason", "idle_timeout"}});
  add(ended, p.cache.expired_active, {{"reason", "active_timeout"}});
  add(ended, p.cache.ended_tcp, {{"reason", "end_of_flow"}});
  add(ended, p.cache.flushed, {{"reason", "forced_end"}});
  add(ended, p.cache.evicted, {{"reason", "lack_of_resources"}});
  out.push_back(std::move(ended));

  auto queue_dropped = counter("flowfold_export_queue_dropped_records_total",
                               "Records dropped because the export queue was full (live capture only).");
  add(queue_dropped, stage.queue().droppedRecords());
  out.push_back(std::move(queue_dropped));

  auto records = counter("flowfold_exporter_records_total", "Flow records handed to each exporter's transport.");
  auto messages = counter("flowfold_exporter_messages_total", "Datagrams, IPFIX messages or lines written.");
  auto bytes = counter("flowfold_exporter_bytes_total", "Bytes written by each exporter.");
  auto errors = counter("flowfold_exporter_errors_total", "Failed sends or writes.");
  auto lost = counter("flowfold_exporter_dropped_records_total", "Records known to be lost by each exporter.");
  auto collector_drops = counter("flowfold_exporter_collector_drops_total",
                                 "Datagrams a collector on this host dropped (its socket's receive buffer was full; "
                                 "the socket's count, so also other senders' datagrams).");
  auto refusals = counter("flowfold_exporter_collector_refusals_total",
                          "ICMP unreachables the kernel reported for datagrams a UDP exporter had sent: each lost "
                          "at least one datagram whose records cannot be known.");
  for (const auto& e : stage.exporterStats()) {
    add(refusals, e.collector_refusals, {{"exporter", e.name}});
    add(records, e.records_exported, {{"exporter", e.name}});
    add(messages, e.messages_sent, {{"exporter", e.name}});
    add(bytes, e.bytes_sent, {{"exporter", e.name}});
    add(errors, e.export_errors, {{"exporter", e.name}});
    add(lost, e.records_dropped, {{"exporter", e.name}});
    add(collector_drops, e.collector_drops, {{"exporter", e.name}});
  }
  out.push_back(std::move(records));
  out.push_back(std::move(messages));
  out.push_back(std::move(bytes));
  out.push_back(std::move(errors));
  out.push_back(std::move(lost));
  out.push_back(std::move(collector_drops));
  out.push_back(std::move(refusals));
  return out;
}

}  // namespace flowfold
