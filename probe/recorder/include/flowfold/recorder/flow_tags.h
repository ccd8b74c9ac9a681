#pragma once
// Which flow each recorded packet belongs to, as the packet thread's flow
// cache found it, so that the recorder's index need not look every packet's
// key up in a table of its own (the dearest part of indexing).
//
// The packet thread folds packets in the order it reads them, a few frames
// behind; for each it calls tag() with the flow cache's lastFlowTag() (entry
// index * 2 + "a new flow began here"), or kNoFlow for a frame that made no
// flow. The recorder points `ids` at the chunk being filled; the k-th tag of
// a chunk is its k-th frame's. A chunk is indexed with its tags only when it
// got exactly one per frame (the pipeline folds what it holds before a chunk
// is handed over); otherwise its frames are looked up by key as without tags.

#include <cstdint>

namespace flowfold::recorder {

struct FlowTags {
  static constexpr uint64_t kNoFlow = UINT64_MAX;

  uint64_t* ids = nullptr;  // the chunk being filled (null: none)
  uint32_t count = 0;       // tags given for it so far
  uint32_t limit = 0;       // room in `ids`

  void tag(uint64_t flow_tag) {
    if (count < limit) ids[count] = flow_tag;
    ++count;
  }
};

}  // namespace flowfold::recorder
