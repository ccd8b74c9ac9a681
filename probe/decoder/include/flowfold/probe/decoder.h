#pragma once
// Packet decoder: turns one captured frame into the FlowKey and per-packet
// values the flow cache accounts. The hottest code of the probe: no
// allocation, no exceptions and no virtual calls per packet.

#include <array>
#include <cstdint>
#include <string_view>

#include "flowfold/flowcache/flow_key.h"
#include "flowfold/flowcache/cache_packet.h"
#include "flowfold/probe/common_path.h"
#include "flowfold/probe/fragment_table.h"

namespace flowfold::probe {

/// pcap link-layer types (DLT_* as returned by pcap_datalink()) the decoder
/// understands. Declared here so the decoder does not depend on libpcap.
namespace dlt {
inline constexpr int kNull = 0;      // BSD loopback, AF in host byte order
inline constexpr int kEn10mb = 1;    // Ethernet
#ifdef __OpenBSD__
inline constexpr int kRaw = 14;      // raw IPv4/IPv6 (OpenBSD numbering)
inline constexpr int kLoop = 12;     // BSD loopback, AF in network byte order
#else
inline constexpr int kRaw = 12;      // raw IPv4/IPv6
inline constexpr int kLoop = 108;
#endif
inline constexpr int kLinktypeRaw = 101;  // LINKTYPE_RAW, should a caller pass the file value
inline constexpr int kLinuxSll = 113;     // Linux cooked capture v1
inline constexpr int kIpv4 = 228;         // raw IPv4
inline constexpr int kIpv6 = 229;         // raw IPv6
inline constexpr int kLinuxSll2 = 276;    // Linux cooked capture v2
}  // namespace dlt

/// How encapsulated traffic (GRE, ERSPAN, VXLAN, Geneve, GTP-U, IP-in-IP,
/// IPv6-in-IP) is accounted; see README "Tunnels".
enum class TunnelMode : uint8_t {
  kOuter,  ///< the outer IP packet only (what the wire carried); no decapsulation
  kInner,  ///< the innermost IP packet that decodes (the outer one if none does)
  kBoth,   ///< the outer packet, and the innermost one as a second flow
};

/// "outer", "inner", "both".
std::string_view tunnelModeName(TunnelMode mode);
/// Parses "outer", "inner" or "both"; false for anything else.
bool parseTunnelMode(std::string_view text, TunnelMode& mode);

enum class DecodeStatus : uint8_t {
  kOk,           ///< DecodedPacket filled; account the packet.
  kTruncated,    ///< A header the decoder needs was cut by the snap length.
  kUnsupported,  ///< Not IP, or a link type / version the decoder does not handle.
  kMalformed,    ///< A header contradicts itself or its container.
};

/// What the decoder produces per packet (valid only when decode() returns kOk):
/// the flow table's input (CachePacket), and what only the decoder's users
/// look at. Of the table's fields:
///  - key: ingress_if is left 0, the caller sets it;
///  - ip_length: the octets to account: IPv4 total length, or 40 + IPv6
///    payload length (or the jumbo payload length). Taken from the header,
///    so a packet cut by the snap length still counts its full size. When
///    the header says 0 (TSO / BIG TCP captures on the sending host) the
///    frame's wire length is used;
///  - tcp_flags: the TCP flags byte (CWR..FIN), 0 for other protocols;
///  - tos, ttl: IPv4 TOS / IPv6 traffic class, IPv4 TTL / IPv6 hop limit;
///  - src_mac, dst_mac: valid when has_mac (Ethernet only), else zero;
///  - mpls_stack: the top three MPLS label stack entries (label, TC, S;
///    flowcache/mpls.h), all 0 if none.
struct DecodedPacket : CachePacket {
  bool has_mac = false;    ///< src_mac/dst_mac valid (Ethernet only)
  bool has_mpls = false;
  bool is_fragment = false;     ///< IPv4 or IPv6 fragment (first or later)
  /// Encapsulations removed to reach this packet: 0 for the frame's own
  /// (outer) IP packet, 1 for the packet a tunnel carried, ...
  uint8_t tunnel_depth = 0;
  /// Where this packet's IP header starts in the frame (DPI reads the packet
  /// from there; for a tunnel's inner packet, the inner header).
  uint16_t l3_offset = 0;

  friend bool operator==(const DecodedPacket&, const DecodedPacket&) = default;
};
static_assert(sizeof(DecodedPacket) == 84,
              "a new field of DecodedPacket must also be set by common_path::decodeEthernet");

// Exactly one outcome counter is bumped per packet: `decoded` or one skip
// reason, so packets == decoded + skipped(). The second column is the status
// decode() returns for that reason. (Counter lists in the style of Envoy's
// stats macros: one list drives the fields, forEach() and the mapping.)
#define FLOWFOLD_DECODER_SKIP_REASONS(X)                                                     \
  X(truncated_link, kTruncated)        /* link / VLAN / MPLS / PPPoE header cut */          \
  X(truncated_ip, kTruncated)          /* IPv4 header or IPv6 header / ext header cut */    \
  X(truncated_l4, kTruncated)          /* transport ports/flags in the packet but cut */    \
  X(unsupported_link, kUnsupported)    /* link type the decoder does not handle */          \
  X(unsupported_ethertype, kUnsupported) /* ARP, LLDP, PPPoE discovery, 802.3 LLC, ... */   \
  X(unsupported_loopback_family, kUnsupported) /* DLT_NULL/LOOP family not IPv4/IPv6 */     \
  X(unsupported_ppp_protocol, kUnsupported)    /* PPPoE session carrying LCP, IPCP, ... */  \
  X(unsupported_mpls_payload, kUnsupported)    /* bottom of stack is not IPv4/IPv6 */       \
  X(unsupported_ip_version, kUnsupported)      /* IP version nibble neither 4 nor 6 */      \
  X(malformed_ip, kMalformed)  /* bad IHL, total length < header, ext header beyond */      \
                               /* the payload, version not the one the link announced */

// Informational counters: they flag something about a packet that was
// decoded (or explain a decode) and do not take part in the invariant.
#define FLOWFOLD_DECODER_INFO_COUNTERS(X)                                                    \
  X(l4_header_absent)      /* datagram too short to hold the ports: decoded, ports 0 */     \
  X(fragments_first)       /* first fragments (offset 0, more-fragments set) */             \
  X(fragments_later)       /* non-first fragments, matched or not */                        \
  X(fragments_unmatched)   /* of fragments_later: first not seen (or expired): ports 0 */   \
  X(fragments_evicted)     /* incomplete datagrams pushed out of the full fragment table */ \
  X(ipv6_ext_header_limit) /* chain longer than kMaxIpv6ExtHeaders: decoded, ports 0 */     \
  X(ip_length_from_frame)  /* IP length field 0 (TSO / BIG TCP): wire length used */       \
  X(ip_length_beyond_frame) /* IP length larger than the frame on the wire */          \
  /* Tunnels (modes inner and both only; one count per encapsulation removed): */         \
  X(tunnel_gre)            /* GRE v0 carrying IP, MPLS or Ethernet (TEB) */                 \
  X(tunnel_erspan)         /* ERSPAN type I/II/III over GRE (inner Ethernet) */             \
  X(tunnel_vxlan)          /* VXLAN, UDP port 4789 (inner Ethernet) */                      \
  X(tunnel_geneve)         /* Geneve, UDP port 6081 */                                      \
  X(tunnel_gtpu)           /* GTP-U G-PDU, UDP port 2152 (inner IP) */                      \
  X(tunnel_ipip)           /* IPv4 in IPv4/IPv6 (protocol 4) */                             \
  X(tunnel_6in4)           /* IPv6 in IPv4/IPv6 (protocol 41: 6in4, 6to4, 6in6) */          \
  X(tunnel_decapsulated)   /* packets accounted (also) by an inner flow */                  \
  X(tunnel_inner_undecodable) /* inner packet cut, not IP or malformed: outer accounted */  \
  X(tunnel_outer_fragment) /* tunnel inside a fragmented outer packet: outer accounted */   \
  X(tunnel_depth_limit)    /* more than kMaxTunnelDepth encapsulations: stopped there */

/// Per-decoder counters. Plain integers: one Decoder per capture thread.
struct DecodeCounters {
  uint64_t packets = 0;  ///< every call to decode()
  uint64_t decoded = 0;  ///< decode() returned kOk
#define FLOWFOLD_DECODER_FIELD(name, ...) uint64_t name = 0;
  FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_DECODER_FIELD)
  FLOWFOLD_DECODER_INFO_COUNTERS(FLOWFOLD_DECODER_FIELD)
#undef FLOWFOLD_DECODER_FIELD

  /// Sum of the skip reasons: packets == decoded + skipped() always holds.
  uint64_t skipped() const {
    uint64_t sum = 0;
#define FLOWFOLD_DECODER_ADD(name, ...) sum += name;
    FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_DECODER_ADD)
#undef FLOWFOLD_DECODER_ADD
    return sum;
  }

  friend bool operator==(const DecodeCounters&, const DecodeCounters&) = default;

  /// Calls visitor(std::string_view name, uint64_t value) for every counter,
  /// packets and decoded first, then the skip reasons, then the informational ones.
  template <typename Visitor>
  void forEach(Visitor&& visitor) const {
    visitor(std::string_view("packets"), packets);
    visitor(std::string_view("decoded"), decoded);
#define FLOWFOLD_DECODER_VISIT(name, ...) visitor(std::string_view(#name), name);
    FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_DECODER_VISIT)
    FLOWFOLD_DECODER_INFO_COUNTERS(FLOWFOLD_DECODER_VISIT)
#undef FLOWFOLD_DECODER_VISIT
  }
};

/// Decodes frames of one link type. Not thread-safe: use one per capture thread.
class Decoder {
 public:
  /// Longest IPv6 extension-header chain walked; a longer one is accounted
  /// with the protocol reached and ports 0 (counter ipv6_ext_header_limit).
  static constexpr int kMaxIpv6ExtHeaders = 16;
  /// Most encapsulations removed from one packet (tunnel modes); a packet
  /// nested deeper is accounted at this depth (counter tunnel_depth_limit).
  static constexpr int kMaxTunnelDepth = 4;

  /// Any `dlt` is accepted; for one supportsLinkType() rejects, every packet
  /// counts unsupported_link (the caller is expected to warn once).
  explicit Decoder(int dlt, FragmentTableConfig fragments = {},
                   TunnelMode tunnels = TunnelMode::kOuter);

  static bool supportsLinkType(int dlt);

  /// Decodes one frame. `caplen` bytes are readable at `data`; `wirelen` is
  /// the frame's length on the wire; `ts_ms` (any monotonic-ish millisecond
  /// clock, the packet timestamp in practice) ages the fragment table.
  /// Never reads past data + caplen. On kOk `out` is fully overwritten; on
  /// any other status its contents are unspecified.
  ///
  /// Tunnel modes: kOuter fills `out` with the frame's own IP packet, kInner
  /// with the innermost packet that decodes (the outer one, counted, when the
  /// inner one does not). kBoth fills `out` with the outer packet and, when
  /// the packet was decapsulated, `*inner` with the innermost one
  /// (inner->tunnel_depth != 0; it is 0 otherwise). kBoth without `inner`
  /// is kOuter. In kOuter the only cost over a tunnel-unaware decoder is
  /// the mode check here.
  [[gnu::always_inline]] DecodeStatus decode(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms,
                                             DecodedPacket& out, DecodedPacket* inner = nullptr) {
    if (tunnels_ == TunnelMode::kOuter || (tunnels_ == TunnelMode::kBoth && inner == nullptr)) {
      if (common_ethernet_ && common_path::decodeEthernet(data, caplen, wirelen, out)) {
        ++counters_.packets;
        ++counters_.decoded;
        return DecodeStatus::kOk;
      }
      return decodeOuter(data, caplen, wirelen, ts_ms, out);
    }
    return decodeTunnels(data, caplen, wirelen, ts_ms, out, inner);
  }

  const DecodeCounters& counters() const { return counters_; }
  int linkType() const { return dlt_; }

  /// Ethernet frames of the common kinds (IPv4 or IPv6 carrying TCP or UDP,
  /// at most one VLAN tag) take a single straight pass instead of the
  /// layer-by-layer walk, with the same result. Off: every frame takes the
  /// walk (the tests compare the two).
  void setCommonPath(bool on) { common_ethernet_ = on && link_ == Link::kEthernet; }
  TunnelMode tunnelMode() const { return tunnels_; }

  /// The first layer to decode (an implementation detail of decode()).
  enum class Link : uint8_t { kUnsupported, kEthernet, kLinuxSll, kLinuxSll2, kRaw, kRawIpv4, kRawIpv6, kNull };

 private:
  /// The layer-by-layer walk (decode() has tried the common path).
  DecodeStatus decodeOuter(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms,
                           DecodedPacket& out);
  DecodeStatus decodeTunnels(const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                             uint64_t ts_ms, DecodedPacket& out, DecodedPacket* inner);
  static Link linkFor(int dlt);

  int dlt_;
  Link link_;
  TunnelMode tunnels_;
  bool common_ethernet_ = false;  // Ethernet frames try the common path first
  DecodeCounters counters_;
  FragmentTable fragments_;
};

}  // namespace flowfold::probe
