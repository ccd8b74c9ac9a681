#pragma once
// The ring of segment files: names them, opens them safely, remembers them
// across restarts (by their names) and removes the oldest when the ring is
// over its bounds (recorder_options.h). Shared by every writer of a run (one
// per capture): its calls lock.
//
// A segment is `flowfold-SEQ-STREAM-START.pcap`: SEQ a 12-digit number that
// grows across the whole ring (the order of removal), STREAM the capture it
// holds ("file", an interface, or an interface and a worker), START the
// second of its first packet. Beside them: each segment's index (.idx) and
// the flow logs (flow_log.h), which count towards max_size and go once the
// segments their flows' packets were in are gone. Only files named so are
// the ring's: anything else in its directories is left alone.

#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/recorder/recorder_options.h"

namespace flowfold::recorder {

/// The ring cannot be used (a directory missing, not writable, ...): the
/// message says which and what to do.
class RecorderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SegmentName {
  uint64_t sequence = 0;
  std::string stream;
  uint64_t start_s = 0;
};

/// "flowfold-000000000042-eth0-1700000000.pcap" -> its parts; nullopt for
/// any other name.
std::optional<SegmentName> parseSegmentName(const std::string& file_name);
std::string segmentFileName(const SegmentName& name);
/// A stream name with only [A-Za-z0-9_.] kept ('-' separates the parts).
std::string streamName(const std::string& text);

struct Segment {
  std::string path;
  size_t directory = 0;  // index in RecorderOptions::directories
  SegmentName name;
  uint64_t bytes = 0;
  bool open = false;     // being written: never removed
};

/// A flow log file of the ring (flow_log.h).
struct FlowLogFile {
  std::string path;
  uint64_t sequence = 0;
  uint64_t bytes = 0;
  uint64_t max_last_ms = 0;  // the latest end of a flow in it
  uint64_t max_flow_id = 0;
  uint64_t run_first_segment = 0;  // the run that wrote it (flow_log.h)
  bool open = false;
};

struct RingCounters {
  uint64_t segments_opened = 0;
  uint64_t segments_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t segments_repaired = 0;  // found cut at a start (a crash) and trimmed
};

class SegmentRing {
 public:
  /// Checks every directory (exists, is a directory, writable), finds the
  /// ring's segments in them and trims the newest of each stream if a crash
  /// cut it. Throws RecorderError.
  explicit SegmentRing(const RecorderOptions& options);

  /// Opens the next segment of `stream`, whose first packet is at
  /// first_ts_ms, in the next directory that has room (bounds enforced
  /// first); returns its file descriptor (the caller writes and closes it)
  /// and records it as open. Throws RecorderError when no directory has room
  /// or the file cannot be created.
  int openNext(const std::string& stream, uint64_t first_ts_ms, Segment& opened);
  /// The open segment has grown to `bytes` (its size on disk).
  void grew(const Segment& segment, uint64_t bytes);
  /// The segment is complete (closed by its writer).
  void closed(const Segment& segment, uint64_t bytes);
  /// Removes the oldest segments while the ring is over max_size, a
  /// directory's filesystem is below min_free, or they ended more than
  /// max_age before now_ms (the export clock). Open segments stay.
  void enforceBounds(uint64_t now_ms);

  /// Creates the next flow log file in the first directory (never through a
  /// link or over a file); returns its descriptor. Throws RecorderError.
  int openFlowLog(FlowLogFile& opened);
  /// The open flow log holds `bytes`, flows ending by max_last_ms, ids up to max_flow_id.
  void flowLogWritten(const std::string& path, uint64_t bytes, uint64_t max_last_ms, uint64_t max_flow_id);
  void flowLogClosed(const std::string& path);
  /// The highest flow id in the ring's flow logs (0: none): a run that
  /// numbers its flows from above it never repeats an id the ring knows.
  uint64_t highestFlowId() const;
  /// The sequence number of this run's first segment (the next free one when
  /// the ring was opened): every segment this run writes has it or a later one.
  uint64_t runFirstSequence() const { return run_first_sequence_; }

  std::vector<Segment> segments() const;
  std::vector<FlowLogFile> flowLogs() const;
  RingCounters counters() const;
  uint64_t totalBytes() const;

 private:
  void addFoundFlowLog(const std::string& path, uint64_t sequence);
  bool belowMinFree(size_t directory) const;
  uint64_t bytesLocked() const;
  void removeOldest(size_t index);
  void enforceLocked(uint64_t now_ms);
  void removeSpentFlowLogs();

  const RecorderOptions options_;
  mutable std::mutex mu_;
  std::vector<Segment> segments_;  // oldest first (by sequence)
  std::vector<FlowLogFile> flow_logs_;  // oldest first
  uint64_t next_flow_log_ = 1;
  uint64_t highest_flow_id_ = 0;
  uint64_t run_first_sequence_ = 1;
  uint64_t last_now_ms_ = 0;  // the latest clock enforceBounds() was given
  uint64_t next_sequence_ = 1;
  size_t next_directory_ = 0;
  RingCounters counters_;
};

}  // namespace flowfold::recorder
