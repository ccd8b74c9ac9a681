#pragma once
// The options of an IPFIX exporter and the table of its settings (its keys
// under `exporters: - type: ipfix` and their command-line options), apart
// from the exporter so that the configuration reader does not link
// libfixbuf.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/exporters/setting.h"
#include "flowfold/flowcache/sampler.h"

namespace flowfold {

struct IpfixOptions {
  enum class Transport { kUdp, kTcp, kFile };
  /// kLibfixbuf: records go through fBufAppend(), which transcodes the 22
  /// elements one by one. kDirect: flowfold byte-swaps the packed record
  /// itself, over ten times cheaper per record (bench/PROFILE.md); its
  /// messages are byte-identical to libfixbuf's (tested). kDirect is the
  /// default because on a capture with many short flows libfixbuf would be a
  /// large share of the probe's CPU. The one default of the program.
  enum class Encoder { kLibfixbuf, kDirect };

  Transport transport = Transport::kUdp;
  Encoder encoder = Encoder::kDirect;
  /// Collector address for kUdp / kTcp (name or literal, IPv4 or IPv6).
  std::string host;
  std::string port = "4739";
  /// Output file for kFile (RFC 5655 IPFIX file: the messages back to back);
  /// "-" = standard output. An existing file is appended to, never truncated:
  /// each exporter (each run, each reload) adds a message stream that starts
  /// with its templates. Opened as OutputFile says (output_file.h): a
  /// symbolic link to anything but a device or a FIFO is refused.
  std::string path;
  /// kFile: one file per interval, named by its start time, with caps on how
  /// many are kept (rotating_output.h). Each file starts with the templates
  /// and can be read alone.
  RotationOptions rotation;
  /// Observation Domain ID written in every message header.
  uint32_t observation_domain = 0;
  /// kUdp: largest IPFIX message (header included) in bytes, 256..65507;
  /// 0 = automatic, automaticDatagramBytes(host) (host_port.h). TCP and file
  /// messages are up to 65000 bytes.
  size_t mtu = 0;
  /// kUdp: resend the templates when this much pipeline time has passed
  /// since they were last sent (0 = never by time).
  uint64_t template_refresh_ms = 60000;
  /// kUdp: resend the templates after this many data messages (0 = never by count).
  uint32_t template_refresh_packets = 20;
  /// kUdp: at most this many messages per second, wall clock (0 = unlimited).
  /// A capture file can expire a million flows at once; unpaced, a
  /// collector's socket buffer overflows and drops them silently. 20000/s is
  /// ~500k flow records/s.
  uint64_t max_messages_per_second = 20'000;
  /// kTcp: messages wait in memory up to this many bytes while the collector
  /// is unreachable or stalled; beyond it the oldest are dropped and counted.
  size_t tcp_buffer_bytes = size_t{64} << 20;
  /// Set: flows with a direction go out with flowDirection (61), in
  /// templates 258 (IPv4) and 259 (IPv6) (local_networks.h). Empty: only
  /// 256 and 257, as without the option.
  LocalNetworks local_networks;
  /// Biflows (RFC 5103): one record per conversation, the initiator's fields
  /// forward and the responder's as reverse elements (templates 260-263),
  /// instead of one record per direction. Off by default: many collectors
  /// read uniflow records only.
  bool biflow = false;
  /// DPI labels (`dpi: true`, set by the probe): templates 268-271, each
  /// record with its application (ipfix_application.h). Direct encoder
  /// only, not with biflow.
  bool applications = false;
  /// How long (export time) a record waits for its reverse direction before
  /// it goes out as a one-sided biflow (biflow_pairer.h).
  uint64_t biflow_wait_ms = 5'000;
  /// Options records (RFC 7011 section 4; ipfix_options_records.h): the
  /// exporter's and the metering process's statistics, and with sampling its
  /// rate. They go out after the templates of each new session (file, TCP
  /// connection, UDP start), at the end, every this much pipeline time when
  /// not 0, and with sampling also with each refresh of the templates by time
  /// (a collector that restarted needs the rate to read the data).
  uint64_t options_interval_ms = 0;
  /// The run's packet sampling (`sampling:`, not an exporter key): the rate
  /// the options records announce.
  SamplingOptions sampling;
};

/// The settings an IPFIX exporter has, besides `collector` and `transport`
/// (read by the configuration, which also decides that a path alone means a
/// file).
std::span<const Setting<IpfixOptions>> ipfixSettings();

}  // namespace flowfold
