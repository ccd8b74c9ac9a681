#pragma once
// Counters rendered for people (one log line) and machines (Prometheus).
//
// Each counter group has one list (an X-macro next to its struct) that gives
// every counter one name: the C++ field, the key in the stats line and the
// Prometheus name. The tables below turn those lists into data, and the
// stats line (formatStatsLine) and the metric families (metricFamilies) are
// produced from them, so a counter added to a list shows up in both.
//   decoder:     FLOWFOLD_DECODER_SKIP_REASONS, FLOWFOLD_DECODER_INFO_COUNTERS (decoder.h)
//   flow cache:  FLOWFOLD_FLOW_CACHE_COUNTERS (flow_cache.h)
//   exporters:   FLOWFOLD_EXPORTER_COUNTERS (exporter.h)
//   recorder:    FLOWFOLD_RECORDER_COUNTERS (recorder.h)
//   the export queue's queue_dropped_records and the capture counters (pcap_stats)
//   are single counters written out in stats.cc and metrics_families.cc.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowfold/probe/export_stage.h"
#include "flowfold/probe/pipeline.h"

namespace flowfold {

/// Kernel/libpcap capture counters of a live interface (pcap_stats).
struct CaptureStats {
  std::string interface;
  uint64_t captured = 0;           // ps_recv
  uint64_t capture_dropped = 0;    // ps_drop: no room in the capture buffer
  uint64_t interface_dropped = 0;  // ps_ifdrop: dropped by the interface/driver
};

/// Where a counter is shown (the `shown` column of the lists).
enum class CounterShown {
  kInternal,   ///< neither in the stats line nor in the metrics
  kCount,      ///< stats line (always), family flowfold_<name>_total
  kGauge,      ///< stats line (always), gauge flowfold_<name>
  kSum,        ///< stats line only (always): the sum of a labelled family's samples
  kEndReason,  ///< stats line (when not 0), flowfold_flow_records_total{reason="<name>"}
  kAlways,     ///< exporter: stats line (always), flowfold_exporter_<name>_total{exporter}
  kNonZero,    ///< exporter: stats line (when not 0), flowfold_exporter_<name>_total{exporter}
};

/// One counter of a group: its one name, where it is shown, its help text
/// and where its value is in the group's struct.
template <class Struct>
struct CounterInfo {
  std::string_view name;
  CounterShown shown;
  std::string_view help;
  uint64_t Struct::*value;
};

inline constexpr CounterInfo<FlowCacheCounters> kFlowCacheCounters[] = {
#define FLOWFOLD_CACHE_INFO(counter, shown, help) {#counter, CounterShown::shown, help, &FlowCacheCounters::counter},
    FLOWFOLD_FLOW_CACHE_COUNTERS(FLOWFOLD_CACHE_INFO)
#undef FLOWFOLD_CACHE_INFO
};

inline constexpr CounterInfo<ExporterStats> kExporterCounters[] = {
#define FLOWFOLD_EXPORTER_INFO(counter, shown, help) {#counter, CounterShown::shown, help, &ExporterStats::counter},
    FLOWFOLD_EXPORTER_COUNTERS(FLOWFOLD_EXPORTER_INFO)
#undef FLOWFOLD_EXPORTER_INFO
};

/// The family of the kEndReason counters (one sample per reason).
inline constexpr std::string_view kFlowRecordsFamily = "flowfold_flow_records_total";
/// Prometheus family of an exporter counter: flowfold_exporter_<name>_total.
inline std::string exporterFamilyName(std::string_view counter) {
  return "flowfold_exporter_" + std::string(counter) + "_total";
}
/// Prometheus family of an exporter gauge: flowfold_exporter_<name>.
inline std::string exporterGaugeName(std::string_view gauge) { return "flowfold_exporter_" + std::string(gauge); }

/// Adds b's counters into a (several interfaces: one total).
void addStats(PipelineStats& a, const PipelineStats& b);

/// One compact line with every counter that is not zero (packets, skips by
/// reason, flows by end reason, capture drops, per-exporter records/messages/errors).
std::string formatStatsLine(const PipelineStats& pipeline, const ExportStage& stage,
                            const std::vector<CaptureStats>& captures = {});

}  // namespace flowfold
