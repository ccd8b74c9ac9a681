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
#include "flowfold/exporters/ipfix_options.h"

namespace flowfold {

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
