#pragma once
// A pipeline with a packet recorder in front: every frame a source reads is
// copied into the recorder (recorder.h) with its full timestamp, then goes
// on to the pipeline as without recording. Sources hand a sink that has
// onFrame() the timestamp in nanoseconds (capture.cc); the pipelines keep
// their millisecond clock.

#include <chrono>
#include <cstdint>

#include "flowfold/probe/packet_sink.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/recorder/recorder.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold {

template <FlowPipeline P>
class RecordingSink {
 public:
  RecordingSink(P& pipeline, recorder::Recorder& recorder, const recorder::SegmentRing& ring)
      : pipeline_(pipeline), recorder_(recorder), ring_(ring) {}

  /// A frame with its timestamp in nanoseconds since the epoch.
  void onFrame(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ns) {
    // With flow tags, every frame of a buffer is folded (tagged) before the
    // recorder hands the buffer over for indexing.
    if constexpr (requires { pipeline_.foldPending(); })
      if (recorder_.tagging() && !recorder_.fits(caplen)) [[unlikely]] pipeline_.foldPending();
    recorder_.append(ts_ns, caplen, wirelen, data);
    pipeline_.onPacket(data, caplen, wirelen, ts_ns / 1'000'000);
  }
  /// A source without nanoseconds (none of flowfold's): milliseconds.
  void onPacket(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms) {
    onFrame(data, caplen, wirelen, ts_ms * 1'000'000);
  }
  void onBurstEnd() {
    pipeline_.onBurstEnd();
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    recorder_.handOffIfOld(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()));
  }
  /// The pipeline's end, then the recorder's: every packet read is on disk
  /// when it returns.
  void finish() {
    pipeline_.finish();
    recorder_.finish();
  }
  void publishStats() { pipeline_.publishStats(); }
  PipelineStats stats() const {
    PipelineStats s = pipeline_.stats();
    s.recording = true;
    s.recorder = recorder_.counters();
    s.recorder.recorder_segments_removed = ring_.counters().segments_removed;
    return s;
  }

 private:
  P& pipeline_;
  recorder::Recorder& recorder_;
  const recorder::SegmentRing& ring_;
};

}  // namespace flowfold
