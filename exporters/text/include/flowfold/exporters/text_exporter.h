#pragma once
// Human-readable output: one line per flow, as plain text or JSON lines.

#include <memory>
#include <string>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"

namespace flowfold {

struct TextOptions {
  enum class Format { kText, kJson } format = Format::kText;
  /// "-" = standard output. An existing file is appended to; opened as
  /// OutputFile says (output_file.h). A failed write (a full disk) is cut back
  /// to its last whole line: every line in the file is a whole record.
  std::string path = "-";
  /// One file per interval, named by its start time (rotating_output.h).
  RotationOptions rotation;
  /// Set: each line ends with the flow's direction (" direction egress",
  /// "ingress" or "-"; JSON "direction":"egress"/"ingress"/null).
  LocalNetworks local_networks;
};

/// Formats one record as the text exporter prints it (no newline).
std::string formatFlowText(const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
/// Formats one record as a JSON object (no newline).
std::string formatFlowJson(const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
/// The same, appended to `out` (no allocation per record when `out` is reused).
void appendFlowText(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks = nullptr);
void appendFlowJson(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks = nullptr);

std::unique_ptr<Exporter> makeTextExporter(const TextOptions& options);

}  // namespace flowfold
