#include "flowfold/probe/filter_anchors.h"

#include <algorithm>
#include <array>

namespace flowfold::probe {

namespace {

// What a register or scratch word holds on a path: a constant, a key field
// (masked: `v` is the mask), or a value not known here; `unkeyed` when it
// comes from a byte no key holds.
struct Value {
  enum Kind : uint8_t { kConst, kField, kUnknown };
  Kind kind = kUnknown;
  uint8_t field = 0;
  bool unkeyed = false;
  uint32_t v = 0;
  static Value constant(uint32_t c) { return Value{kConst, 0, false, c}; }
  static Value keyField(uint8_t f, uint32_t mask) { return Value{kField, f, false, mask}; }
  static Value unknown(bool unkeyed) { return Value{kUnknown, 0, unkeyed, 0}; }
};

struct Path {
  uint32_t pc = 0;
  Value a = Value::constant(0), x = Value::constant(0);
  std::array<Value, BPF_MEMWORDS> mem{};  // not known until stored
  std::vector<FieldTest> tests;            // passed on the way
};

// Follows a program's paths as libpcap's bpf_filter() runs it (same bounds,
// same results for constants); a branch on a value not known here is
// followed both ways.
class Follower {
 public:
  Follower(const bpf_program& program, const PacketTemplate& packet) : program_(program), packet_(packet) {}

  std::optional<FilterPaths> run() {
    std::vector<Path> pending(1);
    while (!pending.empty()) {
      Path p = std::move(pending.back());
      pending.pop_back();
      for (;;) {
        if (++steps_ > kMaxSteps || p.pc >= program_.bf_len || out_.accepting.size() > kMaxPaths ||
            pending.size() > kMaxPaths)
          return std::nullopt;
        const Step s = step(program_.bf_insns[p.pc], p, pending);
        if (s == Step::kNext) continue;
        if (s == Step::kAccept) {
          std::sort(p.tests.begin(), p.tests.end(), [](const FieldTest& a, const FieldTest& b) {
            return a.field != b.field ? a.field < b.field : a.mask != b.mask ? a.mask < b.mask : a.value < b.value;
          });
          if (std::find(out_.accepting.begin(), out_.accepting.end(), p.tests) == out_.accepting.end())
            out_.accepting.push_back(p.tests);
        }
        break;  // accepted or rejected: this path ends
      }
    }
    return out_;
  }

 private:
  enum class Step { kNext, kAccept, kReject };
  static constexpr uint64_t kMaxSteps = 200'000;
  static constexpr size_t kMaxPaths = 4096;

  Step step(const bpf_insn& in, Path& p, std::vector<Path>& pending) {
    const uint32_t k = in.k;
    switch (in.code) {
      case BPF_RET | BPF_K: return k != 0 ? Step::kAccept : Step::kReject;
      case BPF_RET | BPF_A:
        if (p.a.kind == Value::kConst) return p.a.v != 0 ? Step::kAccept : Step::kReject;
        out_.unkeyed = out_.unkeyed || p.a.unkeyed || p.a.kind == Value::kField;
        return Step::kAccept;
      case BPF_LD | BPF_W | BPF_ABS:
      case BPF_LD | BPF_H | BPF_ABS:
      case BPF_LD | BPF_B | BPF_ABS:
        if (!load(p.a, k, sizeOf(in.code))) return Step::kReject;
        break;
      case BPF_LD | BPF_W | BPF_IND:
      case BPF_LD | BPF_H | BPF_IND:
      case BPF_LD | BPF_B | BPF_IND:
        if (!loadIndirect(p.a, k, sizeOf(in.code), p)) return Step::kReject;
        break;
      case BPF_LD | BPF_W | BPF_LEN: p.a = Value::unknown(true); break;  // a length no index holds
      case BPF_LDX | BPF_W | BPF_LEN: p.x = Value::unknown(true); break;
      case BPF_LDX | BPF_MSH | BPF_B: {
        if (k >= length()) return Step::kReject;
        if (k >= packet_.known_length) out_.unkeyed = true;
        if (k == packet_.header_length_byte) {  // the transport header, wherever options put it
          p.x = Value::constant((packet_.bytes[k] & 0xfu) << 2);
          break;
        }
        const auto kind = packet_.kind[k];
        p.x = kind == PacketTemplate::kFixed ? Value::constant((packet_.bytes[k] & 0xfu) << 2)
                                             : Value::unknown(kind == PacketTemplate::kUnkeyed);
        break;
      }
      case BPF_LD | BPF_IMM: p.a = Value::constant(k); break;
      case BPF_LDX | BPF_IMM: p.x = Value::constant(k); break;
      case BPF_LD | BPF_MEM: p.a = k < BPF_MEMWORDS ? p.mem[k] : Value::unknown(true); break;
      case BPF_LDX | BPF_MEM: p.x = k < BPF_MEMWORDS ? p.mem[k] : Value::unknown(true); break;
      case BPF_ST:
        if (k < BPF_MEMWORDS) p.mem[k] = p.a;
        break;
      case BPF_STX:
        if (k < BPF_MEMWORDS) p.mem[k] = p.x;
        break;
      case BPF_MISC | BPF_TAX: p.x = p.a; break;
      case BPF_MISC | BPF_TXA: p.a = p.x; break;
      case BPF_JMP | BPF_JA:
        // Forward only, within the program: bpf_validate() lets a k that
        // wraps around through, and a path would then loop (and split at
        // each test) until the step bound; such a program is not followed.
        if (k >= program_.bf_len - p.pc - 1) {
          p.pc = UINT32_MAX;
          return Step::kNext;
        }
        p.pc += k;
        break;
      default:
        if (BPF_CLASS(in.code) == BPF_JMP) return jump(in, p, pending);
        if (BPF_CLASS(in.code) == BPF_ALU) return alu(in, p);
        p.pc = UINT32_MAX;  // an instruction libpcap does not run: give up
        return Step::kNext;
    }
    ++p.pc;
    return Step::kNext;
  }

  uint32_t length() const { return static_cast<uint32_t>(packet_.bytes.size()); }
  static uint32_t sizeOf(uint16_t code) { return BPF_SIZE(code) == BPF_W ? 4 : BPF_SIZE(code) == BPF_H ? 2 : 1; }

  // False: past the packet's end, where bpf_filter() rejects the packet.
  // (A real packet may be longer: the payload variants are separate templates.)
  bool load(Value& into, uint32_t k, uint32_t size) {
    if (k > length() || size > length() - k) return false;
    if (uint64_t{k} + size > packet_.known_length) out_.unkeyed = true;  // a shorter packet rejects here
    // At a fixed offset past an IPv4 header, a packet with options has other bytes.
    into = packet_.moved_from != PacketTemplate::kNone && k + size > packet_.moved_from ? Value::unknown(true)
                                                                                        : valueAt(k, size);
    return true;
  }

  bool loadIndirect(Value& into, uint32_t k, uint32_t size, const Path& p) {
    if (p.x.kind != Value::kConst) {
      into = Value::unknown(true);  // somewhere not known here, perhaps past a packet's end
      out_.unkeyed = true;
      return true;
    }
    const uint64_t at = uint64_t{p.x.v} + k;
    if (at > length() || size > length() - at) return false;
    if (at + size > packet_.known_length) out_.unkeyed = true;
    into = valueAt(static_cast<uint32_t>(at), size);
    return true;
  }

  Value valueAt(uint32_t at, uint32_t size) const {
    bool keyed = false, unkeyed = false;
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; ++i) {
      keyed = keyed || packet_.kind[at + i] == PacketTemplate::kKeyed;
      unkeyed = unkeyed || packet_.kind[at + i] == PacketTemplate::kUnkeyed;
      v = v << 8 | packet_.bytes[at + i];
    }
    if (unkeyed) return Value::unknown(true);
    if (!keyed) return Value::constant(v);
    for (uint8_t f = 0; f < kKeyFields; ++f)
      if (packet_.field_offset[f] == at && packet_.field_size[f] == size)
        return Value::keyField(f, size == 4 ? 0xffffffff : (1u << (8 * size)) - 1);
    return Value::unknown(false);  // part of a field: known per flow, not a test here
  }

  Step jump(const bpf_insn& in, Path& p, std::vector<Path>& pending) {
    const bool by_x = BPF_SRC(in.code) == BPF_X;
    const Value b = by_x ? p.x : Value::constant(in.k);
    const uint32_t taken = p.pc + 1 + in.jt, not_taken = p.pc + 1 + in.jf;
    if (p.a.kind == Value::kConst && b.kind == Value::kConst) {
      const uint32_t a = p.a.v, c = b.v;
      bool t = false;
      switch (BPF_OP(in.code)) {
        case BPF_JGT: t = a > c; break;
        case BPF_JGE: t = a >= c; break;
        case BPF_JEQ: t = a == c; break;
        case BPF_JSET: t = (a & c) != 0; break;
        default: p.pc = UINT32_MAX; return Step::kNext;
      }
      p.pc = t ? taken : not_taken;
      return Step::kNext;
    }
    out_.unkeyed = out_.unkeyed || p.a.unkeyed || b.unkeyed;
    // A key field compared for equality with a constant: on the branch
    // where it is equal, the path has passed a test of the flow's key.
    Path equal = p;
    equal.pc = taken;
    if (BPF_OP(in.code) == BPF_JEQ) {
      const Value* field = p.a.kind == Value::kField && b.kind == Value::kConst   ? &p.a
                           : b.kind == Value::kField && p.a.kind == Value::kConst ? &b
                                                                                  : nullptr;
      if (field != nullptr) {
        const uint32_t c = field == &p.a ? b.v : p.a.v;
        if ((c & ~field->v) != 0) {  // bits the mask clears: never equal
          p.pc = not_taken;
          return Step::kNext;
        }
        equal.tests.push_back(FieldTest{field->field, field->v, c});
      }
    }
    pending.push_back(std::move(equal));
    p.pc = not_taken;
    return Step::kNext;
  }

  Step alu(const bpf_insn& in, Path& p) {
    const uint32_t op = BPF_OP(in.code);
    if (op == BPF_NEG) {
      p.a = p.a.kind == Value::kConst ? Value::constant(0u - p.a.v) : Value::unknown(p.a.unkeyed);
      ++p.pc;
      return Step::kNext;
    }
    const Value b = BPF_SRC(in.code) == BPF_X ? p.x : Value::constant(in.k);
    if ((op == BPF_DIV || op == BPF_MOD) && b.kind == Value::kConst && b.v == 0) return Step::kReject;
    if ((op == BPF_LSH || op == BPF_RSH) && BPF_SRC(in.code) == BPF_K && in.k >= 32) {
      // Shifted by a constant of 32 or more: libpcap does it in C (the CPU
      // masks the count); pcap_compile never writes one. Not known here.
      p.a = Value::unknown(p.a.unkeyed);
      ++p.pc;
      return Step::kNext;
    }
    if (p.a.kind == Value::kConst && b.kind == Value::kConst) {
      const uint32_t a = p.a.v, c = b.v;
      uint32_t r = 0;
      switch (op) {
        case BPF_ADD: r = a + c; break;
        case BPF_SUB: r = a - c; break;
        case BPF_MUL: r = a * c; break;
        case BPF_DIV: r = a / c; break;
        case BPF_MOD: r = a % c; break;
        case BPF_AND: r = a & c; break;
        case BPF_OR: r = a | c; break;
        case BPF_XOR: r = a ^ c; break;
        case BPF_LSH: r = c < 32 ? a << c : 0; break;
        case BPF_RSH: r = c < 32 ? a >> c : 0; break;
        default: p.pc = UINT32_MAX; return Step::kNext;
      }
      p.a = Value::constant(r);
    } else if (op == BPF_AND && p.a.kind == Value::kField && b.kind == Value::kConst) {
      p.a.v &= b.v;  // a masked field ('net')
    } else {
      p.a = Value::unknown(p.a.unkeyed || b.unkeyed);
    }
    ++p.pc;
    return Step::kNext;
  }

  const bpf_program& program_;
  const PacketTemplate& packet_;
  FilterPaths out_;
  uint64_t steps_ = 0;
};

bool isAddress(uint8_t field) { return field < kSrcPort; }

// Of two tests of whole bytes of an address, the one fewer flows pass: a
// whole word rather than part of one, and of an IPv6 address its last words
// rather than its first (a network's prefix is shared by many hosts).
bool moreSelective(const FieldTest& t, const FieldTest& than) {
  if ((t.mask == 0xffffffff) != (than.mask == 0xffffffff)) return t.mask == 0xffffffff;
  return t.field % 4 > than.field % 4;
}

}  // namespace

std::optional<FilterPaths> followFilter(const bpf_program& program, const PacketTemplate& packet) {
  if (program.bf_insns == nullptr || program.bf_len == 0 || packet.kind.size() != packet.bytes.size())
    return std::nullopt;
  return Follower(program, packet).run();
}

bool passesAPath(const FilterPaths& paths, const KeyFields& key) {
  return std::any_of(paths.accepting.begin(), paths.accepting.end(), [&](const std::vector<FieldTest>& tests) {
    return std::all_of(tests.begin(), tests.end(),
                       [&](const FieldTest& t) { return (key.value[t.field] & t.mask) == t.value; });
  });
}

std::optional<std::vector<FieldTest>> addressTests(const FilterPaths& paths) {
  // The tests of an address's leading whole bytes; one covers a path when
  // the path passes a test of the same mask and value, of either address
  // (what the index's coded keys are searched for is the value's bytes).
  const auto usable = [](const FieldTest& t) { return isAddress(t.field) && (t.mask >> 24) == 0xff; };
  const auto same = [](const FieldTest& a, const FieldTest& b) { return a.mask == b.mask && a.value == b.value; };
  std::vector<FieldTest> candidates;
  for (const std::vector<FieldTest>& tests : paths.accepting) {
    bool any = false;
    for (const FieldTest& t : tests) {
      if (!usable(t)) continue;
      any = true;
      if (std::none_of(candidates.begin(), candidates.end(), [&](const FieldTest& c) { return same(c, t); }))
        candidates.push_back(t);
    }
    if (!any) return std::nullopt;
  }
  const auto covers = [&](const FieldTest& c, const std::vector<FieldTest>& tests) {
    return std::any_of(tests.begin(), tests.end(), [&](const FieldTest& t) { return usable(t) && same(c, t); });
  };
  // Few tests, each looked for in every block: chosen greedily, each the
  // one that covers the most paths left (of two, the more selective): for
  // 'host A and host B' every path passes both, and A alone is enough.
  std::vector<bool> covered(paths.accepting.size(), false);
  std::vector<FieldTest> out;
  for (size_t left = paths.accepting.size(); left > 0;) {
    const FieldTest* best = nullptr;
    size_t best_count = 0;
    for (const FieldTest& c : candidates) {
      size_t count = 0;
      for (size_t i = 0; i < paths.accepting.size(); ++i) count += !covered[i] && covers(c, paths.accepting[i]);
      if (count > best_count || (count == best_count && count > 0 && moreSelective(c, *best))) {
        best = &c;
        best_count = count;
      }
    }
    for (size_t i = 0; i < paths.accepting.size(); ++i)
      if (!covered[i] && covers(*best, paths.accepting[i])) covered[i] = true, --left;
    out.push_back(*best);
  }
  return out;
}

}  // namespace flowfold::probe
