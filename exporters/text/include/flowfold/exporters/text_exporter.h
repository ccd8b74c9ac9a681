#pragma once
// Human-readable output: one line per flow, as plain text or JSON lines.

#include <memory>
#include <string>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/text_options.h"
#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"

namespace flowfold {

/// Formats one record as the text exporter prints it (no newline).
std::string formatFlowText(const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
/// Formats one record as a JSON object (no newline).
std::string formatFlowJson(const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
/// The same, appended to `out` (no allocation per record when `out` is reused).
void appendFlowText(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
void appendFlowJson(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks = nullptr);

std::unique_ptr<Exporter> makeTextExporter(const TextOptions& options);

}  // namespace flowfold
