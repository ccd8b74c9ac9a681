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
  return f;
}

Biflow oneSided(const FlowRecord& r, bool responds) {
  Biflow f;
  f.initiator = r;
  if (responds) f.direction = BiflowDirection::kReverseInitiator;
  return f;
}

namespace {

constexpr size_t kRememberedConversations = size_t{1} << 20;  // 8 MiB, allocated at the first pair

size_t conversationSlot(uint64_t hash_a, uint64_t hash_b) {
  return (hash_a ^ hash_b) & (kRememberedConversations - 1);
}

}  // namespace

void BiflowPairer::add(std::span<const FlowRecord> records, uint64_t now_ms, std::vector<Biflow>& out) {
  // The lookups land on random slots: their lines are fetched a few records
  // ahead (the flow cache's trick), with both keys' hashes computed first.
  constexpr size_t kAhead = 8;
  hashes_.resize(records.size());
  for (size_t i = 0; i < records.size(); ++i)
    hashes_[i] = {hashFlowKey(records[i].key), hashFlowKey(reverseKey(records[i].key))};
  for (size_t i = 0; i < records.size(); ++i) {
    if (i + kAhead < records.size()) prefetchFor(hashes_[i + kAhead]);
    addOne(records[i], hashes_[i], now_ms, out);
  }
  releaseOldest(now_ms >= wait_ms_ ? now_ms - wait_ms_ : 0, out);
}

void BiflowPairer::prefetchFor(const KeyHashes& h) const {
  if (slots_.empty()) return;
  const size_t mask = slots_.size() - 1;
  __builtin_prefetch(&slots_[h.reverse & mask]);
  __builtin_prefetch(&slots_[h.own & mask]);
  if (!initiators_.empty()) __builtin_prefetch(&initiators_[conversationSlot(h.own, h.reverse)]);
}

void BiflowPairer::addOne(const FlowRecord& r, const KeyHashes& h, uint64_t now_ms, std::vector<Biflow>& out) {
  const FlowKey reverse = reverseKey(r.key);
  if (reverse == r.key) {  // both directions are one flow of the cache already
    out.push_back(oneSided(r));
    return;
  }
  const uint64_t hash = h.own;
  const uint64_t reverse_hash = h.reverse;
  if (const size_t pos = find(reverse, reverse_hash); pos != kNone) {
    const FlowRecord& other = ring_[slots_[pos].index1 - 1].record;
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
    const Waiting& w = ring_[slots_[pos].index1 - 1];
    out.push_back(oneSided(w.record, w.responds));
    eraseAt(pos);
  }
  // Whether the conversation's earlier biflow was started by the other side
  // (its line was fetched ahead with the slots'): said if this goes out alone.
  insert(r, hash, knownInitiator(hash, reverse_hash) == 2, now_ms);
}

size_t BiflowPairer::find(const FlowKey& key, uint64_t hash) const {
  if (slots_.empty()) return kNone;
  const size_t mask = slots_.size() - 1;
  const auto hash_lo = static_cast<uint32_t>(hash);
  for (size_t pos = hash & mask;; pos = (pos + 1) & mask) {
    const Slot& s = slots_[pos];
    if (s.index1 == 0) return kNone;
    if (s.hash_lo == hash_lo && ring_[s.index1 - 1].record.key == key) return pos;
  }
}

size_t BiflowPairer::slotOf(uint32_t index) const {
  const size_t mask = slots_.size() - 1;
  for (size_t pos = ring_[index].hash_lo & mask;; pos = (pos + 1) & mask)
    if (slots_[pos].index1 == index + 1) return pos;
}

void BiflowPairer::insert(const FlowRecord& r, uint64_t hash, bool responds, uint64_t now_ms) {
  if (tail_ - head_ == ring_.size()) growRing();
  while ((count_ + 1) * 2 > slots_.size()) growTable();
  const auto index = static_cast<uint32_t>(tail_++ & (ring_.size() - 1));
  ring_[index] = Waiting{r, now_ms, static_cast<uint32_t>(hash), true, responds};
  placeSlot(static_cast<uint32_t>(hash), index);
  ++count_;
}

void BiflowPairer::placeSlot(uint32_t hash_lo, uint32_t index) {
  const size_t mask = slots_.size() - 1;
  size_t pos = hash_lo & mask;
  while (slots_[pos].index1 != 0) pos = (pos + 1) & mask;
  slots_[pos] = Slot{hash_lo, index + 1};
}

void BiflowPairer::eraseAt(size_t pos) {
  ring_[slots_[pos].index1 - 1].alive = false;
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

void BiflowPairer::growRing() {
  const size_t size = ring_.empty() ? initial_size_ : count_ * 2 > ring_.size() ? ring_.size() * 2 : ring_.size();
  std::vector<Waiting> ring(size);
  size_t n = 0;
  for (uint64_t p = head_; p != tail_; ++p) {
    const Waiting& w = ring_[p & (ring_.size() - 1)];
    if (w.alive) ring[n++] = w;
  }
  ring_ = std::move(ring);
  head_ = 0;
  tail_ = n;
  std::fill(slots_.begin(), slots_.end(), Slot{0, 0});
  for (uint32_t i = 0; i < n; ++i) placeSlot(ring_[i].hash_lo, i);
}

void BiflowPairer::growTable() {
  // The low 32 bits of the hash choose the home while the table has at most
  // 2^32 slots, which a bounded wait never reaches.
  slots_.assign(std::max(initial_size_, slots_.size() * 2), Slot{0, 0});
  for (uint64_t p = head_; p != tail_; ++p) {
    const auto index = static_cast<uint32_t>(p & (ring_.size() - 1));
    if (ring_[index].alive) placeSlot(ring_[index].hash_lo, index);
  }
}


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
  for (; head_ != tail_; ++head_) {
    const auto index = static_cast<uint32_t>(head_ & (ring_.size() - 1));
    const Waiting& w = ring_[index];
    if (!w.alive) continue;  // paired or replaced
    if (w.since_ms >= until_ms && count_ <= max_waiting_) return;
    out.push_back(oneSided(w.record, w.responds));
    eraseAt(slotOf(index));
  }
}

void BiflowPairer::flushAll(std::vector<Biflow>& out) {
  for (; head_ != tail_; ++head_) {
    const auto index = static_cast<uint32_t>(head_ & (ring_.size() - 1));
    if (!ring_[index].alive) continue;
    out.push_back(oneSided(ring_[index].record, ring_[index].responds));
    eraseAt(slotOf(index));
  }
}

}  // namespace flowfold::ipfix
