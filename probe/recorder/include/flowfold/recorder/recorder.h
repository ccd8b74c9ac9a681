#pragma once
// One capture's packet recorder: the packet thread copies each frame into a
// large buffer (append(), a copy and nothing else); full buffers, and a
// partial one at least every second, go through a bounded queue to the
// recorder's own thread, which writes them to the ring's current segment in
// large writes and opens the next segment when it is full. The packet
// thread never waits on the disk: when the buffers are all taken (the disk
// is slower than the link), a live capture's packets are not recorded and
// are counted (recorder_dropped); flows stay exact. Reading a file, the
// reader waits instead, and nothing is dropped. finish() writes everything
// held: nothing is lost at a stop.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flowfold/recorder/flow_tags.h"
#include "flowfold/recorder/recorder_options.h"
#include "flowfold/recorder/segment_index.h"
#include "flowfold/recorder/segment_ring.h"
#include "flowfold/recorder/segment_writer.h"

namespace flowfold::recorder {

// The recorder's counters, one line each: X(name, help). In the stats line
// and as flowfold_<name>_total.
#define FLOWFOLD_RECORDER_COUNTERS(X)                                                                  \
  X(recorder_packets, "Packets written to the ring.")                                                 \
  X(recorder_bytes, "Bytes written to the ring's segments (pcap headers included).")                  \
  X(recorder_dropped, "Packets not recorded: the disk did not keep up, or recording stopped on an error " \
                      "(flows are not affected).")                                                    \
  X(recorder_segments, "Segments opened.")                                                            \
  X(recorder_segments_removed, "Segments removed to keep the ring within max_size, min_free and max_age.")

struct RecorderCounters {
#define FLOWFOLD_RECORDER_FIELD(name, help) uint64_t name = 0;
  FLOWFOLD_RECORDER_COUNTERS(FLOWFOLD_RECORDER_FIELD)
#undef FLOWFOLD_RECORDER_FIELD
};

class Recorder {
 public:
  /// `stream` names this capture's segments; `linktype` is its DLT.
  /// wait_when_full: a file's reader waits for the disk instead of dropping.
  Recorder(SegmentRing& ring, const RecorderOptions& options, const std::string& stream, uint32_t linktype,
           bool wait_when_full);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  /// Packet thread: records one frame (cut to the recorder's snap length).
  void append(uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
    const uint32_t keep = caplen < snaplen_ ? caplen : snaplen_;
    const size_t need = 16 + size_t{keep};
    if (current_ == nullptr || current_->used + need > chunk_size_) [[unlikely]] {
      if (!nextChunk()) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    write(*current_, ts_ns, keep, wirelen, data);
  }
  /// Packet thread: whether a frame of `caplen` bytes goes into the buffer
  /// being filled (false: append() will hand it over and take the next one).
  bool fits(uint32_t caplen) const {
    const uint32_t keep = caplen < snaplen_ ? caplen : snaplen_;
    return current_ != nullptr && current_->used + 16 + size_t{keep} <= chunk_size_;
  }
  /// Packet thread, before the first packet: the pipeline will tag each
  /// frame with its flow (flow_tags.h); returns where it writes the tags.
  FlowTags* enableFlowTags();
  bool tagging() const { return tagging_; }
  /// Packet thread: hands a partial buffer over when it has waited a second
  /// (packets become readable in the ring within about a second). steady_ms:
  /// a monotonic clock.
  void handOffIfOld(uint64_t steady_ms);
  /// Writes everything held and closes the segment; the thread ends.
  /// Idempotent.
  void finish();

  RecorderCounters counters() const;
  /// Set when recording stopped on an error (a full or failing disk).
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[], void (*)(void*)> data{nullptr, nullptr};
    size_t used = 0;
    uint64_t packets = 0;
    uint64_t first_ts_ns = 0;
    uint64_t last_ts_ns = 0;
    uint64_t handed_ms = 0;  // when the packet thread started filling it
    std::unique_ptr<uint64_t[]> tags;  // with flow tags: one per frame (flow_tags.h)
    uint64_t tagged = 0;               // tags given while it was filled
  };
  static void write(Chunk& c, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t* data);
  bool nextChunk();
  void handOff();
  // Room for the tags of a chunk of frames of 48 bytes or more (Ethernet's
  // least is 60); a chunk of smaller ones is indexed by key instead.
  size_t maxFramesPerChunk() const { return chunk_size_ / (16 + 48); }
  void writerLoop();
  void writeChunk(Chunk& c);
  void openSegment(uint64_t first_ts_ns);
  void closeSegment();
  void fail(const std::string& what);

  SegmentRing& ring_;
  const std::string stream_;
  const uint32_t linktype_;
  const uint32_t snaplen_;
  const uint64_t segment_size_;
  const size_t chunk_size_;
  const size_t max_chunks_;
  const bool wait_when_full_;

  Chunk* current_ = nullptr;  // the packet thread's
  bool tagging_ = false;
  FlowTags tags_;             // into current_->tags
  uint64_t steady_now_ms_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;  // the writer: a chunk to write or the end
  std::condition_variable freed_;  // the packet thread: a free chunk
  std::deque<Chunk*> queue_;
  std::vector<Chunk*> free_;
  std::vector<std::unique_ptr<Chunk>> all_;
  bool finishing_ = false;
  std::thread writer_;

  // The writer thread's.
  std::unique_ptr<SegmentWriter> out_;  // the open segment
  Segment segment_;
  uint64_t segment_bytes_ = 0;
  IndexWriter index_;
  bool index_warned_ = false;
  bool filter_warned_ = false;
  void indexFailed(const std::string& error);

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, dropped_{0}, segments_{0};
};

}  // namespace flowfold::recorder
