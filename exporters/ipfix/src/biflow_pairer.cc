#include "biflow_pairer.h"

#include <algorithm>

#include "flowfold/flowcache/wire.h"

namespace flowfold::ipfix {

namespace {

constexpr uint8_t kSyn = 0x02;

// ICMP request and reply types, both ways: (request, reply).
constexpr std::pair<uint8_t, uint8_t> kIcmpPairs[] = {{8, 0}, {13, 14}, {15, 16}, {17, 18}};
constexpr std::pair<uint8_t, uint8_t> kIcmpv6Pairs[] = {{128, 129}};

uint8_t replyType(uint8_t type, std::span<const std::pair<uint8_t, uint8_t>> pairs) {
  for (const auto& [request, reply] : pairs) {
    if (type == request) return reply;
    if (type == reply) return request;
  }
  return type;
}

// Whether the SYN rule decides between `a` and `b`: TCP, and only one sent a SYN.
bool synDecides(const FlowRecord& a, const FlowRecord& b) {
  return a.key.protocol == kProtoTcp && ((a.tcp_flags ^ b.tcp_flags) & kSyn) != 0;
}

// Whether `a` (not `b`) started the conversation.
bool initiates(const FlowRecord& a, const FlowRecord& b, const FlowKey* known_initiator) {
  if (a.key.protocol == kProtoTcp) {
    const bool a_syn = a.tcp_flags & kSyn, b_syn = b.tcp_flags & kSyn;
    if (a_syn != b_syn) return a_syn;
  }
  if (known_initiator) return *known_initiator == a.key;
  if (a.first_ms != b.first_ms) return a.first_ms < b.first_ms;
  return a.key.src_port >= b.key.src_port;
}

}  // namespace

FlowKey reverseKey(const FlowKey& key) {
  FlowKey r = key;
  std::swap(r.src_addr, r.dst_addr);
  const bool icmp = (key.ip_version == 4 && key.protocol == kProtoIcmp) ||
                    (key.ip_version == 6 && key.protocol == kProtoIcmpv6);
  if (icmp) {
    // The key holds type*256+code in dst_port (flow_key.h).
    const auto type = static_cast<uint8_t>(key.dst_port >> 8);
    const uint8_t reply = key.ip_version == 4 ? replyType(type, kIcmpPairs) : replyType(type, kIcmpv6Pairs);
    r.dst_port = static_cast<uint16_t>(reply << 8 | (key.dst_port & 0xFF));
  } else {
    std::swap(r.src_port, r.dst_port);
  }
  return r;
}

Biflow pairRecords(const FlowRecord& a, const FlowRecord& b, const FlowKey* known_initiator) {
  Biflow f;
  const bool a_first = initiates(a, b, known_initiator);
  f.initiator = a_first ? a : b;
  f.responder = a_first ? b : a;
  f.paired = true;
  if (a.end_reason == FlowEndReason::kEndOfFlow || b.end_reason == FlowEndReason::kEndOfFlow) {
    f.reason = FlowEndReason::kEndOfFlow;
  } else {
    f.reason = (b.last_ms >= a.last_ms ? b : a).end_reason;
  }
  return f;
}

Biflow oneSided(const FlowRecord& r) {
  Biflow f;
  f.initiator = r;
  f.reason = r.end_reason;
  return f;
}

void BiflowPairer::add(std::span<const FlowRecord> records, uint64_t now_ms, std::vector<Biflow>& out) {
  for (const FlowRecord& r : records) addOne(r, now_ms, out);
  releaseOldest(now_ms >= wait_ms_ ? now_ms - wait_ms_ : 0, out);
}

void BiflowPairer::addOne(const FlowRecord& r, uint64_t now_ms, std::vector<Biflow>& out) {
  const FlowKey reverse = reverseKey(r.key);
  if (reverse == r.key) {  // both directions are one flow of the cache already
    out.push_back(oneSided(r));
    return;
  }
  const uint64_t hash = hashFlowKey(r.key);
  const uint64_t reverse_hash = hashFlowKey(reverse);
  if (const size_t pos = find(reverse, reverse_hash); pos != kNone) {
    const FlowRecord& other = slab_[slots_[pos].index1 - 1].record;
    const int known = synDecides(other, r) ? 0 : knownInitiator(hash, reverse_hash);
    out.push_back(pairRecords(other, r, known == 0 ? nullptr : known == 1 ? &r.key : &other.key));
    eraseAt(pos);
    const bool r_initiates = out.back().initiator.key == r.key;
    rememberInitiator(r_initiates ? hash : reverse_hash, r_initiates ? reverse_hash : hash);
    return;
  }
  // A second record of the same key (the next active-timeout interval, or a
  // new connection on the same ports) before any reverse: the first goes out
  // alone, the new one waits.
  if (const size_t pos = find(r.key, hash); pos != kNone) {
    out.push_back(oneSided(slab_[slots_[pos].index1 - 1].record));
    eraseAt(pos);
  }
  insert(r, hash, now_ms);
}

size_t BiflowPairer::find(const FlowKey& key, uint64_t hash) const {
  if (slots_.empty()) return kNone;
  const size_t mask = slots_.size() - 1;
  const auto hash_lo = static_cast<uint32_t>(hash);
  for (size_t pos = hash & mask;; pos = (pos + 1) & mask) {
    const Slot& s = slots_[pos];
    if (s.index1 == 0) return kNone;
    if (s.hash_lo == hash_lo && slab_[s.index1 - 1].record.key == key) return pos;
  }
}

size_t BiflowPairer::slotOf(uint32_t index) const {
  const size_t mask = slots_.size() - 1;
  const uint64_t hash = hashFlowKey(slab_[index].record.key);
  for (size_t pos = hash & mask;; pos = (pos + 1) & mask)
    if (slots_[pos].index1 == index + 1) return pos;
}

void BiflowPairer::insert(const FlowRecord& r, uint64_t hash, uint64_t now_ms) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
    slab_[index] = Waiting{r, now_ms, next_sequence_};
  } else {
    index = static_cast<uint32_t>(slab_.size());
    slab_.push_back(Waiting{r, now_ms, next_sequence_});
  }
  const size_t mask = slots_.size() - 1;
  size_t pos = hash & mask;
  while (slots_[pos].index1 != 0) pos = (pos + 1) & mask;
  slots_[pos] = Slot{static_cast<uint32_t>(hash), index + 1};
  ++count_;
  order_.emplace_back(index, next_sequence_++);
}

void BiflowPairer::eraseAt(size_t pos) {
  const uint32_t index = slots_[pos].index1 - 1;
  slab_[index].sequence = 0;  // no order_ entry names it any more
  free_.push_back(index);
  --count_;
  // Backward-shift deletion: a later slot of the probe run moves into the
  // hole unless its home lies cyclically in (hole, next].
  const size_t mask = slots_.size() - 1;
  size_t hole = pos;
  for (size_t next = (hole + 1) & mask; slots_[next].index1 != 0; next = (next + 1) & mask) {
    const size_t home = slots_[next].hash_lo & mask;
    if (((next - home) & mask) >= ((next - hole) & mask)) {
      slots_[hole] = slots_[next];
      hole = next;
    }
  }
  slots_[hole] = Slot{0, 0};
}

void BiflowPairer::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(1024, old.size() * 2), Slot{0, 0});
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.index1 == 0) continue;
    // The low 32 bits of the hash choose the home while the table has at
    // most 2^32 slots, which a bounded wait never reaches.
    size_t pos = s.hash_lo & mask;
    while (slots_[pos].index1 != 0) pos = (pos + 1) & mask;
    slots_[pos] = s;
  }
}

namespace {

constexpr size_t kRememberedConversations = size_t{1} << 20;  // 8 MiB, allocated at the first pair

size_t conversationSlot(uint64_t hash_a, uint64_t hash_b) {
  return (hash_a ^ hash_b) & (kRememberedConversations - 1);
}

}  // namespace

int BiflowPairer::knownInitiator(uint64_t hash_a, uint64_t hash_b) const {
  if (initiators_.empty()) return 0;
  const uint64_t initiator = initiators_[conversationSlot(hash_a, hash_b)];
  return initiator == hash_a ? 1 : initiator == hash_b ? 2 : 0;
}

void BiflowPairer::rememberInitiator(uint64_t hash_initiator, uint64_t hash_responder) {
  if (initiators_.empty()) initiators_.assign(kRememberedConversations, 0);
  initiators_[conversationSlot(hash_initiator, hash_responder)] = hash_initiator;
}

void BiflowPairer::releaseOldest(uint64_t until_ms, std::vector<Biflow>& out) {
  while (!order_.empty()) {
    const auto [index, sequence] = order_.front();
    const Waiting& w = slab_[index];
    if (w.sequence == sequence) {
      if (w.since_ms >= until_ms && count_ <= max_waiting_) return;
      out.push_back(oneSided(w.record));
      eraseAt(slotOf(index));
    }
    order_.pop_front();  // paired, replaced, or just sent
  }
}

void BiflowPairer::flushAll(std::vector<Biflow>& out) {
  for (const auto [index, sequence] : order_) {
    if (slab_[index].sequence != sequence) continue;
    out.push_back(oneSided(slab_[index].record));
    eraseAt(slotOf(index));
  }
  order_.clear();
}

}  // namespace flowfold::ipfix
