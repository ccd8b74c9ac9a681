#pragma once
// IPFIX (RFC 7011 / RFC 7012) exporter built on libfixbuf. libfixbuf stays
// behind this header: it encodes templates and records, frames messages and
// keeps sequence numbers; flowfold's own transports send the messages, so
// the UDP message size, pacing and error reporting are under our control.
// An optional direct encoder produces the same bytes several times faster.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "flowfold/exporters/exporter.h"
#include "flowfold/exporters/local_networks.h"
#include "flowfold/exporters/rotating_output.h"

namespace flowfold {

struct IpfixOptions {
  enum class Transport { kUdp, kTcp, kFile };
  /// kLibfixbuf: records go through fBufAppend(), which transcodes the 22
  /// elements one by one. kDirect: flowfold byte-swaps the packed record
  /// itself, over ten times cheaper per record (bench/PROFILE.md); its
  /// messages are byte-identical to libfixbuf's (tested). kDirect is the
  /// default because on a capture with many short flows libfixbuf would be a
  /// large share of the probe's CPU. The one default of the program (the
  /// configuration's `encoder:` leaves it unless set).
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
  /// kUdp: largest IPFIX message (header included) in bytes, 256..65507.
  /// TCP and file messages are up to 65000 bytes.
  size_t mtu = 1400;
  /// kUdp: resend the templates when this much pipeline time has passed
  /// since they were last sent (0 = never by time).
  uint64_t template_refresh_ms = 60000;
  /// kUdp: resend the templates after this many data messages (0 = never by count).
  uint32_t template_refresh_packets = 20;
  /// kUdp: at most this many messages per second, wall clock (0 = unlimited).
  uint64_t max_messages_per_second = 0;
  /// kTcp: messages wait in memory up to this many bytes while the collector
  /// is unreachable or stalled; beyond it the oldest are dropped and counted.
  size_t tcp_buffer_bytes = size_t{64} << 20;
  /// Set: flows with a direction go out with flowDirection (61), in
  /// templates 258 (IPv4) and 259 (IPv6) (local_networks.h). Empty: only
  /// 256 and 257, as without the option.
  LocalNetworks local_networks;
};

/// Creates an IPFIX exporter. Throws std::invalid_argument on bad options and
/// std::runtime_error when the collector cannot be resolved (the message
/// names host:port) or the file cannot be created. A TCP collector that is
/// down at start-up is not an error: records are buffered and it is retried.
///
/// Wire format, per IP version one template (IPv4: id 256, IPv6: id 257):
///  - every FlowRecord field is sent; ICMP flows carry type*256+code in both
///    destinationTransportPort (11, as the FlowKey does) and icmpTypeCodeIPv4/IPv6
///    (32/139); for other protocols icmpTypeCode is 0.
///  - VLAN tags: vlanId (58) is the outer (first) tag; the inner (customer)
///    tag of a QinQ frame goes both in dot1qCustomerVlanId (245), its IEEE 802
///    element, and in postVlanId (59), the only element besides 58 that
///    nfdump 1.7.1 displays (as "dst vlan", %dvln): it ignores 243/245 in
///    IPFIX. A frame with one tag has 0 in both; untagged, 0 everywhere.
///  - MPLS: mplsTopLabelStackSection (70), mplsLabelStackSection2 (71) and
///    mplsLabelStackSection3 (72) are the top three label stack entries of
///    the flow's first packet, 3 octets each as RFC 7012 defines them: label
///    (20 bits) | Traffic Class (3 bits) | bottom of stack (1 bit). Entries
///    beyond the stack's depth are all zero (all three: no MPLS); entries
///    below the third are not exported.
///  - each batch is emitted at the end of exportBatch() (a record never waits
///    for a later batch); within a batch IPv4 records precede IPv6 records.
///  - the export time of a message is the pipeline time (now_ms / 1000).
///  - templates go first on every transport session (file, TCP connection,
///    UDP), in a message of their own; over UDP they are resent by time and
///    by message count as configured.
std::unique_ptr<Exporter> makeIpfixExporter(const IpfixOptions& options);

}  // namespace flowfold
