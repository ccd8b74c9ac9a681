#pragma once
// A file output cut into one file per interval, the way nfcapd cuts its
// files: `rotate: 5m` on "DIR/flows.ipfix" writes DIR/flows.202612060005.ipfix
// for the records exported from 00:05 to 00:10 UTC, then
// DIR/flows.202612060010.ipfix, and so on. Intervals are aligned to
// multiples of their length since the epoch (5m: :00, :05, ...; 1h: whole
// hours), on the clock the exporter is given: packet time when reading a
// capture (the same capture gives the same files), system time live.
//
// Names carry UTC minutes (YYYYMMDDhhmm), or seconds (YYYYMMDDhhmmss) for an
// interval that is not a whole number of minutes: UTC, so a DST change cannot
// give two intervals one name. The stamp goes before the extension, so the
// files keep it (Wireshark and file managers know .ipfix, .json).
//
// A restart or a reload within an interval appends to that interval's file
// (OutputFile never truncates). When a new file is opened, the caps apply:
// the oldest files of this rotation beyond `max_files`, and those whose
// interval ended more than `max_age` ago, are removed. Only files whose name
// is this rotation's (stem, a stamp, extension) and that are regular files are
// ever removed; the file being written never is.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowfold/exporters/output_file.h"

namespace flowfold {

struct RotationOptions {
  uint64_t interval_ms = 0;  // 0: one file, never rotated
  uint32_t max_files = 0;    // 0: no cap on how many files are kept
  uint64_t max_age_ms = 0;   // 0: no cap on their age
  bool enabled() const { return interval_ms != 0; }
};

/// The names and the caps of one rotation; no file is opened here.
class RotationPlan {
 public:
  /// Throws std::invalid_argument for "-" or a path that names a directory.
  RotationPlan(std::string path, RotationOptions options);

  /// Start (ms since the epoch) of the interval holding `now_ms`.
  uint64_t intervalStart(uint64_t now_ms) const;
  /// The path of the file of the interval starting at `start_ms`.
  std::string pathFor(uint64_t start_ms) const;
  /// The interval start a file name of this rotation carries, or -1 for a
  /// name that is not one (another file in the same directory).
  int64_t startOf(const std::string& file_name) const;

  /// Removes the files of this rotation beyond the caps (see above), never
  /// `keep_path`. Returns the paths removed; failures are logged, not thrown.
  std::vector<std::string> prune(uint64_t now_ms, const std::string& keep_path) const;

  const std::string& directory() const { return dir_; }
  const RotationOptions& options() const { return options_; }

 private:
  RotationOptions options_;
  std::string dir_;    // "." when the path has no directory
  std::string stem_;   // "flows" of "flows.ipfix"
  std::string ext_;    // ".ipfix", or empty
  bool seconds_;       // stamps carry seconds
};

/// The file an exporter writes: one file (no rotation), or the file of the
/// current interval.
class RotatingOutput {
 public:
  /// Without rotation, opens `path` at once (OutputFile's rules; throws
  /// std::runtime_error). With it, checks that the directory exists and this
  /// process can write it (throws std::runtime_error saying what to do);
  /// the first file is opened by the first advanceTo().
  RotatingOutput(const std::string& path, RotationOptions options);

  /// Makes the file of now_ms's interval the current one: opens it
  /// (appending when it exists) and applies the caps when the interval
  /// moved on since the last call (never back to an earlier interval's file:
  /// a late batch, or a clock stepped back, stays in the current one). True
  /// when another file became current: what
  /// must start a file (IPFIX templates) goes first. Without rotation, false.
  /// Throws std::runtime_error when that file cannot be opened (no file is
  /// current then); the next call tries again.
  bool advanceTo(uint64_t now_ms);

  /// The file written now; nullptr before the first file opened, or after an
  /// open failed.
  OutputFile* file() { return file_.get(); }
  /// Closes the current file (one found unusable after opening); with
  /// rotation the next advanceTo() opens it again.
  void close() { file_.reset(); }
  /// The path as configured (with rotation: the pattern's path).
  const std::string& name() const { return name_; }
  bool rotates() const { return plan_ != nullptr; }

 private:
  std::string name_;
  std::unique_ptr<RotationPlan> plan_;
  std::unique_ptr<OutputFile> file_;
  uint64_t current_start_ = 0;  // interval of file_, when one is open
};

}  // namespace flowfold
