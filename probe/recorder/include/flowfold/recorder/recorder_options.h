#pragma once
// What the packet recorder is told (`recorder:` in the YAML, --record DIR,
// --record-size SIZE): where the ring of segment files lives and what bounds
// it. The ring never fills a disk: segments are removed oldest first when
// the ring is over max_size, when a filesystem has less than min_free left,
// or when they are older than max_age.

#include <cstdint>
#include <string>
#include <vector>

#include "flowfold/probe/decoder.h"

namespace flowfold::recorder {

struct RecorderOptions {
  /// The ring's directories (one or more, on as many disks): new segments go
  /// to them in turn. Empty: no recording.
  std::vector<std::string> directories;
  /// Most bytes the ring's segments take together; 0 = no cap (min_free
  /// still applies).
  uint64_t max_size = 0;
  /// Free space each directory's filesystem keeps: a percentage of its size
  /// (min_free_percent) or bytes (min_free_bytes, when not 0).
  double min_free_percent = 5.0;
  uint64_t min_free_bytes = 0;
  /// Segments older than this (by their last packet's time) are removed; 0 = no limit.
  uint64_t max_age_ms = 0;
  /// A segment is closed and the next one opened past this size.
  uint64_t segment_size = uint64_t{1} << 30;
  /// Bytes kept of each packet; the live capture's snap length becomes this.
  uint32_t snaplen = 262'144;
  /// Memory between the packet thread and the disk writer: when it is full a
  /// live capture's packets are not recorded (counted in recorder_dropped);
  /// a file's reader waits.
  uint64_t buffer_size = uint64_t{64} << 20;

  /// How the index keys tunnelled packets: as the flows do (decoder.tunnels).
  probe::TunnelMode tunnels = probe::TunnelMode::kOuter;

  bool enabled() const { return !directories.empty(); }
};

}  // namespace flowfold::recorder
