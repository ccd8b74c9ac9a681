// One small function per protocol layer (Zeek style). Every read is preceded
// by a bounds check against the captured length; a layer asks only for the
// bytes it actually reads, so a short snap length loses as little as
// possible. Offsets are size_t so that header lengths added to them cannot
// wrap.

#include "flowfold/probe/decoder.h"

#include <cstring>
#include <limits>

namespace flowfold::probe {
namespace {

// EtherTypes (IEEE registry) and PPP protocol numbers (RFC 1661 / IANA).
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;      // 802.1Q customer tag
constexpr uint16_t kEtherQinq = 0x88a8;      // 802.1ad service tag
constexpr uint16_t kEtherQinqOld = 0x9100;   // pre-standard QinQ
constexpr uint16_t kEtherMplsUnicast = 0x8847;
constexpr uint16_t kEtherMplsMulticast = 0x8848;
constexpr uint16_t kEtherPppoeSession = 0x8864;  // discovery (0x8863) is not IP
constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;

// BSD address families as they appear in DLT_NULL / DLT_LOOP headers.
constexpr uint32_t kAfInet = 2;
constexpr uint32_t kAfInet6Bsd = 24;      // NetBSD, OpenBSD, BSD/OS
constexpr uint32_t kAfInet6FreeBsd = 28;  // FreeBSD, DragonFly
constexpr uint32_t kAfInet6Darwin = 30;   // macOS, iOS

// IP protocol numbers (IANA).
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoDccp = 33;
constexpr uint8_t kProtoIpv6Fragment = 44;
constexpr uint8_t kProtoIpv6HopByHop = 0;
constexpr uint8_t kProtoIpv6Routing = 43;
constexpr uint8_t kProtoAh = 51;
constexpr uint8_t kProtoIcmpv6 = 58;
constexpr uint8_t kProtoIpv6NoNext = 59;
constexpr uint8_t kProtoIpv6DestOpts = 60;
constexpr uint8_t kProtoSctp = 132;
constexpr uint8_t kProtoUdpLite = 136;

constexpr uint8_t kIpv6JumboOption = 0xc2;  // RFC 2675

inline uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

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

// Walks one packet through the layers. Lives on the stack for one decode()
// call; everything is inlined into it.
class PacketWalker {
 public:
  PacketWalker(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms,
               PacketInfo& out, DecodeCounters& counters, FragmentTable& fragments)
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

  // MPLS: walk the label stack to the bottom-of-stack bit, then guess the
  // payload from its first nibble (there is no payload type field).
  Outcome mpls(size_t off) {
    out_.has_mpls = true;
    if (!has(off, 4)) return Outcome::truncated_link;
    uint32_t entry = load32(p_ + off);
    out_.mpls_top_label = entry >> 12;
    off += 4;
    while ((entry & 0x100) == 0) {
      if (!has(off, 4)) return Outcome::truncated_link;
      entry = load32(p_ + off);
      off += 4;
    }
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
    for (int headers = 0;; ++headers) {
      bool extension = next == kProtoIpv6HopByHop || next == kProtoIpv6Routing ||
                       next == kProtoIpv6DestOpts || next == kProtoAh ||
                       next == kProtoIpv6Fragment;
      if (!extension) break;
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

 private:
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
  PacketInfo& out_;
  FlowKey& key_;
  DecodeCounters& counters_;
  FragmentTable& fragments_;
};

}  // namespace

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

Decoder::Decoder(int dlt, FragmentTableConfig fragments)
    : dlt_(dlt), link_(linkFor(dlt)), fragments_(fragments) {}

bool Decoder::supportsLinkType(int dlt) { return linkFor(dlt) != Link::kUnsupported; }

DecodeStatus Decoder::decode(const uint8_t* data, uint32_t caplen, uint32_t wirelen,
                             uint64_t ts_ms, PacketInfo& out) {
  ++counters_.packets;
  out = PacketInfo{};
  PacketWalker walker(data, caplen, wirelen, ts_ms, out, counters_, fragments_);
  Outcome outcome;
  switch (link_) {
    case Link::kEthernet:
      outcome = walker.ethernet(0);
      break;
    case Link::kLinuxSll:
      outcome = walker.linuxSll(0);
      break;
    case Link::kLinuxSll2:
      outcome = walker.linuxSll2(0);
      break;
    case Link::kRaw:
      outcome = walker.ip(0, 0);
      break;
    case Link::kRawIpv4:
      outcome = walker.ip(0, 4);
      break;
    case Link::kRawIpv6:
      outcome = walker.ip(0, 6);
      break;
    case Link::kNull:
      outcome = walker.loopback(0);
      break;
    case Link::kUnsupported:
    default:
      outcome = Outcome::unsupported_link;
      break;
  }
  auto index = static_cast<size_t>(outcome);
  ++(counters_.*kOutcomeCounter[index]);
  return kOutcomeStatus[index];
}

}  // namespace flowfold::probe
