#include "flowfold/exporters/exporter.h"

#include <exception>

#include "flowfold/exporters/log.h"

namespace flowfold {

void Exporter::exportBatch(std::span<const FlowRecord> records, uint64_t now_ms) {
  if (records.empty()) return;
  try {
    doExport(records, now_ms);
  } catch (const std::exception& e) {
    reportFailure("export", records.size(), e);
  }
}

void Exporter::flush(uint64_t now_ms) {
  try {
    doFlush(now_ms);
  } catch (const std::exception& e) {
    reportFailure("flush", 0, e);
  }
}

void Exporter::reportFailure(const char* what, size_t records, const std::exception& e) {
  counters_.export_errors.fetch_add(1, std::memory_order_relaxed);
  counters_.records_dropped.fetch_add(records, std::memory_order_relaxed);
  // A recurring failure (collector down) must not flood the log: the first
  // few are logged, then one in every 1000.
  ++failures_logged_;
  if (failures_logged_ <= 5 || failures_logged_ % 1000 == 0) {
    logWarn("exporter %s: %s failed (%zu records lost, %llu failures so far): %s", name_.c_str(),
            what, records, static_cast<unsigned long long>(failures_logged_), e.what());
  }
}

}  // namespace flowfold
