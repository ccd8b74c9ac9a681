#pragma once
// What the metering process (capture, sampler, decoder, flow cache) has
// counted, for the exporters' options records (RFC 7011 section 4): the
// same counters as the stats line and the metrics, summed over every
// capture, read by the export thread whenever an exporter reports them.

#include <cstdint>

namespace flowfold {

struct MeteringStatistics {
  /// Packets read from the captures: the sampler's input
  /// (selectorIdTotalPktsObserved): `sampled_out` + `packets`.
  uint64_t packets_observed = 0;
  /// Packets the sampler passed on to the decoder (selectorIdTotalPktsSelected):
  /// `packets`; all of them without sampling.
  uint64_t packets_selected = 0;
  /// Packets the metering process saw and did not meter
  /// (ignoredPacketTotalCount): `skipped` (not decodable) plus the capture's
  /// drops (`capture_dropped` + `interface_dropped`).
  uint64_t packets_ignored = 0;
  /// Records lost before they reached any exporter (`queue_dropped_records`):
  /// part of every exporter's notSentFlowTotalCount.
  uint64_t records_not_exported = 0;
};

class MeteringSource {
 public:
  virtual ~MeteringSource() = default;
  /// Any thread; the counters as last published by the packet threads.
  /// (The sampling rate is each exporter's option, fixed when it is made.)
  virtual MeteringStatistics statistics() const = 0;
};

}  // namespace flowfold
