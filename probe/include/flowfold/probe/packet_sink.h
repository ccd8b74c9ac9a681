#pragma once
// The contract between a packet source (PcapFileSource, PcapLiveSource) and
// the pipeline it feeds. Two shapes fulfil it: Pipeline (decode and fold on
// the capture's own thread) and ShardedPipeline (decode and route on the
// reader thread, fold on worker threads). Sources and the file read loop in
// main.cc are written against these concepts, not against either class;
// pipeline.h and sharded_pipeline.h check that each shape satisfies them.
//
// Threads: every call below but stats() comes from one thread, the packet
// thread (the capture thread live, the reader thread for a file), the same
// one for the sink's whole life. stats() may be called from any thread.

#include <concepts>
#include <cstdint>

namespace flowfold {

struct PipelineStats;

/// What a packet source calls while it reads.
///
/// - onPacket(data, caplen, wirelen, ts_ms): once per frame read, in capture
///   order. `data` holds `caplen` bytes of a frame that was `wirelen` bytes on
///   the wire and stays valid only for the call: the sink takes what it needs
///   (the decoded fields), never the pointer. `ts_ms` is the frame's
///   timestamp, milliseconds since the epoch, as the capture says it (it may
///   go back; the sink's clock does not). Called in the source's read loop,
///   so it is the hot path: a sink inlines it and does not wait, except on
///   back-pressure it documents (a full export queue in file mode, a full
///   worker ring).
/// - onBurstEnd(): after each read burst (one libpcap dispatch, or one run
///   of the file reader), before the source returns to its caller: every
///   onPacket() is followed by an onBurstEnd() within the same dispatch().
///   The sink may hold frames back within a burst (a prefetch ring, a
///   batched publish); after onBurstEnd() none is held back any more: each
///   is accounted, or on its way without another call. The caller may then
///   wait as long as it likes (an idle link) without a frame being stranded.
template <class Sink>
concept PacketSink = requires(Sink& sink, const uint8_t* data, uint32_t length, uint64_t ts_ms) {
  { sink.onPacket(data, length, length, ts_ms) } -> std::same_as<void>;
  { sink.onBurstEnd() } -> std::same_as<void>;
};

/// A PacketSink that owns flows and can be run to the end of an input.
///
/// - finish(): end of input, or a stop. Ends the burst if one is open, then
///   every flow (a shape's workers' too) goes to the export stage as a
///   forced end, followed by a flush request, and the statistics are
///   published one last time. When it returns, the sink has handed over
///   everything and runs no thread of its own. Idempotent; no onPacket()
///   after it. The destructor calls it when the owner did not.
/// - publishStats(): copies the packet thread's counters out for stats();
///   called by the packet thread between bursts, at any rate.
/// - stats(): the counters as last published (by publishStats() or
///   finish()): decode counters, flow cache counters summed over the shape's
///   caches, the clock, and the CPU time of the threads that ran the
///   pipeline. Any thread.
template <class P>
concept FlowPipeline = PacketSink<P> && requires(P& pipeline, const P& published) {
  { pipeline.finish() } -> std::same_as<void>;
  { pipeline.publishStats() } -> std::same_as<void>;
  { published.stats() } -> std::same_as<PipelineStats>;
};

}  // namespace flowfold
