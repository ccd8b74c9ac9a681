#include "flowfold/probe/filter_anchors.h"

#include <array>
#include <cstring>

namespace flowfold::probe {

namespace {

// What a register or scratch word holds on a path: a constant, an address
// word (masked: `v` is the mask), or anything.
struct Value {
  enum Kind : uint8_t { kConst, kWord, kUnknown };
  Kind kind = kUnknown;
  uint8_t word = 0;
  uint32_t v = 0;
  static Value constant(uint32_t c) { return Value{kConst, 0, c}; }
  static Value addressWord(uint8_t w, uint32_t mask) { return Value{kWord, w, mask}; }
};

struct Path {
  uint32_t pc = 0;
  Value a = Value::constant(0), x = Value::constant(0);
  std::array<Value, BPF_MEMWORDS> mem{};  // unknown until stored
  bool tested = false;                     // an address test passed on the way
  AddressTest test;                        // the one kept for the path
};

// Follows a program's paths as libpcap's bpf_filter() runs it (same bounds,
// same results for constants); a load of a byte that varies between flows
// gives an unknown value, except a whole address word.
class Follower {
 public:
  Follower(const bpf_program& program, const PacketTemplate& packet) : program_(program), packet_(packet) {}

  std::optional<std::vector<AddressTest>> run() {
    std::vector<Path> pending(1);
    while (!pending.empty()) {
      Path p = pending.back();
      pending.pop_back();
      for (;;) {
        if (++steps_ > kMaxSteps || p.pc >= program_.bf_len) return std::nullopt;
        const bpf_insn& in = program_.bf_insns[p.pc];
        const Step s = step(in, p, pending);
        if (s == Step::kNext) continue;
        if (s == Step::kAccept) {
          if (!p.tested) return std::nullopt;
          bool known = false;
          for (const AddressTest& t : tests_) known = known || t == p.test;
          if (!known) tests_.push_back(p.test);
        }
        break;  // accepted or rejected: this path ends
      }
    }
    return tests_;
  }

 private:
  enum class Step { kNext, kAccept, kReject };
  static constexpr uint64_t kMaxSteps = 200'000;

  Step step(const bpf_insn& in, Path& p, std::vector<Path>& pending) {
    const uint32_t k = in.k;
    switch (in.code) {
      case BPF_RET | BPF_K: return k != 0 ? Step::kAccept : Step::kReject;
      case BPF_RET | BPF_A:
        return p.a.kind == Value::kConst && p.a.v == 0 ? Step::kReject : Step::kAccept;
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
      case BPF_LD | BPF_W | BPF_LEN: p.a = Value::constant(length()); break;
      case BPF_LDX | BPF_W | BPF_LEN: p.x = Value::constant(length()); break;
      case BPF_LDX | BPF_MSH | BPF_B: {
        if (k >= length()) return Step::kReject;
        p.x = packet_.unknown[k] ? Value{} : Value::constant((packet_.bytes[k] & 0xfu) << 2);
        break;
      }
      case BPF_LD | BPF_IMM: p.a = Value::constant(k); break;
      case BPF_LDX | BPF_IMM: p.x = Value::constant(k); break;
      case BPF_LD | BPF_MEM: p.a = k < BPF_MEMWORDS ? p.mem[k] : Value{}; break;
      case BPF_LDX | BPF_MEM: p.x = k < BPF_MEMWORDS ? p.mem[k] : Value{}; break;
      case BPF_ST:
        if (k < BPF_MEMWORDS) p.mem[k] = p.a;
        break;
      case BPF_STX:
        if (k < BPF_MEMWORDS) p.mem[k] = p.x;
        break;
      case BPF_MISC | BPF_TAX: p.x = p.a; break;
      case BPF_MISC | BPF_TXA: p.a = p.x; break;
      case BPF_JMP | BPF_JA: p.pc += k; break;
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
  bool load(Value& into, uint32_t k, uint32_t size) {
    if (k > length() || size > length() - k) return false;
    into = valueAt(k, size);
    return true;
  }

  bool loadIndirect(Value& into, uint32_t k, uint32_t size, const Path& p) {
    if (p.x.kind != Value::kConst) {
      into = Value{};  // somewhere unknown (or out of bounds: a rejection, which loses nothing)
      return true;
    }
    const uint64_t at = uint64_t{p.x.v} + k;
    if (at > length() || size > length() - at) return false;
    into = valueAt(static_cast<uint32_t>(at), size);
    return true;
  }

  Value valueAt(uint32_t at, uint32_t size) const {
    bool unknown = false;
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; ++i) {
      unknown = unknown || packet_.unknown[at + i];
      v = v << 8 | packet_.bytes[at + i];
    }
    if (!unknown) return Value::constant(v);
    if (size == 4)
      for (uint8_t w = 0; w < 8; ++w)
        if (packet_.word_offset[w] == at) return Value::addressWord(w, 0xffffffff);
    return Value{};
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
    // An address word compared for equality with a constant: on the
    // branch where it is equal, the path has passed an address test.
    Path equal = p;
    equal.pc = taken;
    if (BPF_OP(in.code) == BPF_JEQ) {
      const Value* word = p.a.kind == Value::kWord && b.kind == Value::kConst ? &p.a
                          : b.kind == Value::kWord && p.a.kind == Value::kConst ? &b
                                                                                 : nullptr;
      const uint32_t c = word == &p.a ? b.v : p.a.v;
      if (word != nullptr) {
        if ((c & ~word->v) != 0) {  // bits the mask clears: never equal
          p.pc = not_taken;
          return Step::kNext;
        }
        const AddressTest t{word->word, word->v, c};
        if (!equal.tested || moreSelective(t, equal.test)) {
          equal.test = t;
          equal.tested = true;
        }
      }
    }
    pending.push_back(equal);
    p.pc = not_taken;
    return Step::kNext;
  }

  // A path keeps one of its tests: a whole word rather than part of one,
  // and of an IPv6 address its last words rather than its first (a
  // network's prefix is shared by many hosts).
  static bool moreSelective(const AddressTest& t, const AddressTest& than) {
    if ((t.mask == 0xffffffff) != (than.mask == 0xffffffff)) return t.mask == 0xffffffff;
    return t.mask == 0xffffffff && t.word % 4 > than.word % 4;
  }

  Step alu(const bpf_insn& in, Path& p) {
    const uint32_t op = BPF_OP(in.code);
    if (op == BPF_NEG) {
      p.a = p.a.kind == Value::kConst ? Value::constant(0u - p.a.v) : Value{};
      ++p.pc;
      return Step::kNext;
    }
    const Value b = BPF_SRC(in.code) == BPF_X ? p.x : Value::constant(in.k);
    if ((op == BPF_DIV || op == BPF_MOD) && b.kind == Value::kConst && b.v == 0) return Step::kReject;
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
    } else if (op == BPF_AND && p.a.kind == Value::kWord && b.kind == Value::kConst) {
      p.a.v &= b.v;  // a masked address word ('net')
    } else {
      p.a = Value{};
    }
    ++p.pc;
    return Step::kNext;
  }

  const bpf_program& program_;
  const PacketTemplate& packet_;
  std::vector<AddressTest> tests_;
  uint64_t steps_ = 0;
};

uint32_t wordOf(const uint8_t* address, size_t word) {
  return uint32_t{address[4 * word]} << 24 | uint32_t{address[4 * word + 1]} << 16 |
         uint32_t{address[4 * word + 2]} << 8 | address[4 * word + 3];
}

}  // namespace

std::optional<std::vector<AddressTest>> addressTests(const bpf_program& program, const PacketTemplate& packet) {
  if (program.bf_insns == nullptr || program.bf_len == 0 || packet.unknown.size() != packet.bytes.size())
    return std::nullopt;
  return Follower(program, packet).run();
}

bool passesOne(const std::vector<AddressTest>& tests, const uint8_t* src, const uint8_t* dst, bool v6) {
  for (const AddressTest& t : tests) {
    const bool of_src = t.word < 4;
    const size_t word = t.word % 4;
    if (!v6 && word != 0) continue;
    if ((wordOf(of_src ? src : dst, word) & t.mask) == t.value) return true;
  }
  return false;
}

}  // namespace flowfold::probe
