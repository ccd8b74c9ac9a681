#pragma once
// The hand-off between the packet thread and the export thread: a bounded
// queue of record batches. In file mode a full queue makes the reader wait
// (nothing is lost, the file just reads slower); live, the packet thread
// never waits (stalling capture would lose packets in the kernel instead): a
// batch that does not fit stays with it and is offered again (tryPush).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/flowcache/flow_record.h"

namespace flowfold {

struct ExportBatch {
  std::vector<FlowRecord> records;
  uint64_t now_ms = 0;  // pipeline clock when the batch was cut
  bool flush = false;   // ask exporters to send what they buffer
  // A reload (SIGHUP): after this batch's records the export thread flushes
  // the current exporters and continues with these. Empty = no change.
  std::vector<std::unique_ptr<Exporter>> replacement;
  bool replace = false;
};

class ExportQueue {
 public:
  explicit ExportQueue(size_t max_batches)
      : max_batches_(max_batches ? max_batches : 1), resume_at_(max_batches_ / 2) {}

  /// Returns false when the batch was dropped (queue full and !wait). A
  /// waiting push goes on once the queue is down to half (resume_at_).
  bool push(ExportBatch&& batch, bool wait);
  /// Queues the batch when there is room (moving it out); otherwise leaves
  /// it to the caller untouched and returns false. Nothing is counted.
  bool tryPush(ExportBatch& batch);
  /// Waits for room until `deadline`, then drops the batch and counts it
  /// (a stop that cannot wait for ever on a stuck exporter).
  bool pushWaitingUntil(ExportBatch&& batch, std::chrono::steady_clock::time_point deadline);
  /// Records a producer had to drop before they reached the queue: counted
  /// with the queue's own, under one name.
  void countDropped(uint64_t records);
  /// Blocks until a batch is available; false once closed and drained.
  bool pop(ExportBatch& out);
  void close();

  /// Record vectors go round: the export thread hands back the emptied
  /// vector of a batch it has exported (recycle), the packet thread takes it
  /// for its next batch (spareRecords; empty when there is none). A batch is
  /// close to a megabyte: a fresh one cost a page fault every 4 KiB, as the
  /// allocator gives blocks that large back to the kernel when freed.
  void recycle(std::vector<FlowRecord>&& records);
  std::vector<FlowRecord> spareRecords();

  uint64_t droppedBatches() const;
  uint64_t droppedRecords() const;
  uint64_t blockedPushes() const;

 private:
  const size_t max_batches_;
  const size_t resume_at_;  // a push that waited goes on at this many batches
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<ExportBatch> q_;
  std::vector<std::vector<FlowRecord>> spare_;
  bool closed_ = false;
  int deadline_waiters_ = 0;  // pushWaitingUntil() calls waiting for the first free place
  uint64_t dropped_batches_ = 0, dropped_records_ = 0, blocked_pushes_ = 0;
};

}  // namespace flowfold
