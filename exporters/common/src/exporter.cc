#include "flowfold/exporters/exporter.h"

#include <exception>

#include "flowfold/log.h"

namespace flowfold {

void Exporter::exportBatch(std::span<const FlowRecord> records, uint64_t now_ms) {
  try {
    if (records.empty()) {
      doTick(now_ms);
      return;
    }
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

void Exporter::close(uint64_t now_ms) {
  try {
    doClose(now_ms);
  } catch (const std::exception& e) {
    reportFailure("close", 0, e);
  }
}

void Exporter::reportFailure(const char* what, size_t records, const std::exception& e) {
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
  counters_.dropped.fetch_add(records, std::memory_order_relaxed);
  // A recurring failure (collector down) must not flood the log.
  ++failures_;
  unsigned long long suppressed = 0;
  if (failure_log_.allow(suppressed)) {
    logWarn("exporter %s: %s failed (%zu records lost, %llu failures so far%s): %s", name_.c_str(), what, records,
            static_cast<unsigned long long>(failures_),
            suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "", e.what());
  }
}

}  // namespace flowfold
