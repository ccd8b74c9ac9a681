#pragma once
// NetFlow v9 exporter: the RFC 3954 encoder feeding a UDP transport.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/netflow9_encoder.h"

namespace flowfold {

namespace netflow9 {
class UdpTransport;
}

struct NetflowV9Options {
  std::string host;                        // collector name or address ("::1" or "[::1]" for IPv6)
  std::string port;                        // collector UDP port (or service name)
  uint32_t source_id = 0;                  // header Source ID
  size_t max_datagram = 1400;              // UDP payload limit, v9 header included
  uint32_t template_refresh_packets = 20;  // resend templates every N datagrams (0: never)
  uint64_t template_refresh_ms = 60000;    // ... and every T ms of pipeline time (0: never)
  uint64_t max_datagrams_per_second = 0;   // pacing; 0 = unlimited
  /// Epoch ms the sysUptime clock starts from (floored to a second). 0 means
  /// "not known at construction": the first export then uses its now_ms
  /// minus one day, so flows that began before the first export still get
  /// non-negative FIRST_SWITCHED values.
  uint64_t boot_ms = 0;
  /// Set: flows with a direction carry DIRECTION (61) in templates 258/259
  /// (local_networks.h). Empty: templates 256 and 257 only, as without it.
  LocalNetworks local_networks;
};

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

 private:
  netflow9::EncoderConfig config_;
  LocalNetworks local_networks_;  // config_.local_networks points here
  netflow9::EncoderState state_;
  netflow9::EncodedDatagrams scratch_;
  std::vector<std::span<const uint8_t>> datagrams_;  // the batch being sent (views of scratch_)
  std::vector<int> errors_;                           // errno per datagram of that batch, 0 = sent
  std::unique_ptr<netflow9::UdpTransport> transport_;
  uint64_t send_failures_ = 0;                        // failed datagrams, for the warning
  LogRateLimiter send_failure_log_;                   // at most 5 warnings a minute
};

/// The factory the probe's configuration uses.
std::unique_ptr<Exporter> makeNetflowV9Exporter(const NetflowV9Options& options);

}  // namespace flowfold
