#pragma once
// Counters rendered for people (one log line) and machines (Prometheus).

#include <string>
#include <vector>

#include "flowfold/probe/export_stage.h"
#include "flowfold/probe/pipeline.h"

namespace flowfold {

/// Kernel/libpcap capture counters of a live interface (pcap_stats).
struct CaptureStats {
  std::string interface;
  uint64_t received = 0;    // ps_recv
  uint64_t dropped = 0;     // ps_drop: no room in the capture buffer
  uint64_t if_dropped = 0;  // ps_ifdrop: dropped by the interface/driver
};

/// Adds b's counters into a (several interfaces: one total).
void addStats(PipelineStats& a, const PipelineStats& b);

/// One compact line with every counter that is not zero (packets, skips by
/// reason, flows by end reason, capture drops, per-exporter records/messages/errors).
std::string formatStatsLine(const PipelineStats& pipeline, const ExportStage& stage,
                            const std::vector<CaptureStats>& captures = {});

}  // namespace flowfold
