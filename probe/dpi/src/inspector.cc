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

uint32_t FlowInspector::link(uint32_t index, const FlowKey& key) {
  if (index >= links_.size()) links_.resize(std::max<size_t>(index + 1, links_.size() * 2), 0);
  const FlowKey ck = conversationKey(key);
  auto [it, inserted] = by_key_.try_emplace(ck, 0);
  if (inserted) {
    uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      conversations_.emplace_back();
      id = static_cast<uint32_t>(conversations_.size());
    }
    it->second = id;
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
  ++conversations_[it->second - 1].links;
  links_[index] = it->second;
  return it->second;
}

void FlowInspector::unlink(uint32_t index) {
  const uint32_t id = links_[index];
  links_[index] = 0;
  Conversation& c = conversations_[id - 1];
  if (--c.links != 0) return;
  by_key_.erase(c.key);
  c.flow.reset();
  free_.push_back(id);
}

void FlowInspector::settleWithGuess(Conversation& c) {
  c.label = engine_.label(*c.flow);
  c.flow.reset();
  c.settled = true;
  ++counters_.dpi_guessed;
  if (!c.label.known()) ++counters_.dpi_unknown;
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
  c.label = engine_.label(*c.flow);
  c.flow.reset();
  c.settled = true;
  ++counters_.dpi_settled;
  if (!c.label.known()) ++counters_.dpi_unknown;
  cache.endInspection();
}

void FlowInspector::labelRecord(uint32_t index, bool last, FlowRecord* record) {
  if (index >= links_.size() || links_[index] == 0) return;  // never inspected: no label
  Conversation& c = conversations_[links_[index] - 1];
  if (!c.settled && last && c.links == 1) {
    settleWithGuess(c);  // the conversation ends here: nDPI's best guess
  }
  if (record) record->app = c.settled ? c.label : engine_.interimLabel(*c.flow);
  if (last) unlink(index);
}

}  // namespace flowfold::dpi
