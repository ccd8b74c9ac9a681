#pragma once

#include <string>

namespace flowfold {

class Pipeline;

/// One compact line with every counter that is not zero (packets, skips by
/// reason, flows by end reason, per-exporter records/messages/errors).
std::string formatStatsLine(const Pipeline& pipeline);

}  // namespace flowfold
