#pragma once

#include <memory>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/probe/config.h"

namespace flowfold {

/// Builds the configured exporters. Throws std::runtime_error naming the
/// exporter when one cannot start (unresolvable collector, TCP refused, ...).
/// local_networks: set, every exporter exports each flow's direction.
/// sampling: the rate the IPFIX and NetFlow v9 exporters announce.
/// applications: DPI is on; every exporter exports each flow's label.
std::vector<std::unique_ptr<Exporter>> makeExporters(const std::vector<ExporterConfig>& configs,
                                                     const LocalNetworks& local_networks = {},
                                                     const SamplingOptions& sampling = {},
                                                     bool applications = false);

}  // namespace flowfold
