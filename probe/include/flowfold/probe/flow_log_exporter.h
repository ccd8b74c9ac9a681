#pragma once
// The ring's flow log as one more destination of the export thread: every
// record exported while recording is logged with its flow id, key and time
// span (recorder/flow_log.h), for `flowfold extract --flow-id`. Its counters
// are an exporter's (records logged, write errors); it
// outlives configuration reloads, which replace only the configured exporters.

#include <memory>
#include <string>

#include "flowfold/exporters/exporter.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold {

std::unique_ptr<Exporter> makeFlowLogExporter(recorder::SegmentRing& ring, const std::string& ring_name);

}  // namespace flowfold
