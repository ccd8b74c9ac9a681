#pragma once

#include <memory>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/probe/config.h"

namespace flowfold {

/// Builds the configured exporters. Throws std::runtime_error naming the
/// exporter when one cannot start (unresolvable collector, TCP refused, ...).
std::vector<std::unique_ptr<Exporter>> makeExporters(const std::vector<ExporterConfig>& configs);

}  // namespace flowfold
