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
  if (auto it = waiting_.find(reverse); it != waiting_.end()) {
    out.push_back(pairRecords(it->second.record, r, knownInitiator(r.key, reverse)));
    rememberInitiator(out.back().initiator.key);
    waiting_.erase(it);
    return;
  }
  // A second record of the same key (the next active-timeout interval, or a
  // new connection on the same ports) before any reverse: the first goes out
  // alone, the new one waits.
  if (auto it = waiting_.find(r.key); it != waiting_.end()) {
    out.push_back(oneSided(it->second.record));
    waiting_.erase(it);
  }
  const uint64_t sequence = next_sequence_++;
  waiting_.emplace(r.key, Waiting{r, now_ms, sequence});
  order_.emplace_back(r.key, sequence);
}

const FlowKey* BiflowPairer::knownInitiator(const FlowKey& a, const FlowKey& b) const {
  if (auto it = initiators_.find(a); it != initiators_.end()) return &*it;
  if (auto it = initiators_.find(b); it != initiators_.end()) return &*it;
  return nullptr;
}

void BiflowPairer::rememberInitiator(const FlowKey& initiator) {
  initiators_.erase(reverseKey(initiator));  // a port reused the other way round (its SYN decided)
  if (!initiators_.insert(initiator).second) return;
  initiator_order_.push_back(initiator);
  if (initiator_order_.size() > max_waiting_) {
    initiators_.erase(initiator_order_.front());
    initiator_order_.pop_front();
  }
}

void BiflowPairer::releaseOldest(uint64_t until_ms, std::vector<Biflow>& out) {
  while (!order_.empty()) {
    const auto& [key, sequence] = order_.front();
    auto it = waiting_.find(key);
    if (it != waiting_.end() && it->second.sequence == sequence) {
      if (it->second.since_ms >= until_ms && waiting_.size() <= max_waiting_) return;
      out.push_back(oneSided(it->second.record));
      waiting_.erase(it);
    }
    order_.pop_front();  // paired, replaced, or just sent
  }
}

void BiflowPairer::flushAll(std::vector<Biflow>& out) {
  for (const auto& [key, sequence] : order_) {
    auto it = waiting_.find(key);
    if (it == waiting_.end() || it->second.sequence != sequence) continue;
    out.push_back(oneSided(it->second.record));
    waiting_.erase(it);
  }
  order_.clear();
}

}  // namespace flowfold::ipfix
