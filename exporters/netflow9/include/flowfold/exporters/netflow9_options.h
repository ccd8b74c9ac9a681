#pragma once
// The options of a NetFlow v9 exporter and the table of its settings (its
// keys under `exporters: - type: netflow9` and their command-line options).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/flowcache/sampler.h"
#include "flowfold/exporters/setting.h"

namespace flowfold {

struct NetflowV9Options {
  std::string host;                        // collector name or address ("::1" or "[::1]" for IPv6)
  std::string port;                        // collector UDP port (or service name)
  uint32_t source_id = 0;                  // header Source ID
  size_t max_datagram = 0;                 // UDP payload limit, v9 header included; 0 = automaticDatagramBytes(host)
  uint32_t template_refresh_packets = 20;  // resend templates every N datagrams (0: never)
  uint64_t template_refresh_ms = 60000;    // ... and every T ms of pipeline time (0: never)
  uint64_t max_datagrams_per_second = 20'000;  // pacing (as IpfixOptions says why); 0 = unlimited
  /// Epoch ms the sysUptime clock starts from (floored to a second). 0 means
  /// "not known at construction": the first export then uses its now_ms
  /// minus one day, so flows that began before the first export still get
  /// non-negative FIRST_SWITCHED values.
  uint64_t boot_ms = 0;
  /// Set: flows with a direction carry DIRECTION (61) in templates 258/259
  /// (local_networks.h). Empty: templates 256 and 257 only, as without it.
  LocalNetworks local_networks;
  /// Options datagrams (netflow9_encoder.h OptionsValues): before the first
  /// flows, at the end, every this much pipeline time when not 0, and with
  /// sampling also every template_refresh_ms (a collector that restarted
  /// needs the rate).
  uint64_t options_interval_ms = 0;
  /// The run's packet sampling (`sampling:`): the rate the options announce.
  SamplingOptions sampling;
};

/// The settings a NetFlow v9 exporter has, besides `collector`.
std::span<const Setting<NetflowV9Options>> netflow9Settings();

}  // namespace flowfold
