#include "flowfold/probe/metrics_families.h"

#include <algorithm>
#include <optional>
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
  auto interface_dropped = counter("flowfold_capture_interface_dropped_packets_total",
                            "Packets dropped by the interface or driver (pcap ps_ifdrop).");
  for (const auto& c : captures) {
    add(received, c.captured, {{"interface", c.interface}});
    add(dropped, c.capture_dropped, {{"interface", c.interface}});
    add(interface_dropped, c.interface_dropped, {{"interface", c.interface}});
  }
  if (!captures.empty()) {
    out.push_back(std::move(received));
    out.push_back(std::move(dropped));
    out.push_back(std::move(interface_dropped));
  }

  auto packets = counter("flowfold_packets_total", "Packets read by the decoder.");
  add(packets, p.decode.packets);
  out.push_back(std::move(packets));
  auto sampled_out = counter("flowfold_packets_sampled_out_total",
                             "Packets the sampler passed over (sampling: N; never decoded, in no flow).");
  add(sampled_out, p.sampled_out);
  out.push_back(std::move(sampled_out));
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

  if (p.recording) {
#define FLOWFOLD_RECORDER_FAMILY(name, help)                             \
  out.push_back(counter("flowfold_" + std::string(#name) + "_total", help)); \
  add(out.back(), p.recorder.name);
    FLOWFOLD_RECORDER_COUNTERS(FLOWFOLD_RECORDER_FAMILY)
#undef FLOWFOLD_RECORDER_FAMILY
  }

  if (p.dpi) {
#define FLOWFOLD_DPI_FAMILY(name, help)                                      \
  out.push_back(counter("flowfold_" + std::string(#name) + "_total", help)); \
  add(out.back(), p.dpi_counters.name);
    FLOWFOLD_DPI_COUNTERS(FLOWFOLD_DPI_FAMILY)
#undef FLOWFOLD_DPI_FAMILY
  }

  // The flow cache: one family per kCount/kGauge counter, in the list's
  // order, then flowfold_flow_records_total with one sample per end reason
  // (label value: the counter's name, as for the decoder's reasons above).
  auto ended = counter(std::string(kFlowRecordsFamily),
                       "Flow records emitted by the cache, by end reason (IPFIX flowEndReason).");
  for (const auto& c : kFlowCacheCounters) {
    const uint64_t v = p.cache.*c.value;
    if (c.shown == CounterShown::kCount) {
      out.push_back(counter("flowfold_" + std::string(c.name) + "_total", std::string(c.help)));
      add(out.back(), v);
    } else if (c.shown == CounterShown::kGauge) {
      out.push_back(gauge("flowfold_" + std::string(c.name), std::string(c.help)));
      add(out.back(), v);
    } else if (c.shown == CounterShown::kEndReason) {
      add(ended, v, {{"reason", std::string(c.name)}});
    }  // kInternal: not shown; kSum: sum(flowfold_flow_records_total)
  }
  out.push_back(std::move(ended));

  auto queue_dropped = counter("flowfold_export_queue_dropped_records_total",
                               "Records dropped because the export queue was full (live capture only).");
  add(queue_dropped, stage.queue().droppedRecords());
  out.push_back(std::move(queue_dropped));

  const auto exporters = stage.exporterStats();
  for (const auto& c : kExporterCounters) {
    auto f = counter(exporterFamilyName(c.name), std::string(c.help));
    for (const auto& e : exporters) add(f, e.*c.value, {{"exporter", e.name}});
    out.push_back(std::move(f));
  }
  // Numbers of one kind of exporter (the MySQL sink's): one family each, in
  // the order first seen, with a sample per exporter that has it.
  std::vector<std::string_view> extra_names;
  for (const auto& e : exporters)
    for (const auto& x : e.extra)
      if (std::find(extra_names.begin(), extra_names.end(), x.name) == extra_names.end())
        extra_names.push_back(x.name);
  for (std::string_view name : extra_names) {
    std::optional<MetricFamily> f;
    for (const auto& e : exporters)
      for (const auto& x : e.extra) {
        if (x.name != name) continue;
        if (!f) f = x.gauge ? gauge(exporterGaugeName(x.name), std::string(x.help))
                            : counter(exporterFamilyName(x.name), std::string(x.help));
        add(*f, x.value, {{"exporter", e.name}});
      }
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace flowfold
