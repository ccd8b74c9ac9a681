#pragma once
// NetFlow v9 exporter: the RFC 3954 encoder feeding a UDP transport.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/netflow9_encoder.h"
#include "flowfold/exporters/netflow9_options.h"

namespace flowfold {

namespace netflow9 {
class UdpTransport;
}

class NetflowV9Exporter : public Exporter {
 public:
  /// Validates the options and resolves the collector: throws
  /// std::invalid_argument / std::runtime_error on bad configuration.
  explicit NetflowV9Exporter(const NetflowV9Options& options);
  ~NetflowV9Exporter() override;

  const netflow9::EncoderState& encoderState() const { return state_; }
  /// Epoch ms used as boot (0 until resolved when options.boot_ms was 0).
  uint64_t bootMs() const { return config_.boot_ms; }

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t now_ms) override;
  void doFlush(uint64_t now_ms) override;
  void doTick(uint64_t now_ms) override;
  void doClose(uint64_t now_ms) override;

 private:
  netflow9::EncoderConfig config_;
  LocalNetworks local_networks_;  // config_.local_networks points here
  netflow9::EncoderState state_;
  netflow9::EncodedDatagrams scratch_;
  std::vector<std::span<const uint8_t>> datagrams_;  // the batch being sent (views of scratch_)
  std::vector<int> errors_;                           // errno per datagram of that batch, 0 = sent
  std::unique_ptr<netflow9::UdpTransport> transport_;
  // Options datagrams (netflow9_encoder.h OptionsValues).
  void resolveBoot(uint64_t now_ms);
  bool optionsDue(uint64_t now_ms) const;
  void sendOptions(uint64_t now_ms);
  /// Counts one datagram sent (or lost) with its records; a loss also makes
  /// the templates and options go out again.
  void countDatagram(std::span<const uint8_t> datagram, size_t records, int error);
  uint64_t options_interval_ms_ = 0;
  uint64_t options_refresh_ms_ = 0;  // with sampling: template_refresh_ms
  SamplingOptions sampling_;
  bool options_sent_ = false;
  uint64_t last_options_ms_ = 0;
  uint64_t send_failures_ = 0;                        // failed datagrams, for the warning
  LogRateLimiter send_failure_log_;                   // at most 5 warnings a minute
};

/// The factory the probe's configuration uses.
std::unique_ptr<Exporter> makeNetflowV9Exporter(const NetflowV9Options& options);

}  // namespace flowfold
