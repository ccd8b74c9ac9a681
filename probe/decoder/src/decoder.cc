// One small function per protocol layer (Zeek style). Every read is preceded
// by a bounds check against the captured length; a layer asks only for the
// bytes it actually reads, so a short snap length loses as little as
// possible. Offsets are size_t so that header lengths added to them cannot
// wrap.

#include "flowfold/probe/decoder.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "flowfold/flowcache/wire.h"

namespace flowfold::probe {
namespace {

// PPP protocol numbers (RFC 1661 / IANA). EtherTypes and IP protocol
// numbers: flowfold/flowcache/wire.h.
constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;

// BSD address families as they appear in DLT_NULL / DLT_LOOP headers.
constexpr uint32_t kAfInet = 2;
constexpr uint32_t kAfInet6Bsd = 24;      // NetBSD, OpenBSD, BSD/OS
constexpr uint32_t kAfInet6FreeBsd = 28;  // FreeBSD, DragonFly
constexpr uint32_t kAfInet6Darwin = 30;   // macOS, iOS

constexpr uint8_t kIpv6JumboOption = 0xc2;  // RFC 2675

// The headers the IPv6 walk steps over: IANA's "IPv6 Extension Header
// Types" registry (RFC 7045, RFC 8200 section 4) less ESP, whose payload is
// encrypted, so it ends the walk as the flow's protocol. A set of 256 bits:
// one test per header whatever the value.
constexpr std::array<uint64_t, 4> kIpv6ExtensionHeaders = [] {
  std::array<uint64_t, 4> set{};
  for (uint8_t protocol : {kProtoIpv6HopByHop, kProtoIpv6Routing, kProtoIpv6Fragment, kProtoAh,
                           kProtoIpv6DestOpts, kProtoIpv6Mobility, kProtoHip, kProtoShim6,
                           kProtoExperiment1, kProtoExperiment2}) {
    set[protocol >> 6] |= uint64_t{1} << (protocol & 63);
  }
  return set;
}();

constexpr bool isIpv6ExtensionHeader(uint8_t next) {
  return ((kIpv6ExtensionHeaders[next >> 6] >> (next & 63)) & 1) != 0;
}
static_assert(isIpv6ExtensionHeader(kProtoIpv6HopByHop) && isIpv6ExtensionHeader(kProtoShim6) &&
              isIpv6ExtensionHeader(kProtoExperiment2) && !isIpv6ExtensionHeader(kProtoEsp) &&
              !isIpv6ExtensionHeader(kProtoIpv6NoNext) && !isIpv6ExtensionHeader(kProtoTcp) &&
              !isIpv6ExtensionHeader(kProtoUdpLite) && !isIpv6ExtensionHeader(255));

// UDP destination ports of the UDP tunnels (IANA).
constexpr uint16_t kPortVxlan = 4789;   // RFC 7348
constexpr uint16_t kPortGeneve = 6081;  // RFC 8926
constexpr uint16_t kPortGtpu = 2152;    // 3GPP TS 29.281
constexpr uint8_t kGtpGpdu = 255;       // GTP-U message type carrying a user packet

// What happened to one packet: decoded, or exactly one skip reason.
enum class Outcome : uint8_t {
  decoded,
#define FLOWFOLD_OUTCOME(name, status) name,
  FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_OUTCOME)
#undef FLOWFOLD_OUTCOME
};

constexpr uint64_t DecodeCounters::*kOutcomeCounter[] = {
    &DecodeCounters::decoded,
#define FLOWFOLD_OUTCOME(name, status) &DecodeCounters::name,
    FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_OUTCOME)
#undef FLOWFOLD_OUTCOME
};

constexpr DecodeStatus kOutcomeStatus[] = {
    DecodeStatus::kOk,
#define FLOWFOLD_OUTCOME(name, status) DecodeStatus::status,
    FLOWFOLD_DECODER_SKIP_REASONS(FLOWFOLD_OUTCOME)
#undef FLOWFOLD_OUTCOME
};

// An encapsulation a decoded packet carries (tunnel modes only).
enum class Tunnel : uint8_t { kNone, kGre, kVxlan, kGeneve, kGtpu, kIpip, k6in4 };

// What opening a tunnel gave: the inner packet decoded, the payload is not
// a tunnelled packet after all (GRE v1/PPTP, GTP-U signalling: the outer
// flow, silently), or the inner packet could not be decoded (counted).
enum class Decap : uint8_t { kDecoded, kNotTunnel, kUndecodable };

// Walks one packet through the layers. Lives on the stack for one decode()
// call; everything is inlined into it. kTunnels: the walker also notes
// where the transport header is, so that a tunnel it carries can be opened
// (modes inner and both); kOuter runs the walker without it.
template <bool kTunnels>
class PacketWalker {
 public:
  PacketWalker(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms,
               DecodedPacket& out, DecodeCounters& counters, FragmentTable& fragments)
      : p_(data), caplen_(caplen), wirelen_(wirelen < caplen ? caplen : wirelen), ts_ms_(ts_ms),
        out_(out), key_(out.key), counters_(counters), fragments_(fragments) {}

  // ---- link layers -------------------------------------------------------

  Outcome ethernet(size_t off) {
    if (!has(off, 14)) return Outcome::truncated_link;
    std::memcpy(out_.dst_mac.data(), p_ + off, 6);
    std::memcpy(out_.src_mac.data(), p_ + off + 6, 6);
    out_.has_mac = true;
    return etherType(load16(p_ + off + 12), off + 14);
  }

  // Linux cooked v1: type(2) ARPHRD(2) addr-len(2) addr(8) protocol(2).
  Outcome linuxSll(size_t off) {
    if (!has(off, 16)) return Outcome::truncated_link;
    return etherType(load16(p_ + off + 14), off + 16);
  }

  // Linux cooked v2: protocol(2) reserved(2) ifindex(4) ARPHRD(2) type(1) addr-len(1) addr(8).
  Outcome linuxSll2(size_t off) {
    if (!has(off, 20)) return Outcome::truncated_link;
    return etherType(load16(p_ + off), off + 20);
  }

  // BSD loopback: a 4-byte address family, in the capturing host's byte
  // order (DLT_NULL) or network order (DLT_LOOP). Families fit in 16 bits,
  // so a value with high bits set is the other byte order.
  Outcome loopback(size_t off) {
    if (!has(off, 4)) return Outcome::truncated_link;
    const uint8_t* h = p_ + off;
    uint32_t family = uint32_t{h[0]} | uint32_t{h[1]} << 8 | uint32_t{h[2]} << 16 |
                      uint32_t{h[3]} << 24;
    if ((family & 0xffff0000u) != 0) family = load32(h);
    switch (family) {
      case kAfInet:
        return ip(off + 4, 4);
      case kAfInet6Bsd:
      case kAfInet6FreeBsd:
      case kAfInet6Darwin:
        return ip(off + 4, 6);
      default:
        return Outcome::unsupported_loopback_family;
    }
  }

  // ---- EtherType dispatcher ---------------------------------------------

  // VLAN tags are peeled in a loop (bounded by the captured length): the
  // first tag is the outer VLAN, the second the inner one, deeper tags are
  // skipped.
  Outcome etherType(uint16_t type, size_t off) {
    unsigned tags = 0;
    while (type == kEtherVlan || type == kEtherQinq || type == kEtherQinqOld) {
      if (!has(off, 4)) return Outcome::truncated_link;
      uint16_t vid = load16(p_ + off) & 0x0fff;
      if (tags == 0) {
        key_.vlan_id = vid;
        // An inner (tunnelled) frame's tags replace the outer frame's.
        if constexpr (kTunnels) key_.inner_vlan_id = 0;
      } else if (tags == 1) {
        key_.inner_vlan_id = vid;
      }
      ++tags;
      type = load16(p_ + off + 2);
      off += 4;
    }
    switch (type) {
      case kEtherIpv4:
        return ip(off, 4);
      case kEtherIpv6:
        return ip(off, 6);
      case kEtherMplsUnicast:
      case kEtherMplsMulticast:
        return mpls(off);
      case kEtherPppoeSession:
        return pppoeSession(off);
      default:
        return Outcome::unsupported_ethertype;
    }
  }

  // MPLS: walk the label stack to the bottom-of-stack bit, keeping the top
  // kMplsEntriesKept entries, then guess the payload from its first nibble
  // (there is no payload type field).
  Outcome mpls(size_t off) {
    out_.has_mpls = true;
    out_.mpls_stack = MplsStack{};
    uint32_t entry;
    unsigned depth = 0;
    do {
      if (!has(off, 4)) return Outcome::truncated_link;
      entry = load32(p_ + off);
      if (depth < kMplsEntriesKept) out_.mpls_stack[depth] = mplsEntry(entry);
      ++depth;
      off += 4;
    } while ((entry & 0x100) == 0);
    if (!has(off, 1)) return Outcome::truncated_ip;
    switch (p_[off] >> 4) {
      case 4:
        return ipv4(off);
      case 6:
        return ipv6(off);
      default:
        return Outcome::unsupported_mpls_payload;
    }
  }

  // PPPoE session (RFC 2516): ver/type(1) code(1) session(2) length(2), then
  // the PPP protocol, 2 bytes or 1 if compressed (RFC 1661 PFC: odd first byte).
  Outcome pppoeSession(size_t off) {
    if (!has(off, 7)) return Outcome::truncated_link;
    off += 6;
    uint16_t protocol;
    if ((p_[off] & 1) != 0) {
      protocol = p_[off];
      off += 1;
    } else {
      if (!has(off, 2)) return Outcome::truncated_link;
      protocol = load16(p_ + off);
      off += 2;
    }
    switch (protocol) {
      case kPppIpv4:
        return ip(off, 4);
      case kPppIpv6:
        return ip(off, 6);
      default:
        return Outcome::unsupported_ppp_protocol;
    }
  }

  // ---- IP ----------------------------------------------------------------

  // `expected` is the version the link layer announced, or 0 (raw IP).
  Outcome ip(size_t off, uint8_t expected) {
    if (!has(off, 1)) return Outcome::truncated_ip;
    uint8_t version = p_[off] >> 4;
    if (version != 4 && version != 6) return Outcome::unsupported_ip_version;
    if (expected != 0 && version != expected) return Outcome::malformed_ip;
    return version == 4 ? ipv4(off) : ipv6(off);
  }

  Outcome ipv4(size_t off) {
    if (!has(off, 20)) return Outcome::truncated_ip;
    const uint8_t* h = p_ + off;
    out_.l3_offset = static_cast<uint16_t>(off);
    uint32_t header_len = (h[0] & 0x0fu) * 4;
    if (header_len < 20) return Outcome::malformed_ip;
    size_t wire_left = wirelen_ - off;
    size_t total = load16(h + 2);
    bool from_frame = total == 0;  // TSO / BIG TCP capture on the sender
    if (from_frame) total = wire_left;
    if (total < header_len) return Outcome::malformed_ip;

    key_.ip_version = 4;
    key_.protocol = h[9];
    std::memcpy(key_.src_addr.data(), h + 12, 4);
    std::memcpy(key_.dst_addr.data(), h + 16, 4);
    out_.tos = h[1];
    out_.ttl = h[8];
    out_.ip_length = static_cast<uint32_t>(total);

    Outcome outcome;
    uint16_t frag = load16(h + 6);
    if ((frag & 0x3fff) == 0) {  // neither more-fragments nor an offset
      outcome = transport(h[9], off + header_len, off + total);
    } else {
      out_.is_fragment = true;
      FragmentTable::Key fk = fragmentKey(load16(h + 4), h[9]);
      if ((frag & 0x1fff) != 0) {
        outcome = laterFragment(fk, (frag & 0x2000) == 0);
      } else {
        outcome = transport(h[9], off + header_len, off + total);
        if (outcome == Outcome::decoded) firstFragment(fk);
      }
    }
    if (outcome == Outcome::decoded) noteLength(from_frame, total, wire_left);
    return outcome;
  }

  Outcome ipv6(size_t off) {
    if (!has(off, 40)) return Outcome::truncated_ip;
    const uint8_t* h = p_ + off;
    out_.l3_offset = static_cast<uint16_t>(off);
    size_t wire_left = wirelen_ - off;
    uint8_t next = h[6];
    size_t total = size_t{40} + load16(h + 4);
    bool from_frame = false;
    if (total == 40 && next != kProtoIpv6NoNext) {
      // Payload length 0 with a next header: a jumbogram (the length is in
      // a hop-by-hop option) or a BIG TCP capture on the sending host.
      uint32_t jumbo = 0;
      Jumbo found = next == kProtoIpv6HopByHop ? jumboLength(off + 40, jumbo) : Jumbo::kAbsent;
      if (found == Jumbo::kCut) return Outcome::truncated_ip;
      if (found == Jumbo::kFound) {
        total = size_t{40} + jumbo;
      } else if (wire_left > size_t{40} + 0xffff) {
        // Only a length the field cannot hold; a smaller frame with payload
        // length 0 is a bare header (plus link padding) or malformed.
        total = wire_left;
        from_frame = true;
      }
    }

    key_.ip_version = 6;
    std::memcpy(key_.src_addr.data(), h + 8, 16);
    std::memcpy(key_.dst_addr.data(), h + 24, 16);
    out_.tos = static_cast<uint8_t>(load16(h) >> 4);
    out_.ttl = h[7];
    out_.ip_length = total > std::numeric_limits<uint32_t>::max()
                         ? std::numeric_limits<uint32_t>::max()
                         : static_cast<uint32_t>(total);

    const size_t end = off + total;
    size_t cur = off + 40;
    bool first_fragment = false;
    uint32_t fragment_id = 0;
    uint8_t fragment_next = 0;
    // Every extension header IANA lists (ESP and No Next Header end the
    // walk: the protocol is theirs, with no ports). RFC 7012: the flow's
    // protocol is the Next Header after the last extension header.
    for (int headers = 0;; ++headers) {
      if (!isIpv6ExtensionHeader(next)) break;
      if (headers == Decoder::kMaxIpv6ExtHeaders) {
        // Account the packet rather than drop it: a flood of extension
        // headers is traffic an operator wants to see.
        key_.protocol = next;
        ++counters_.ipv6_ext_header_limit;
        noteLength(from_frame, total, wire_left);
        return Outcome::decoded;
      }
      if (next == kProtoIpv6Fragment) {
        if (cur + 8 > end) return Outcome::malformed_ip;
        if (!has(cur, 8)) return Outcome::truncated_ip;
        const uint8_t* f = p_ + cur;
        uint16_t offset_flags = load16(f + 2);
        next = f[0];
        cur += 8;
        // Offset 0 and no more-fragments (reserved bits aside): an atomic
        // fragment (RFC 6946), i.e. a whole datagram.
        if ((offset_flags & 0xfff9) == 0) continue;
        out_.is_fragment = true;
        fragment_id = load32(f + 4);
        fragment_next = next;
        if ((offset_flags & 0xfff8) != 0) {
          key_.protocol = next;
          Outcome outcome =
              laterFragment(fragmentKey(fragment_id, fragment_next), (offset_flags & 1) == 0);
          noteLength(from_frame, total, wire_left);
          return outcome;
        }
        first_fragment = true;
        continue;
      }
      // The others: next header(1), length(1). AH counts 4-byte units less
      // 2 (RFC 4302); hop-by-hop, routing, destination options, Mobility
      // (Payload Proto, Header Len), HIP, Shim6 and 253/254 (the format
      // RFC 8200 section 4.8 asks of new headers) 8-byte units less 1.
      if (!has(cur, 2)) return Outcome::truncated_ip;
      size_t len = next == kProtoAh ? (size_t{p_[cur + 1]} + 2) * 4 : (size_t{p_[cur + 1]} + 1) * 8;
      if (cur + len > end) return Outcome::malformed_ip;
      next = p_[cur];
      cur += len;
    }

    Outcome outcome = transport(next, cur, end);
    if (outcome != Outcome::decoded) return outcome;
    if (first_fragment) firstFragment(fragmentKey(fragment_id, fragment_next));
    noteLength(from_frame, total, wire_left);
    return outcome;
  }

  // ---- transport -----------------------------------------------------------

  // Reads ports (and TCP flags, ICMP type/code). `end` is where the IP
  // datagram ends according to its header, possibly beyond the capture.
  // If the datagram is too short to hold those fields, the transport header
  // is truly absent: the packet is accounted with ports 0. If they are in
  // the datagram but cut by the snap length, the packet is skipped rather
  // than accounted to a wrong (port 0) flow.
  Outcome transport(uint8_t protocol, size_t off, size_t end) {
    key_.protocol = protocol;
    if constexpr (kTunnels) {
      l4_off_ = off;
      l4_end_ = end;
      l4_seen_ = true;
    }
    size_t need;
    switch (protocol) {
      case kProtoTcp:
        need = 14;  // ports .. flags byte
        break;
      case kProtoUdp:
      case kProtoUdpLite:
      case kProtoSctp:
      case kProtoDccp:
        need = 4;
        break;
      case kProtoIcmp:
      case kProtoIcmpv6:
        need = 2;
        break;
      default:
        return Outcome::decoded;  // keyed by addresses and protocol only
    }
    if (off + need > end) {
      ++counters_.l4_header_absent;
      return Outcome::decoded;
    }
    if (!has(off, need)) return Outcome::truncated_l4;
    const uint8_t* t = p_ + off;
    if (need == 2) {
      key_.dst_port = load16(t);  // type << 8 | code
    } else {
      key_.src_port = load16(t);
      key_.dst_port = load16(t + 2);
      if (protocol == kProtoTcp) out_.tcp_flags = t[13];
    }
    return Outcome::decoded;
  }

  // ---- tunnels (kTunnels only) ------------------------------------------

  // This walker decoded its packet (at `depth` encapsulations from the
  // frame). If the packet carries a tunnel, decodes the encapsulated packet
  // into levels[depth] and goes on from there. Returns the innermost packet
  // that decoded: &out_ when nothing was (or could be) decapsulated.
  const DecodedPacket* descend(DecodedPacket* levels, int depth) {
    const Tunnel tunnel = carried();
    if (tunnel == Tunnel::kNone) return &out_;
    if (out_.is_fragment) {
      // The inner headers are in the first fragment only: the fragments of
      // one datagram stay together in the outer flow.
      ++counters_.tunnel_outer_fragment;
      return &out_;
    }
    if (!l4_seen_) {  // the walk stopped before the payload (extension-header limit)
      ++counters_.tunnel_inner_undecodable;
      return &out_;
    }
    if (depth == Decoder::kMaxTunnelDepth) {
      ++counters_.tunnel_depth_limit;
      return &out_;
    }
    DecodedPacket& inner = levels[depth];
    inner = out_;  // the link-layer context (MACs, VLANs, MPLS) carries over
    inner.key.src_addr = {};
    inner.key.dst_addr = {};
    inner.key.src_port = 0;
    inner.key.dst_port = 0;
    inner.key.protocol = 0;
    inner.key.ip_version = 0;
    inner.ip_length = 0;
    inner.tcp_flags = 0;
    inner.tos = 0;
    inner.ttl = 0;
    inner.is_fragment = false;
    inner.tunnel_depth = static_cast<uint8_t>(depth + 1);
    PacketWalker child(p_, caplen_, wirelen_, ts_ms_, inner, counters_, fragments_);
    uint64_t DecodeCounters::*counter = nullptr;
    switch (child.open(tunnel, l4_off_, l4_end_, counter)) {
      case Decap::kNotTunnel:
        return &out_;
      case Decap::kUndecodable:
        ++counters_.tunnel_inner_undecodable;
        return &out_;
      case Decap::kDecoded:
        break;
    }
    ++(counters_.*counter);
    return child.descend(levels, depth + 1);
  }

 private:
  Tunnel carried() const {
    switch (key_.protocol) {
      case kProtoIpip:
        return Tunnel::kIpip;
      case kProtoIpv6:
        return Tunnel::k6in4;
      case kProtoGre:
        return Tunnel::kGre;
      case kProtoUdp:
        switch (key_.dst_port) {
          case kPortVxlan:
            return Tunnel::kVxlan;
          case kPortGeneve:
            return Tunnel::kGeneve;
          case kPortGtpu:
            return Tunnel::kGtpu;
          default:
            return Tunnel::kNone;
        }
      default:
        return Tunnel::kNone;
    }
  }

  // Decodes the packet `tunnel` carries; `off` is where the outer transport
  // header (UDP, GRE) or the inner IP header (IP-in-IP) starts, `end` where
  // the outer datagram ends. Sets `counter` to the tunnel's counter.
  Decap open(Tunnel tunnel, size_t off, size_t end, uint64_t DecodeCounters::*& counter) {
    switch (tunnel) {
      case Tunnel::kIpip:
        counter = &DecodeCounters::tunnel_ipip;
        return enter(off, end, [&] { return ip(off, 4); });
      case Tunnel::k6in4:
        counter = &DecodeCounters::tunnel_6in4;
        return enter(off, end, [&] { return ip(off, 6); });
      case Tunnel::kGre:
        counter = &DecodeCounters::tunnel_gre;
        return gre(off, end, counter);
      case Tunnel::kVxlan:
        counter = &DecodeCounters::tunnel_vxlan;
        return vxlan(off + 8, end);
      case Tunnel::kGeneve:
        counter = &DecodeCounters::tunnel_geneve;
        return geneve(off + 8, end);
      case Tunnel::kGtpu:
        counter = &DecodeCounters::tunnel_gtpu;
        return gtpu(off + 8, end);
      case Tunnel::kNone:
      default:
        return Decap::kNotTunnel;
    }
  }

  // Runs `walk` on the inner packet at `off` if the outer datagram has room
  // for one there.
  template <typename Walk>
  static Decap enter(size_t off, size_t end, Walk&& walk) {
    if (off >= end) return Decap::kUndecodable;
    return walk() == Outcome::decoded ? Decap::kDecoded : Decap::kUndecodable;
  }

  // A protocol type that is an EtherType (GRE, Geneve): Ethernet for
  // transparent bridging, else IPv4, IPv6, MPLS, ... through the dispatcher.
  Decap etherPayload(uint16_t type, size_t off, size_t end) {
    if (type == kEtherTeb) return enter(off, end, [&] { return ethernet(off); });
    return enter(off, end, [&] { return etherType(type, off); });
  }

  // GRE (RFC 2784, key and sequence number RFC 2890): flags C..K S, version
  // 0; optional checksum+reserved (C), key (K), sequence number (S). The
  // RFC 1701 routing bit R is obsolete (RFC 2784) and not followed. Version
  // 1 is PPTP's enhanced GRE (RFC 2637, PPP inside): left as the outer flow.
  Decap gre(size_t off, size_t end, uint64_t DecodeCounters::*& counter) {
    if (off + 4 > end || !has(off, 4)) return Decap::kUndecodable;
    const uint8_t flags = p_[off];
    const uint8_t version = p_[off + 1] & 0x07;
    if (version != 0) return Decap::kNotTunnel;
    if ((flags & 0x40) != 0) return Decap::kUndecodable;  // R: source routing
    const uint16_t type = load16(p_ + off + 2);
    const bool seq = (flags & 0x10) != 0;
    size_t hdr = 4;
    if ((flags & 0x80) != 0) hdr += 4;  // C: checksum, reserved1
    if ((flags & 0x20) != 0) hdr += 4;  // K: key
    if (seq) hdr += 4;                  // S: sequence number
    off += hdr;
    switch (type) {
      case kEtherErspan2:
        // Type II has an 8-byte header and a sequence number in GRE; type I
        // (no S flag) has no header of its own.
        counter = &DecodeCounters::tunnel_erspan;
        return enter(off, end, [&] { return ethernet(seq ? off + 8 : off); });
      case kEtherErspan3: {
        // 12 bytes: ver/VLAN(2) COS/BSO/T/session(2) timestamp(4) SGT(2)
        // P/FT(5)/HW ID/D/Gra/O(2); an 8-byte platform subheader if O.
        counter = &DecodeCounters::tunnel_erspan;
        if (!has(off, 12)) return Decap::kUndecodable;
        const uint16_t bits = load16(p_ + off + 10);
        const unsigned frame_type = (bits >> 10) & 0x1f;
        const size_t payload = off + 12 + ((bits & 0x01) != 0 ? 8 : 0);
        if (frame_type == 0) return enter(payload, end, [&] { return ethernet(payload); });
        if (frame_type == 2) return enter(payload, end, [&] { return ip(payload, 0); });
        return Decap::kUndecodable;  // another frame type (802.11, ...)
      }
      default:
        return etherPayload(type, off, end);
    }
  }

  // VXLAN (RFC 7348), `off` after the UDP header: flags(1) with I (valid
  // VNI) set, reserved(3), VNI(3), reserved(1); then an Ethernet frame.
  Decap vxlan(size_t off, size_t end) {
    if (off + 8 > end || !has(off, 8)) return Decap::kUndecodable;
    if ((p_[off] & 0x08) == 0) return Decap::kUndecodable;
    return enter(off + 8, end, [&] { return ethernet(off + 8); });
  }

  // Geneve (RFC 8926): version(2) options length(6, in 4-byte words),
  // O/C flags(2) reserved(6), protocol type(2), VNI(3), reserved(1), options.
  Decap geneve(size_t off, size_t end) {
    if (off + 8 > end || !has(off, 8)) return Decap::kUndecodable;
    if ((p_[off] >> 6) != 0) return Decap::kUndecodable;  // unknown version
    const size_t options = size_t{p_[off] & 0x3fu} * 4;
    return etherPayload(load16(p_ + off + 2), off + 8 + options, end);
  }

  // GTP-U (3GPP TS 29.281), `off` after the UDP header: flags(1) = version
  // (3 bits, 1), PT (1 = GTP), reserved, E, S, PN; message type(1);
  // length(2); TEID(4). If E, S or PN is set: sequence number(2), N-PDU
  // number(1), next extension header type(1); with E, extension headers
  // follow, each length(1, in 4-byte units) ... next type(1), until type 0.
  // Only a G-PDU carries a user packet: echo, error indication, end marker
  // and GTP' stay the outer flow.
  Decap gtpu(size_t off, size_t end) {
    if (off + 8 > end || !has(off, 8)) return Decap::kUndecodable;
    const uint8_t flags = p_[off];
    if ((flags >> 5) != 1 || (flags & 0x10) == 0 || p_[off + 1] != kGtpGpdu) return Decap::kNotTunnel;
    size_t cur = off + 8;
    if ((flags & 0x07) != 0) {
      if (!has(cur, 4)) return Decap::kUndecodable;
      uint8_t next = p_[cur + 3];
      cur += 4;
      // Each header is at least 4 bytes, so the walk ends within the capture.
      while ((flags & 0x04) != 0 && next != 0) {
        if (!has(cur, 1)) return Decap::kUndecodable;
        const size_t len = size_t{p_[cur]} * 4;
        if (len == 0 || cur + len > end) return Decap::kUndecodable;
        if (!has(cur, len)) return Decap::kUndecodable;
        next = p_[cur + len - 1];
        cur += len;
      }
    }
    return enter(cur, end, [&] { return ip(cur, 0); });
  }

  bool has(size_t off, size_t n) const { return off <= caplen_ && caplen_ - off >= n; }

  enum class Jumbo : uint8_t { kFound, kAbsent, kCut };

  // Hop-by-hop header at `off` carrying a Jumbo Payload option (RFC 2675)?
  // kCut: the header is not all captured, so the length cannot be known.
  Jumbo jumboLength(size_t off, uint32_t& jumbo) const {
    if (!has(off, 2)) return Jumbo::kCut;
    size_t len = (size_t{p_[off + 1]} + 1) * 8;
    if (!has(off, len)) return Jumbo::kCut;
    size_t opt = off + 2;
    const size_t opt_end = off + len;
    while (opt < opt_end) {
      uint8_t type = p_[opt];
      if (type == 0) {  // Pad1
        ++opt;
        continue;
      }
      if (opt + 2 > opt_end) return Jumbo::kAbsent;
      size_t opt_len = p_[opt + 1];
      if (opt + 2 + opt_len > opt_end) return Jumbo::kAbsent;
      if (type == kIpv6JumboOption && opt_len == 4) {
        jumbo = load32(p_ + opt + 2);
        return Jumbo::kFound;
      }
      opt += 2 + opt_len;
    }
    return Jumbo::kAbsent;
  }

  FragmentTable::Key fragmentKey(uint32_t id, uint8_t protocol) const {
    FragmentTable::Key fk;
    fk.src = key_.src_addr;
    fk.dst = key_.dst_addr;
    fk.id = id;
    fk.vlan_id = key_.vlan_id;
    fk.inner_vlan_id = key_.inner_vlan_id;
    fk.protocol = protocol;
    fk.ip_version = key_.ip_version;
    return fk;
  }

  void firstFragment(const FragmentTable::Key& fk) {
    ++counters_.fragments_first;
    FragmentTable::Value value{key_.src_port, key_.dst_port, key_.protocol};
    if (fragments_.insert(fk, value, ts_ms_)) ++counters_.fragments_evicted;
  }

  Outcome laterFragment(const FragmentTable::Key& fk, bool last) {
    ++counters_.fragments_later;
    FragmentTable::Value value;
    if (fragments_.find(fk, ts_ms_, value, last)) {
      key_.protocol = value.protocol;
      key_.src_port = value.src_port;
      key_.dst_port = value.dst_port;
    } else {
      ++counters_.fragments_unmatched;  // ports stay 0
    }
    return Outcome::decoded;
  }

  void noteLength(bool from_frame, size_t total, size_t wire_left) {
    if (from_frame) ++counters_.ip_length_from_frame;
    if (total > wire_left) ++counters_.ip_length_beyond_frame;
  }

  const uint8_t* p_;
  size_t caplen_;
  size_t wirelen_;
  uint64_t ts_ms_;
  DecodedPacket& out_;
  FlowKey& key_;
  DecodeCounters& counters_;
  FragmentTable& fragments_;
  // Where the transport header starts and the datagram ends (kTunnels only).
  size_t l4_off_ = 0;
  size_t l4_end_ = 0;
  bool l4_seen_ = false;
};

// Runs `walker` from the frame's first layer.
template <class Walker>
Outcome walkFrame(Walker& walker, Decoder::Link link) {
  switch (link) {
    case Decoder::Link::kEthernet:
      return walker.ethernet(0);
    case Decoder::Link::kLinuxSll:
      return walker.linuxSll(0);
    case Decoder::Link::kLinuxSll2:
      return walker.linuxSll2(0);
    case Decoder::Link::kRaw:
      return walker.ip(0, 0);
    case Decoder::Link::kRawIpv4:
      return walker.ip(0, 4);
    case Decoder::Link::kRawIpv6:
      return walker.ip(0, 6);
    case Decoder::Link::kNull:
      return walker.loopback(0);
    case Decoder::Link::kUnsupported:
    default:
      return Outcome::unsupported_link;
  }
}

}  // namespace

std::string_view tunnelModeName(TunnelMode mode) {
  switch (mode) {
    case TunnelMode::kOuter:
      return "outer";
    case TunnelMode::kInner:
      return "inner";
    case TunnelMode::kBoth:
      return "both";
  }
  return "?";
}

bool parseTunnelMode(std::string_view text, TunnelMode& mode) {
  if (text == "outer") mode = TunnelMode::kOuter;
  else if (text == "inner") mode = TunnelMode::kInner;
  else if (text == "both") mode = TunnelMode::kBoth;
  else return false;
  return true;
}

Decoder::Link Decoder::linkFor(int dlt) {
  switch (dlt) {
    case dlt::kEn10mb:
      return Link::kEthernet;
    case dlt::kLinuxSll:
      return Link::kLinuxSll;
    case dlt::kLinuxSll2:
      return Link::kLinuxSll2;
    case dlt::kRaw:
    case dlt::kLinktypeRaw:
#ifndef __OpenBSD__
    case 14:  // DLT_RAW as numbered on OpenBSD, should such a file be read here
#endif
      return Link::kRaw;
    case dlt::kIpv4:
      return Link::kRawIpv4;
    case dlt::kIpv6:
      return Link::kRawIpv6;
    case dlt::kNull:
    case dlt::kLoop:
      return Link::kNull;
    default:
      return Link::kUnsupported;
  }
}

Decoder::Decoder(int dlt, FragmentTableConfig fragments, TunnelMode tunnels)
    : dlt_(dlt), link_(linkFor(dlt)), tunnels_(tunnels), fragments_(fragments) {
  setCommonPath(true);
}

bool Decoder::supportsLinkType(int dlt) { return linkFor(dlt) != Link::kUnsupported; }

DecodeStatus Decoder::decodeOuter(const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                                  uint64_t ts_ms, DecodedPacket& out) {
  ++counters_.packets;
  out = DecodedPacket{};  // the common path may have written some fields before it gave up
  PacketWalker<false> walker(data, caplen, wirelen, ts_ms, out, counters_, fragments_);
  const auto index = static_cast<size_t>(walkFrame(walker, link_));
  ++(counters_.*kOutcomeCounter[index]);
  return kOutcomeStatus[index];
}

DecodeStatus Decoder::decodeTunnels(const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                                    uint64_t ts_ms, DecodedPacket& out, DecodedPacket* inner) {
  ++counters_.packets;
  out = DecodedPacket{};
  if (inner != nullptr) inner->tunnel_depth = 0;
  PacketWalker<true> walker(data, caplen, wirelen, ts_ms, out, counters_, fragments_);
  const Outcome outcome = walkFrame(walker, link_);
  if (outcome == Outcome::decoded) {
    // The outer packet is accounted whatever happens inside it: an inner
    // packet that does not decode leaves it as it is.
    DecodedPacket levels[kMaxTunnelDepth];
    const DecodedPacket* innermost = walker.descend(levels, 0);
    if (innermost != &out) {
      ++counters_.tunnel_decapsulated;
      if (tunnels_ == TunnelMode::kBoth) {
        *inner = *innermost;
      } else {
        out = *innermost;
      }
    }
  }
  const auto index = static_cast<size_t>(outcome);
  ++(counters_.*kOutcomeCounter[index]);
  return kOutcomeStatus[index];
}

}  // namespace flowfold::probe
