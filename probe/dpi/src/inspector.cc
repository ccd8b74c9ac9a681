#include "flowfold/dpi/inspector.h"

#include <algorithm>
#include <new>

namespace flowfold::dpi {

FlowInspector::FlowInspector() = default;
FlowInspector::~FlowInspector() = default;

FlowKey FlowInspector::conversationKey(const FlowKey& key) {
  FlowKey k = key;
  const int order = std::memcmp(key.src_addr.data(), key.dst_addr.data(), key.src_addr.size());
  if (order > 0 || (order == 0 && key.src_port > key.dst_port)) {
    std::swap(k.src_addr, k.dst_addr);
    std::swap(k.src_port, k.dst_port);
  }
  return k;
}

size_t FlowInspector::findSlot(const FlowKey& key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  const auto hash_lo = static_cast<uint32_t>(hash);
  for (size_t pos = hash & mask;; pos = (pos + 1) & mask) {
    const Slot& s = slots_[pos];
    if (s.id == 0) return pos;
    if (s.hash_lo == hash_lo && conversations_[s.id - 1].key == key) return pos;
  }
}

void FlowInspector::eraseSlot(size_t pos) {
  // Backward shift: later slots of the run move up, so probing never meets a hole.
  const size_t mask = slots_.size() - 1;
  for (size_t next = (pos + 1) & mask; slots_[next].id != 0; next = (next + 1) & mask) {
    const size_t home = slots_[next].hash_lo & mask;
    // Moves up unless its home lies in (pos, next].
    if (((next - home) & mask) >= ((next - pos) & mask)) {
      slots_[pos] = slots_[next];
      pos = next;
    }
  }
  slots_[pos] = Slot{};
}

void FlowInspector::growTable() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id == 0) continue;
    size_t pos = s.hash_lo & mask;
    while (slots_[pos].id != 0) pos = (pos + 1) & mask;
    slots_[pos] = s;
  }
}

uint32_t FlowInspector::link(uint32_t index, const FlowKey& key) {
  if (index >= links_.size()) links_.resize(std::max<size_t>(index + 1, links_.size() * 2), 0);
  if ((live_ + 1) * 2 > slots_.size()) growTable();
  const FlowKey ck = conversationKey(key);
  const uint64_t hash = hashFlowKey(ck);
  const size_t pos = findSlot(ck, hash);
  if (slots_[pos].id == 0) {
    uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      conversations_.emplace_back();
      id = static_cast<uint32_t>(conversations_.size());
    }
    slots_[pos] = Slot{static_cast<uint32_t>(hash), id};
    ++live_;
    Conversation& c = conversations_[id - 1];
    c.key = ck;
    c.label = Label{};
    c.links = 0;
    c.settled = false;
    ++counters_.dpi_conversations;
    try {
      c.flow = std::make_unique<DpiFlow>();
    } catch (const std::bad_alloc&) {
      // nDPI's flow state could not be had: the conversation is exported
      // unlabelled, and the capture goes on.
      ++counters_.dpi_failures;
      c.settled = true;
    }
  }
  const uint32_t id = slots_[pos].id;
  ++conversations_[id - 1].links;
  links_[index] = id;
  return id;
}

void FlowInspector::unlink(uint32_t index) {
  const uint32_t id = links_[index];
  links_[index] = 0;
  Conversation& c = conversations_[id - 1];
  if (--c.links != 0) return;
  eraseSlot(findSlot(c.key, hashFlowKey(c.key)));
  --live_;
  c.flow.reset();
  free_.push_back(id);
}

void FlowInspector::settle(Conversation& c, const Label& label) {
  c.label = label;
  c.flow.reset();
  c.settled = true;
  if (!label.known()) ++counters_.dpi_unknown;
}

void FlowInspector::inspect(FlowCache& cache, const FlowKey& key, const uint8_t* l3, size_t size, uint64_t ts_ms) {
  const auto index = static_cast<uint32_t>(cache.lastFlowTag() >> 1);
  uint32_t id = index < links_.size() ? links_[index] : 0;
  if (id == 0) id = link(index, key);  // the flow's first packet
  Conversation& c = conversations_[id - 1];
  if (c.settled) {  // by the other direction, or nDPI could not start on it
    cache.endInspection();
    return;
  }
  if (l3 == nullptr || size == 0) return;
  ++counters_.dpi_packets;
  if (!engine_.feed(*c.flow, key.protocol, l3, size, ts_ms)) return;
  settle(c, engine_.label(*c.flow));
  ++counters_.dpi_settled;
  cache.endInspection();
}

void FlowInspector::labelRecord(uint32_t index, bool last, FlowRecord* record) {
  if (index >= links_.size() || links_[index] == 0) return;  // never inspected: no label
  Conversation& c = conversations_[links_[index] - 1];
  if (!c.settled && last) {
    // A direction of the conversation ends before nDPI settled: its label
    // is final now (nDPI's verdict so far, or its guess), and the other
    // direction, should it go on, carries the same one.
    const Label l = engine_.label(*c.flow);
    if (l.guessed()) ++counters_.dpi_guessed;
    else ++counters_.dpi_settled;
    settle(c, l);
  }
  if (record) record->app = c.settled ? c.label : engine_.interimLabel(*c.flow);
  if (last) unlink(index);
}

}  // namespace flowfold::dpi
