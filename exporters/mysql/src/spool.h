#pragma once
// The MySQL sink's write-ahead queue: a directory of segment files holding
// fixed-size spool records, appended by the export thread and consumed in
// order by the sink thread once the database has committed them.
//
//   DIR/lock              flock()ed while a process uses the spool (holds its pid)
//   DIR/spool.state       spool id (random, identifies this spool in the
//                         database's flowfold_batches) and the next segment number
//   DIR/seg-<20 digits>   64-byte header, then records; never rewritten, deleted
//                         once every record in it is committed (or dropped)
//   DIR/*.bad             a damaged or foreign segment (or spool.state) set
//                         aside with a message; never read, never deleted
//
// Nothing in DIR is opened through a link, and DIR must be trusted (owned by
// root or this user, not writable by others; see prepareSpoolDir).
//
// Segment numbers are never reused (the counter in spool.state is fsynced
// before a segment is created): the database remembers how far each segment
// was committed, and a reused number would make new records look committed.
//
// Thread-safety: append() from one writer thread; readBatch(), commit(),
// release() and resumeAt() from one reader thread; state() from anywhere.

#include <atomic>
#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flowfold/flowcache/flow_record.h"
#include "spool_record.h"

namespace flowfold::mysql {

struct SpoolPosition {
  uint64_t segment = 0;
  uint64_t record = 0;
  auto operator<=>(const SpoolPosition&) const = default;
};

/// A contiguous record range of one segment, read for one transaction.
struct SpoolBatch {
  uint64_t segment = 0;
  uint64_t first = 0;  // record index of the first record
  uint64_t end = 0;    // one past the last
  std::vector<SpooledFlow> flows;  // the records that passed their checksum
  uint64_t corrupt = 0;            // the ones that did not
};

struct SpoolAppendResult {
  size_t written = 0;
  uint64_t dropped_oldest = 0;  // unconsumed records of segments deleted to make room
  size_t dropped_newest = 0;    // records of this call that did not fit (or could not be written)
  std::string error;            // set when a write failed
};

struct SpoolState {
  uint64_t pending_records = 0;  // written and not yet committed
  uint64_t bytes = 0;            // sum of the segment files' sizes
  uint64_t segments = 0;
  uint64_t records_spooled = 0;  // appended by this process
  uint64_t dropped_oldest = 0;
  uint64_t dropped_newest = 0;
  uint64_t segments_quarantined = 0;  // damaged or foreign segment files set aside as *.bad
};

/// Keeps one spool directory to one Spool within this process. A second
/// exporter for the same directory (a SIGHUP reload builds the new exporters
/// before the old ones are gone) waits for the first to let go.
class SpoolDirClaim {
 public:
  /// nullptr when another exporter of this process holds the directory.
  static std::unique_ptr<SpoolDirClaim> tryAcquire(const std::string& canonical_dir);
  /// Waits until the directory is free or cancel becomes true (then nullptr).
  static std::unique_ptr<SpoolDirClaim> acquire(const std::string& canonical_dir, const std::atomic<bool>& cancel);
  ~SpoolDirClaim();
  SpoolDirClaim(const SpoolDirClaim&) = delete;
  SpoolDirClaim& operator=(const SpoolDirClaim&) = delete;

 private:
  explicit SpoolDirClaim(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

/// Creates DIR (and parents, 0750) if needed, checks that it and every
/// directory above it belong to root or the effective user and that no other
/// user can write to them (one above may be sticky and world-writable, like
/// /tmp), and proves it writable; returns its canonical path. Throws
/// std::runtime_error with the reason and what to do.
std::string prepareSpoolDir(const std::string& dir);

class Spool {
 public:
  struct Limits {
    uint64_t max_bytes = uint64_t{1} << 30;
    uint64_t segment_bytes = 16 << 20;
    bool drop_oldest = true;  // false: drop newest
  };

  /// Opens the spool in a prepared directory: takes the lock (throws
  /// std::runtime_error naming the pid when another process has it), reads
  /// or creates spool.state and indexes the existing segments.
  Spool(std::string canonical_dir, Limits limits, std::unique_ptr<SpoolDirClaim> claim);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  uint64_t id() const { return id_; }
  const std::string& dir() const { return dir_; }

  /// Called (outside the lock) after records were appended.
  void setAppendListener(std::function<void()> listener) { on_append_ = std::move(listener); }

  // ---- writer
  SpoolAppendResult append(std::span<const FlowRecord> records, uint32_t observation_domain);

  // ---- reader
  /// Reads up to max_records from the read position (never across segments)
  /// and pins that segment against drop_oldest until commit() or release().
  /// False when nothing is waiting; error is set if a read failed.
  bool readBatch(size_t max_records, SpoolBatch& out, std::string& error);
  /// The batch is in the database: advance past it; delete used-up segments.
  void commit(const SpoolBatch& batch);
  /// The batch was not written: it will be read again.
  void release(const SpoolBatch& batch);
  /// Positions the reader after what the database has committed (nullopt:
  /// nothing of this spool), deleting the segments before it.
  void resumeAt(std::optional<SpoolPosition> committed);
  /// The oldest segment still on disk (or the next to be created).
  uint64_t oldestSegment() const;
  /// Where the next appended record will go.
  SpoolPosition writePosition() const;
  /// The first record not known to be committed.
  SpoolPosition readPosition() const;
  uint64_t pendingRecords() const;
  /// Makes segment deletions durable (before the database forgets them).
  void syncDirectory() const;

  SpoolState state() const;

 private:
  struct Segment {
    uint64_t number = 0;
    uint64_t records = 0;
    uint64_t file_bytes = 0;
    bool pinned = false;
    bool verified = true;  // false: its header could not be read when the spool was opened
    uint32_t version = 3;  // record format (spool_record.h): 1 and 2 left by an older flowfold
  };

  std::string segmentPath(uint64_t number) const;
  void loadOrCreateState();
  void adoptSegmentsId();
  static uint64_t randomSpoolId();
  uint64_t newestSegmentOnDisk() const;
  void repairNextSegment(const std::string& path, const std::string& bad_value);
  void saveState();
  void scanSegments();
  void quarantineSegment(const std::string& path, const std::string& why, const std::string& what_to_do);
  uint64_t unconsumedLocked(const Segment& s) const;
  void deleteSegmentLocked(std::deque<Segment>::iterator it);
  void dropConsumedLocked();
  bool openTail(std::string& error);
  void normaliseCursorLocked();

  std::string dir_;
  Limits limits_;
  std::unique_ptr<SpoolDirClaim> claim_;
  int lock_fd_ = -1;
  uint64_t id_ = 0;
  uint64_t next_segment_ = 1;  // persisted in spool.state

  mutable std::mutex mu_;
  std::deque<Segment> segments_;  // ascending numbers
  SpoolPosition cursor_;           // reader: first record not yet committed
  uint64_t bytes_ = 0;
  uint64_t records_spooled_ = 0, dropped_oldest_ = 0, dropped_newest_ = 0;
  uint64_t quarantined_ = 0;
  uint64_t tail_number_ = 0;  // segment the writer appends to (0 = none yet)

  int tail_fd_ = -1;  // writer only
  int read_fd_ = -1;  // reader only
  uint64_t read_number_ = 0;

  std::function<void()> on_append_;
  std::vector<uint8_t> write_buf_;  // writer only
  std::vector<uint8_t> read_buf_;   // reader only
};

}  // namespace flowfold::mysql
