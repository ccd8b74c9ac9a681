#pragma once
// The ring's flow log: one entry per flow record flowfold exports while it
// records (the record's flow id, key and time span), so that
// `flowfold extract --flow-id N` can turn the flowId a collector shows into
// a flow key and a time range, and those into packets through the segments'
// indexes.
//
// `flowfold-flows-SEQ.flows` in the ring's first directory, SEQ a 12-digit
// number that grows with each file. Written by the export thread in large
// appends (at least once a second while records come, and at every flush);
// a new file past kFlowLogFileBytes. The ring removes a file once every flow
// in it ended before the oldest packet the ring still holds.
//
// Format (host byte order, x86-64): a 24-byte header ("FFFLOG02", u32
// reserved, u32 reserved, u64 the run's first segment: the sequence number
// the ring would give the run's first segment), then blocks of at most 256
// entries (a write's entries in flow id order, cut into blocks):
//   u32 'FLB2', u32 payload bytes, u32 entries, u32 kind (0),
//   u64 lowest flow id, u64 highest flow id, u64 latest last_ms, payload
// (a reader looking for some ids reads only the blocks whose id range holds
// one). A file closed by its writer ends with its directory, so that a
// reader finds those blocks without walking the file:
//   a block of kind 1 (0 entries, id range UINT64_MAX..0, which readers
//   that predate it step over) whose payload is, per block,
//   u64 offset, u64 lowest id, u64 highest id, u64 latest last_ms;
//   then a 32-byte trailer: u32 'FLDT', u32 blocks, u64 lowest id,
//   u64 highest id, u64 latest last_ms (of the whole file).
// A file without one (still being written, or cut by a crash) is walked.
// An entry is coded against the block's previous one (the first against
// zeros), 20 bytes for a typical IPv4 flow instead of 72 written plainly:
//   varint zigzag(flow_id - previous flow_id),
//   varint zigzag(first_ms - previous first_ms), varint zigzag(last_ms - first_ms),
//   the key (key_coding.h).
// A record of a long flow (active timeout) is one entry each time it is
// exported, all with the flow's id. A crash leaves at most a torn last
// block, which a reader ignores. The run's first segment tells a reader
// which segments a flow's packets can be in: those of the same run (from it
// to the next run's first), so that a capture recorded twice, or the same
// traffic seen again, is not mistaken for the flow.

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/flow_record.h"

namespace flowfold::recorder {

class SegmentRing;

inline constexpr char kFlowLogMagic[8] = {'F', 'F', 'F', 'L', 'O', 'G', '0', '2'};
inline constexpr size_t kFlowLogHeaderSize = 24;
inline constexpr uint32_t kFlowLogBlockMagic = 0x32424c46;  // "FLB2"
inline constexpr size_t kFlowLogBlockHeaderSize = 40;
inline constexpr uint32_t kFlowLogTrailerMagic = 0x54444c46;  // "FLDT"
inline constexpr size_t kFlowLogTrailerSize = 32;
inline constexpr uint64_t kFlowLogFileBytes = 16 << 20;  // ~800,000 records a file

struct FlowLogEntry {
  uint64_t flow_id = 0;
  uint64_t first_ms = 0, last_ms = 0;
  FlowKey key{};
};

/// "flowfold-flows-000000000007.flows" -> 7; nullopt for any other name.
std::optional<uint64_t> parseFlowLogName(const std::string& file_name);
std::string flowLogFileName(uint64_t sequence);

struct FlowLog {
  uint64_t run_first_segment = 0;
  std::vector<FlowLogEntry> entries;  // of the whole blocks before any damage
  std::string damage;                 // where a damaged block stopped the reading, if one did
};

/// What a block's header says of its entries.
struct FlowLogBlockRange {
  uint64_t min_id = 0, max_id = 0, max_last_ms = 0;
};

/// One block's entries, coded (appended to `out`).
FlowLogBlockRange encodeFlowLogBlock(std::span<const FlowLogEntry> entries, std::vector<uint8_t>& out);

/// Reads a flow log's whole blocks (a torn last one is left out; a damaged
/// one ends the reading and is told in `damage`). With `wanted` (ascending
/// ids), only the blocks whose id range holds one of them are read, and
/// only the entries of those ids kept. False and `error` when the file
/// cannot be read or is not a flow log.
bool readFlowLog(const std::string& path, FlowLog& out, std::string& error, std::span<const uint64_t> wanted = {});

/// Asks the kernel to read, all at once, the parts of each flow log that a
/// lookup reads first (the header, and the trailer with the directory
/// before it): a lookup over many files on a cold disk then waits for one
/// round of reads instead of two or three reads per file in turn.
void prefetchFlowLogs(std::span<const std::string> paths);

/// A flow log's run (its first segment), from its file header alone.
bool readFlowLogRun(const std::string& path, uint64_t& run_first_segment, std::string& error);

/// What a flow log's block headers say, read without its entries.
struct FlowLogSummary {
  uint64_t run_first_segment = 0;
  uint64_t max_flow_id = 0;
  uint64_t max_last_ms = 0;
  std::string damage;
};
bool summarizeFlowLog(const std::string& path, FlowLogSummary& out, std::string& error);

/// A block as a file's directory gives it.
struct FlowLogDirectoryEntry {
  uint64_t offset, min_id, max_id, max_last_ms;
};

/// Writes the run's flow log into a ring (the export thread only).
class FlowLogWriter {
 public:
  explicit FlowLogWriter(SegmentRing& ring);
  ~FlowLogWriter();
  FlowLogWriter(const FlowLogWriter&) = delete;
  FlowLogWriter& operator=(const FlowLogWriter&) = delete;

  /// Adds one entry per record (records without a flow id are left out);
  /// writes when 4096 entries are held or `steady_ms` is a second past the
  /// last write. False and `error` when a file cannot be created or written: the
  /// log then stops (what it holds stays readable).
  bool add(std::span<const FlowRecord> records, uint64_t steady_ms, std::string& error);
  /// Writes what is held.
  bool flush(std::string& error);
  bool failed() const { return failed_; }

 private:
  bool write(std::string& error);
  bool openNext(std::string& error);
  void closeFile();
  bool writeDirectory(std::string& error);


  SegmentRing& ring_;
  int fd_ = -1;
  std::string path_;
  uint64_t file_bytes_ = 0;
  uint64_t last_write_ms_ = 0;
  std::vector<FlowLogEntry> held_;  // entries not written yet
  std::vector<std::pair<uint64_t, uint32_t>> order_;  // (flow id, position in held_), sorted (reused)
  std::vector<FlowLogEntry> sorted_;
  std::vector<uint8_t> buf_;
  std::vector<FlowLogDirectoryEntry> directory_;  // the open file's blocks
  bool failed_ = false;
};

}  // namespace flowfold::recorder
