#pragma once
// The options of a text or JSON exporter and the table of its settings (its
// keys under `exporters: - type: text` or `json`).

#include <span>
#include <string>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/exporters/setting.h"

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

/// The settings a text or JSON exporter has.
std::span<const Setting<TextOptions>> textSettings();

}  // namespace flowfold
