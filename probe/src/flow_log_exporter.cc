#include "flowfold/probe/flow_log_exporter.h"

#include <chrono>

#include "flowfold/log.h"
#include "flowfold/recorder/flow_log.h"

namespace flowfold {

namespace {

uint64_t steadyMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

class FlowLogExporter final : public Exporter {
 public:
  FlowLogExporter(recorder::SegmentRing& ring, const std::string& ring_name)
      : Exporter("flow log " + ring_name), log_(ring) {}

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t) override {
    if (log_.failed()) return;
    std::string error;
    if (!log_.add(records, steadyMs(), error)) return failed(error);
    mutableCounters().records.fetch_add(records.size(), std::memory_order_relaxed);
  }

  void doTick(uint64_t) override { doExport({}, 0); }

  void doFlush(uint64_t) override {
    std::string error;
    if (!log_.failed() && !log_.flush(error)) failed(error);
  }

 private:
  // The log stops at its first failure (a full or failing disk): said once
  // and counted in errors. Records are not counted as dropped: every flow
  // still reaches every exporter (the run's status is not an export loss);
  // `records` says how many were logged, and `--flow-id` cannot find the rest.
  void failed(const std::string& error) {
    mutableCounters().errors.fetch_add(1, std::memory_order_relaxed);
    logError("%s: %s; flow records are no longer logged in the ring (extract --flow-id cannot find later flows; "
             "extract by time and filter still works)",
             name().c_str(), error.c_str());
  }

  recorder::FlowLogWriter log_;
};

}  // namespace

std::unique_ptr<Exporter> makeFlowLogExporter(recorder::SegmentRing& ring, const std::string& ring_name) {
  return std::make_unique<FlowLogExporter>(ring, ring_name);
}

}  // namespace flowfold
