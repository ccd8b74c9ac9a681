// fuzz_filter_paths: bytes -> a BPF program (kept when libpcap's
// bpf_validate() accepts it) and packets of one kind (Ethernet, an optional
// VLAN tag, IPv4 or IPv6, UDP, TCP, ICMP or another protocol) -> followFilter().
//
// Checked, against libpcap's bpf_filter() on each packet: a packet the
// program accepts has key fields that pass the tests of an accepting path,
// and addresses that pass one of addressTests() when there are such;
// and when the paths say the verdict depends on nothing but the key, the
// packet with every other byte as the template has them (and no payload)
// gets the same verdict. That is what `flowfold extract` relies on not to
// miss a packet (probe/filter_anchors.h).

#include <pcap/pcap.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "flowfold/probe/filter_anchors.h"
#include "fuzz_util.h"

namespace {

using flowfold::probe::FilterPaths;
using flowfold::probe::KeyFields;
using flowfold::probe::PacketTemplate;

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint32_t u32() { return uint32_t{byte()} << 24 | uint32_t{byte()} << 16 | uint32_t{byte()} << 8 | byte(); }
};

// The packet of a kind with its fields marked as flowfold's extract marks them.
struct Kind {
  bool v6, vlan;
  uint8_t protocol;
  PacketTemplate t;
  size_t ip = 0, l4 = 0;

  Kind(bool v6_, bool vlan_, uint8_t protocol_) : v6(v6_), vlan(vlan_), protocol(protocol_) {
    std::vector<uint8_t>& p = t.bytes;
    p.assign(12, 0);
    std::vector<size_t> fixed;
    const auto put16 = [&](uint16_t v) {
      p.push_back(static_cast<uint8_t>(v >> 8));
      p.push_back(static_cast<uint8_t>(v));
    };
    if (vlan) {
      fixed.insert(fixed.end(), {p.size(), p.size() + 1});
      put16(0x8100);
      put16(0);
    }
    fixed.insert(fixed.end(), {p.size(), p.size() + 1});
    put16(v6 ? 0x86dd : 0x0800);
    ip = p.size();
    if (!v6) {
      const uint8_t h[12] = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0};
      p.insert(p.end(), h, h + 12);
    } else {
      const uint8_t h[8] = {0x60, 0, 0, 0, 0, 0, protocol, 64};
      p.insert(p.end(), h, h + 8);
    }
    const size_t address = p.size(), length = v6 ? 16 : 4;
    p.resize(p.size() + 2 * length, 0);
    l4 = p.size();
    const size_t l4_len = protocol == 6 ? 20 : (protocol == 17 || protocol == 1 || protocol == 58) ? 8 : 0;
    p.resize(p.size() + l4_len, 0);
    if (protocol == 6) p[l4 + 12] = 0x50;
    t.known_length = p.size();
    p.resize(2048, 0);
    t.kind.assign(p.size(), PacketTemplate::kUnkeyed);
    for (size_t f : fixed) t.kind[f] = PacketTemplate::kFixed;
    const auto field = [&](uint8_t f, size_t at, uint8_t n) {
      for (size_t i = 0; i < n; ++i) t.kind[at + i] = PacketTemplate::kKeyed;
      t.field_offset[f] = at;
      t.field_size[f] = n;
    };
    if (vlan) field(flowfold::probe::kOuterVlan, 14, 2);
    const size_t protocol_at = v6 ? ip + 6 : ip + 9;
    if (protocol == 6 || protocol == 17 || protocol == 1 || protocol == 58) t.kind[protocol_at] = PacketTemplate::kFixed;
    else field(flowfold::probe::kProtocol, protocol_at, 1);
    for (size_t w = 0; w < length / 4; ++w) {
      field(static_cast<uint8_t>(flowfold::probe::kSrcWord0 + w), address + 4 * w, 4);
      field(static_cast<uint8_t>(flowfold::probe::kDstWord0 + w), address + length + 4 * w, 4);
    }
    if (protocol == 6 || protocol == 17) {
      field(flowfold::probe::kSrcPort, l4, 2);
      field(flowfold::probe::kDstPort, l4 + 2, 2);
    } else if (protocol == 1 || protocol == 58) {
      field(flowfold::probe::kDstPort, l4, 2);
    }
    if (!v6) {
      t.header_length_byte = ip;
      t.moved_from = ip + 20;
    }
  }

  // A packet of this kind: its key fields and unkeyed bytes from `in` (a
  // field often set to a constant of the program, so tests can pass), its
  // length the headers and up to 300 bytes more; the IPv4 header length
  // stays 5 (the template's transport header place).
  std::vector<uint8_t> packet(Input& in, const std::vector<uint32_t>& constants, KeyFields& f) const {
    std::vector<uint8_t> p(t.bytes.begin(), t.bytes.begin() + static_cast<long>(t.known_length + in.byte() % 4 * 100));
    for (size_t i = 0; i < p.size(); ++i)
      if (t.kind[i] == PacketTemplate::kUnkeyed && i != t.header_length_byte && in.byte() % 2) p[i] = in.byte();
    for (uint8_t k = 0; k < flowfold::probe::kKeyFields; ++k) {
      if (t.field_offset[k] == PacketTemplate::kNone) continue;
      const uint8_t size = t.field_size[k];
      uint32_t v = in.byte() % 2 && !constants.empty() ? constants[in.byte() % constants.size()] : in.u32();
      if (size < 4) v &= (1u << (8 * size)) - 1;
      f.value[k] = v;
      for (uint8_t i = 0; i < size; ++i) p[t.field_offset[k] + i] = static_cast<uint8_t>(v >> (8 * (size - 1 - i)));
    }
    return p;
  }
};

// The instructions libpcap's bpf_filter() runs (it aborts on others, which
// bpf_validate() lets through): what pcap_compile() writes.
bool runnable(uint16_t code) {
  static const uint16_t kCodes[] = {
      BPF_RET | BPF_K, BPF_RET | BPF_A, BPF_LD | BPF_W | BPF_ABS, BPF_LD | BPF_H | BPF_ABS, BPF_LD | BPF_B | BPF_ABS,
      BPF_LD | BPF_W | BPF_IND, BPF_LD | BPF_H | BPF_IND, BPF_LD | BPF_B | BPF_IND, BPF_LD | BPF_W | BPF_LEN,
      BPF_LDX | BPF_W | BPF_LEN, BPF_LDX | BPF_MSH | BPF_B, BPF_LD | BPF_IMM, BPF_LDX | BPF_IMM, BPF_LD | BPF_MEM,
      BPF_LDX | BPF_MEM, BPF_ST, BPF_STX, BPF_JMP | BPF_JA, BPF_MISC | BPF_TAX, BPF_MISC | BPF_TXA,
      BPF_ALU | BPF_NEG};
  for (const uint16_t c : kCodes)
    if (code == c) return true;
  const uint16_t op = BPF_OP(code), cls = BPF_CLASS(code), src = BPF_SRC(code);
  if (cls == BPF_JMP && (op == BPF_JGT || op == BPF_JGE || op == BPF_JEQ || op == BPF_JSET))
    return code == (cls | op | src);
  if (cls == BPF_ALU && op != BPF_NEG && op <= BPF_XOR) return code == (cls | op | src);
  return false;
}

bool accepts(const std::vector<bpf_insn>& prog, const std::vector<uint8_t>& p) {
  return bpf_filter(prog.data(), p.data(), static_cast<u_int>(p.size()), static_cast<u_int>(p.size())) != 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const uint8_t shape = in.byte();
  const uint8_t protocols[] = {6, 17, 1, 47};
  const Kind kind((shape & 1) != 0, (shape & 2) != 0, protocols[(shape >> 2) % 4]);
  const size_t n = 1 + in.byte() % 64;
  std::vector<bpf_insn> prog(n);
  std::vector<uint32_t> constants;
  for (bpf_insn& i : prog) {
    i.code = static_cast<uint16_t>(in.byte() | in.byte() << 8);
    i.jt = in.byte();
    i.jf = in.byte();
    i.k = in.u32();
    constants.push_back(i.k);
  }
  for (const bpf_insn& i : prog)
    if (!runnable(i.code)) return 0;
  if (bpf_validate(prog.data(), static_cast<int>(prog.size())) == 0) return 0;
  bpf_program program{static_cast<u_int>(prog.size()), prog.data()};
  const auto paths = flowfold::probe::followFilter(program, kind.t);
  if (!paths) return 0;
  const auto tests = flowfold::probe::addressTests(*paths);
  for (int i = 0; i < 8 && in.n > 0; ++i) {
    KeyFields f;
    const std::vector<uint8_t> p = kind.packet(in, constants, f);
    const bool verdict = accepts(prog, p);
    if (verdict) FUZZ_CHECK(flowfold::probe::passesAPath(*paths, f));
    if (verdict && tests) {  // its addresses hold the bytes the index is searched for
      bool holds = false;
      for (const auto& t : *tests)
        for (uint8_t w = 0; w < 8; ++w)
          holds = holds || (kind.t.field_offset[w] != PacketTemplate::kNone && (f.value[w] & t.mask) == t.value);
      FUZZ_CHECK(holds);
    }
    if (!paths->unkeyed) {
      // The same key in the template's packet.
      std::vector<uint8_t> canonical(kind.t.bytes.begin(), kind.t.bytes.begin() + static_cast<long>(kind.t.known_length));
      for (uint8_t k = 0; k < flowfold::probe::kKeyFields; ++k)
        if (kind.t.field_offset[k] != PacketTemplate::kNone)
          for (uint8_t b = 0; b < kind.t.field_size[k]; ++b)
            canonical[kind.t.field_offset[k] + b] = p[kind.t.field_offset[k] + b];
      FUZZ_CHECK(accepts(prog, canonical) == verdict);
    }
  }
  return 0;
}
