#pragma once
// flowfold's counters as Prometheus metric families (flowfold_* names,
// counters with _total, labels for reason / exporter / interface).

#include <vector>

#include "flowfold/probe/metrics.h"
#include "flowfold/probe/stats.h"

namespace flowfold {

std::vector<MetricFamily> metricFamilies(const PipelineStats& pipeline, const ExportStage& stage,
                                         const std::vector<CaptureStats>& captures);

}  // namespace flowfold
