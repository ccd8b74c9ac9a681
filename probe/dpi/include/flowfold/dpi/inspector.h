#pragma once
// DPI beside one flow cache (`dpi: true`): feeds nDPI the first packets of
// each conversation and labels the cache's records (FlowLabeler).
//
// The cache's flows are one direction each; nDPI wants a conversation (both
// directions in one ndpi_flow_struct). So the inspector keeps conversations,
// keyed by the flow key with its ends in a fixed order, and links each cache
// flow (by entry index) to its conversation. A conversation holds nDPI's
// state only until it settles (engine.h: dpi.h), then just its label, and
// goes when the last flow linked to it leaves the cache. The cache tells
// the packet loop per packet whether the flow is still under inspection (a
// bit in its entry): a settled flow costs a test, no lookup here.
//
// One inspector per flow cache, used by that cache's thread only.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "flowfold/dpi/dpi.h"
#include "flowfold/flowcache/flow_cache.h"

namespace flowfold::dpi {

// X(name, help): the inspector's counters (stats line, /metrics, README).
#define FLOWFOLD_DPI_COUNTERS(X)                                                                       \
  X(dpi_packets, "Packets fed to nDPI (the first packets of each conversation, until it settles).")    \
  X(dpi_conversations, "Conversations (both directions of a flow) inspected by nDPI.")                \
  X(dpi_settled, "Conversations nDPI settled: application named and read, or its packet limit.")       \
  X(dpi_guessed, "Conversations that ended before nDPI settled: labelled with nDPI's guess.")          \
  X(dpi_unknown, "Conversations nDPI settled or guessed without naming any protocol.")                 \
  X(dpi_failures, "Conversations nDPI could not inspect (no memory for its state): exported unlabelled.")

struct DpiCounters {
#define FLOWFOLD_DPI_FIELD(name, help) uint64_t name = 0;
  FLOWFOLD_DPI_COUNTERS(FLOWFOLD_DPI_FIELD)
#undef FLOWFOLD_DPI_FIELD

  DpiCounters& operator+=(const DpiCounters& o) {
#define FLOWFOLD_DPI_ADD(name, help) name += o.name;
    FLOWFOLD_DPI_COUNTERS(FLOWFOLD_DPI_ADD)
#undef FLOWFOLD_DPI_ADD
    return *this;
  }
  /// visitor(std::string_view name, uint64_t value) for every counter.
  template <typename Visitor>
  void forEach(Visitor&& visitor) const {
#define FLOWFOLD_DPI_VISIT(name, help) visitor(std::string_view(#name), name);
    FLOWFOLD_DPI_COUNTERS(FLOWFOLD_DPI_VISIT)
#undef FLOWFOLD_DPI_VISIT
  }
};

class FlowInspector final : public FlowLabeler {
 public:
  /// Throws std::runtime_error when nDPI cannot start.
  FlowInspector();
  ~FlowInspector() override;
  FlowInspector(const FlowInspector&) = delete;
  FlowInspector& operator=(const FlowInspector&) = delete;

  /// The packet the cache's last update() folded, when its flow is still
  /// under inspection (cache.lastFlowInspecting()): `l3` holds `size`
  /// captured bytes from its IP header (nullptr: nothing nDPI can read).
  /// Ends the flow's inspection in the cache once its conversation settles.
  void inspect(FlowCache& cache, const FlowKey& key, const uint8_t* l3, size_t size, uint64_t ts_ms);

  /// FlowLabeler: the record's label; the flow's link goes when it leaves.
  void labelRecord(uint32_t index, bool last, FlowRecord* record) override;

  const DpiCounters& counters() const { return counters_; }
  /// Conversations held now (inspected or labelled, with a flow in the cache).
  size_t conversations() const { return live_; }
  const Engine& engine() const { return engine_; }

 private:
  struct Conversation {
    FlowKey key;                    // ends ordered (conversationKey())
    std::unique_ptr<DpiFlow> flow;  // nDPI's state until settled
    Label label;                    // once settled (or guessed)
    uint32_t links = 0;             // cache flows linked to it
    bool settled = false;
  };
  // The conversations by key: open addressing on the key's hash (linear
  // probing, backward-shift deletion), the key itself in the conversation.
  // A node-based map cost a cache miss per step of its chains: a fifth of the
  // probe's time with DPI on many short flows.
  struct Slot {
    uint32_t hash_lo = 0;
    uint32_t id = 0;  // conversation id; 0 = empty
  };
  /// The slot holding `key` (hash `hash`), or the empty slot where it goes.
  size_t findSlot(const FlowKey& key, uint64_t hash) const;
  void eraseSlot(size_t pos);
  void growTable();

  /// The key both directions share: the lower (address, port) end first.
  static FlowKey conversationKey(const FlowKey& key);
  /// Links the cache flow in entry `index` to its conversation (made if new).
  uint32_t link(uint32_t index, const FlowKey& key);
  void unlink(uint32_t index);
  /// The final label of a conversation that did not settle (counted).
  void settle(Conversation& c, const Label& label);

  Engine engine_;
  DpiCounters counters_;
  std::vector<Conversation> conversations_;  // by id - 1; free ones on free_
  std::vector<uint32_t> free_;
  std::vector<Slot> slots_ = std::vector<Slot>(1024);  // power of two, at most half full
  size_t live_ = 0;                                     // conversations held
  std::vector<uint32_t> links_;  // cache entry index -> conversation id (0: none)
};

}  // namespace flowfold::dpi
