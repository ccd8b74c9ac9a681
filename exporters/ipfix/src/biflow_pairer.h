#pragma once
// Pairs the two uniflow records of a conversation into one biflow (RFC 5103)
// for an IPFIX exporter with `biflow: true`.
//
// The flow cache keeps one flow per direction and ends each on its own
// timeouts. The two directions of a conversation end close together: their
// last packets (idle timeout, the tcp_end window) or their first packets
// (active timeout) lie a round trip apart. So a record waits here, up to
// `wait_ms` of export time, for the record of its reverse key; the pair goes
// out as one biflow, a record whose reverse never comes goes out alone (a
// one-sided biflow: the reverse fields are 0). Nothing in the cache changes,
// so uniflow exporters of the same run see the same records as without.
//
// Which side is the initiator: the one that sent a SYN when only one did;
// else the initiator of the conversation's earlier biflow, when the pairer
// still remembers it (the next active-timeout interval of a long connection
// has no SYN, and its two sides' first packets are a round trip apart in
// either order); else the one whose first packet came first; at the same
// millisecond (SYN and SYN-ACK on a LAN), the side with the higher source
// port (the client's ephemeral port). A record heard one way only is
// forward; its biflowDirection says whether it is the initiator's (1: its
// conversation's earlier biflow is not remembered as started by the other
// side) or not (2). Each side keeps its own end reason (flowEndReason and
// reverseFlowEndReason).

#include <cstdint>
#include <span>
#include <vector>

#include "flowfold/flowcache/flow_record.h"
#include "ipfix_biflow.h"

namespace flowfold::ipfix {

struct Biflow {
  FlowRecord initiator;  // one-sided: the record, whichever side it is
  FlowRecord responder;  // meaningful when paired
  bool paired = false;
  BiflowDirection direction = BiflowDirection::kInitiator;
};

/// The key of the other direction: addresses and ports swapped; an ICMP echo
/// (or timestamp, information) request's key is its reply's, and back.
FlowKey reverseKey(const FlowKey& key);

/// The biflow of two records of reverse keys (initiator chosen as above);
/// `known_initiator`: the key of the side that initiated earlier, if known.
Biflow pairRecords(const FlowRecord& a, const FlowRecord& b, const FlowKey* known_initiator = nullptr);
/// The biflow of a record heard in one direction only; `responds`: its
/// conversation is known to have been started by the other side.
Biflow oneSided(const FlowRecord& r, bool responds = false);

class BiflowPairer {
 public:
  /// initial_size: of the ring and the table (a power of two; they grow).
  BiflowPairer(uint64_t wait_ms, size_t max_waiting, size_t initial_size = 4096)
      : wait_ms_(wait_ms), max_waiting_(max_waiting), initial_size_(initial_size) {}

  /// Takes a batch of records at export time now_ms: the biflows completed
  /// by it, and those whose wait is over, are appended to `out`.
  void add(std::span<const FlowRecord> records, uint64_t now_ms, std::vector<Biflow>& out);
  /// Every record still waiting goes out alone (end of input, shutdown).
  void flushAll(std::vector<Biflow>& out);

  size_t waiting() const { return count_; }

 private:
  // The waiting records, in arrival order in a ring (so that the oldest,
  // which leave first, are read in sequence) with an open-addressing table of
  // their keys (linear probing, backward-shift deletion): no allocation per
  // record, and a lookup costs one or two cache misses. A record paired
  // early leaves a dead entry behind in the ring, skipped when the head
  // passes it. (std::unordered_map here cost four times the rest of the run
  // on big: bench/PROFILE.md.)
  struct Waiting {
    FlowRecord record;
    uint64_t since_ms;
    uint32_t hash_lo;  // low 32 bits of hashFlowKey(record.key)
    bool alive;        // false: paired or sent (a hole in the ring)
    bool responds;     // the other side initiated the conversation (remembered when it came)
  };
  struct Slot {
    uint32_t hash_lo;  // low 32 bits of the key's hash
    uint32_t index1;   // ring index + 1; 0 = empty
  };
  static constexpr size_t kNone = SIZE_MAX;

  struct KeyHashes {
    uint64_t own, reverse;  // hashFlowKey() of the record's key and of its reverse
  };
  void addOne(const FlowRecord& r, const KeyHashes& h, uint64_t now_ms, std::vector<Biflow>& out);
  void prefetchFor(const KeyHashes& h) const;
  /// Sends alone the oldest waiting records: those waiting since before
  /// `until_ms`, and beyond max_waiting_ the oldest anyway.
  void releaseOldest(uint64_t until_ms, std::vector<Biflow>& out);

  /// The slot of `key` (hash = hashFlowKey(key)); kNone when it is not waiting.
  size_t find(const FlowKey& key, uint64_t hash) const;
  /// The slot holding ring index `index`.
  size_t slotOf(uint32_t index) const;
  void insert(const FlowRecord& r, uint64_t hash, bool responds, uint64_t now_ms);
  /// The record in slot `pos` stops waiting (paired or sent).
  void eraseAt(size_t pos);
  void placeSlot(uint32_t hash_lo, uint32_t index);
  /// A ring with room for one more: the live records moved, in order, to a
  /// new ring (twice as large unless mostly holes), and the table rebuilt.
  void growRing();
  void growTable();

  /// Which of two keys (by their hashes) initiated their conversation
  /// before: 1 the first, 2 the second, 0 not remembered.
  int knownInitiator(uint64_t hash_a, uint64_t hash_b) const;
  void rememberInitiator(uint64_t hash_initiator, uint64_t hash_responder);

  const uint64_t wait_ms_;
  const size_t max_waiting_;
  const size_t initial_size_;
  std::vector<Waiting> ring_;  // a power of two
  uint64_t head_ = 0, tail_ = 0;  // positions (index = position & (size - 1)); [head, tail) in use
  std::vector<Slot> slots_;    // a power of two, at most half full
  size_t count_ = 0;           // records waiting
  std::vector<KeyHashes> hashes_;  // of the batch being added; reused
  // The initiator of each conversation paired before (the hash of its key),
  // for the conversation's later records (the next active-timeout interval,
  // stragglers after the end): direct-mapped by the conversation (the two
  // keys' hashes combined, the same both ways), so a lookup is one cache
  // miss and no allocation; two conversations on one entry forget the older.
  std::vector<uint64_t> initiators_;
};

}  // namespace flowfold::ipfix
