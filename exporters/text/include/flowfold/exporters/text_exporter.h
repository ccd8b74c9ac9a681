#pragma once
// Human-readable output: one line per flow, as plain text or JSON lines.

#include <memory>
#include <string>

#include "flowfold/exporters/exporter.h"

namespace flowfold {

struct TextOptions {
  enum class Format { kText, kJson } format = Format::kText;
  std::string path = "-";  // "-" = standard output
};

/// Formats one record as the text exporter prints it (no newline).
std::string formatFlowText(const FlowRecord& r);
/// Formats one record as a JSON object (no newline).
std::string formatFlowJson(const FlowRecord& r);
/// The same, appended to `out` (no allocation per record when `out` is reused).
void appendFlowText(std::string& out, const FlowRecord& r);
void appendFlowJson(std::string& out, const FlowRecord& r);

std::unique_ptr<Exporter> makeTextExporter(const TextOptions& options);

}  // namespace flowfold
