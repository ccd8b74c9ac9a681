// fuzz_biflow_pairer: bytes -> batches of flow records over a small pool of
// addresses and ports (so that reverse keys meet), ticks of the export clock
// and flushes -> BiflowPairer (biflow_pairer.h) with a tiny ring, table and
// bound, so that growth, compaction and the bound run.
//
// Checked: every record given comes out exactly once, as an initiator or a
// responder; a pair's keys are each other's reverse; a record never waits
// beyond its wait (after add() at now, nothing added before now - wait is
// still waiting) nor beyond the bound; a flush leaves nothing waiting.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <set>
#include <vector>

#include "biflow_pairer.h"
#include "fuzz_util.h"

namespace {

using flowfold::FlowEndReason;
using flowfold::FlowRecord;
namespace ipfix = flowfold::ipfix;

FlowRecord makeRecord(FuzzedDataProvider& in, uint64_t id, uint64_t now_ms) {
  FlowRecord r;
  r.key.ip_version = in.ConsumeBool() ? 6 : 4;
  const uint8_t protocols[] = {6, 17, 1, 58};
  r.key.protocol = protocols[in.ConsumeIntegralInRange<int>(0, 3)];
  r.key.src_addr[0] = in.ConsumeIntegralInRange<uint8_t>(0, 3);
  r.key.dst_addr[0] = in.ConsumeIntegralInRange<uint8_t>(0, 3);
  r.key.src_port = in.ConsumeIntegralInRange<uint16_t>(0, 3);
  r.key.dst_port = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint16_t>(0, 3)
                                    : static_cast<uint16_t>(in.ConsumeIntegralInRange<uint16_t>(0, 130) << 8);
  r.octets = id;  // identifies the record in the output
  r.packets = 1;
  r.first_ms = now_ms - in.ConsumeIntegralInRange<uint64_t>(0, 50);
  r.last_ms = r.first_ms + in.ConsumeIntegralInRange<uint64_t>(0, 50);
  r.tcp_flags = in.ConsumeIntegral<uint8_t>();
  r.end_reason = static_cast<FlowEndReason>(in.ConsumeIntegralInRange<int>(1, 5));
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const uint64_t wait_ms = in.ConsumeIntegralInRange<uint64_t>(0, 100);
  const size_t max_waiting = in.ConsumeIntegralInRange<size_t>(1, 64);
  ipfix::BiflowPairer pairer(wait_ms, max_waiting, size_t{1} << in.ConsumeIntegralInRange<int>(0, 4));
  std::vector<ipfix::Biflow> out;
  std::vector<uint64_t> added_at;  // by id: the export time it was added at
  std::set<uint64_t> emitted;
  uint64_t now_ms = 1'000'000;
  const auto take = [&] {
    for (const ipfix::Biflow& b : out) {
      FUZZ_CHECK(emitted.insert(b.initiator.octets).second);
      if (b.paired) {
        FUZZ_CHECK(emitted.insert(b.responder.octets).second);
        FUZZ_CHECK(b.responder.key == ipfix::reverseKey(b.initiator.key));
        FUZZ_CHECK(b.initiator.key == ipfix::reverseKey(b.responder.key));
      }
    }
    out.clear();
  };
  while (in.remaining_bytes() > 0) {
    const int op = in.ConsumeIntegralInRange<int>(0, 9);
    if (op == 0) {
      pairer.flushAll(out);
      take();
      FUZZ_CHECK_EQ(pairer.waiting(), size_t{0});
      continue;
    }
    now_ms += in.ConsumeIntegralInRange<uint64_t>(0, 40);
    std::vector<FlowRecord> batch;
    const int n = op == 1 ? 0 : in.ConsumeIntegralInRange<int>(1, 40);
    for (int i = 0; i < n; ++i) {
      batch.push_back(makeRecord(in, added_at.size(), now_ms));
      added_at.push_back(now_ms);
    }
    pairer.add(batch, now_ms, out);
    take();
    FUZZ_CHECK(pairer.waiting() <= max_waiting);
    FUZZ_CHECK_EQ(pairer.waiting() + emitted.size(), added_at.size());
    for (uint64_t id = 0; id < added_at.size(); ++id)
      if (added_at[id] + wait_ms < now_ms) FUZZ_CHECK(emitted.count(id) == 1);
  }
  pairer.flushAll(out);
  take();
  FUZZ_CHECK_EQ(emitted.size(), added_at.size());
  return 0;
}
