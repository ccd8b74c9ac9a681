// fuzz_ring_files: bytes -> a segment index file, a segment file or a flow
// log in a temporary directory -> readSegmentIndex(), repairSegment() and
// readFlowLog(), which a damaged ring (a crash, a bad disk, a planted file)
// hands anything.
//
// Checked: no crash or read out of bounds (ASan); an index read whole names
// only flows it declared, its blocks lie within what it says it covers, and
// its queries (by filter, with a time span or not) want exactly the blocks
// of the span that the whole reading says hold the key; a
// repaired segment is never longer than before, and when it reports cut
// bytes it ends exactly at its last whole record; a flow log read whole
// codes back to entries that read the same, and is looked up and
// summarized (through its directory, if it has one) without a crash.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <string>
#include <vector>

#include "flowfold/recorder/address_filter.h"
#include "flowfold/recorder/flow_log.h"
#include "flowfold/recorder/pcap_segment.h"
#include "flowfold/recorder/segment_index.h"
#include "fuzz_util.h"

namespace {

std::string scratch(const char* name) {
  static const std::string dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("fuzz-ring-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    // Gone when the fuzzer exits (not after a crash: the input is then kept
    // by libFuzzer, the directory helps read it).
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("fuzz-ring-" + std::to_string(getpid())), ec);
    });
    return d.string();
  }();
  return dir + "/" + name;
}

void writeFile(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

// The queries of an index that reads whole: for one of its keys, with and
// without a time span, the blocks a filter wants are exactly those of the
// span whose flows (as the whole reading found them) include that key, and
// a query by exact key wants no other.
void checkQueries(const std::string& path, const flowfold::recorder::SegmentIndex& index, const uint8_t* data,
                  size_t size) {
  using namespace flowfold::recorder;
  const flowfold::FlowKey key = index.flows[(size > 1 ? data[1] : 0) % index.flows.size()];
  const IndexBlock& around = index.blocks[(size > 2 ? data[2] : 0) % index.blocks.size()];
  for (const TimeSpan span : {TimeSpan{}, TimeSpan{around.first_ts_ns, around.last_ts_ns}}) {
    if (span.from_ns > span.to_ns) continue;
    SegmentIndex by_key, by_filter;
    std::string error;
    FUZZ_CHECK(readSegmentIndex(path, by_key, error, std::span(&key, 1), span));
    FUZZ_CHECK(readSegmentIndex(
        path, by_filter, error, [&](const flowfold::FlowKey& k) { return k == key; }, span));
    FUZZ_CHECK(by_key.blocks.size() == index.blocks.size() && by_filter.blocks.size() == index.blocks.size());
    for (size_t i = 0; i < index.blocks.size(); ++i) {
      const IndexBlock& b = index.blocks[i];
      bool holds = false;
      for (uint32_t f : b.flows) holds = holds || index.flows[f] == key;
      const bool want = holds && span.meets(b.first_ts_ns, b.last_ts_ns);
      // Exact keys are compared coded: a key coded otherwise than flowfold
      // codes it (only in a forged file) is not found, but a block that
      // does not hold the key is never wanted.
      FUZZ_CHECK(!by_key.blocks[i].wanted || want);
      FUZZ_CHECK(by_filter.blocks[i].wanted == want);
    }
  }
}

}  // namespace

// The address filter of an index's keys (address_filter.h) holds every
// address word of every key, read back from its file.
void checkAddressFilter(const flowfold::recorder::SegmentIndex& index) {
  using namespace flowfold::recorder;
  const std::string path = scratch("keys.adf");
  std::filesystem::remove(path);
  std::string error;
  FUZZ_CHECK(AddressFilterBuilder(index.flows).write(path, index.indexed_end, index.blocks.size(), error));
  bool non_ip = false;
  for (size_t i = 0; i < index.flows.size() && i < 64; ++i) {
    const flowfold::FlowKey& k = index.flows[i];
    if (k.ip_version != 4 && k.ip_version != 6) {
      non_ip = true;
      continue;
    }
    for (size_t w = 0; w < (k.ip_version == 4 ? 4u : 16u); w += 4) {
      const uint32_t words[] = {addressWord(k.src_addr.data() + w), addressWord(k.dst_addr.data() + w)};
      for (const uint32_t word : words) {
        const auto answer = askAddressFilter(path, std::span(&word, 1));
        FUZZ_CHECK(answer && answer->may_hold_one && answer->indexed_end == index.indexed_end);
      }
    }
  }
  if (non_ip) FUZZ_CHECK(askAddressFilter(path, {})->non_ip_keys);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfold::recorder;
  // The first byte says how the rest is used: an index with our header, any
  // index, a segment with our pcap header, or a flow log with its header.
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  ++data;
  --size;
  if (mode == 3) {
    // A flow log's header, then the bytes as its blocks.
    std::string bytes(kFlowLogMagic, kFlowLogMagic + sizeof kFlowLogMagic);
    bytes.append(kFlowLogHeaderSize - sizeof kFlowLogMagic, '\0');
    bytes.append(reinterpret_cast<const char*>(data), size);
    const std::string path = scratch("x.flows");
    writeFile(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    FlowLog log;
    std::string error;
    FUZZ_CHECK(readFlowLog(path, log, error));
    // A lookup of some of its ids, and a summary, through the directory of
    // the file if it ends with one: read, whatever the directory says.
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < log.entries.size() && i < 64; i += 16) ids.push_back(log.entries[i].flow_id);
    ids.push_back(size);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    FlowLog some;
    FUZZ_CHECK(readFlowLog(path, some, error, ids));
    FlowLogSummary summary;
    FUZZ_CHECK(summarizeFlowLog(path, summary, error));
    // What was read codes back to the bytes it came from when no block was damaged.
    if (log.damage.empty() && !log.entries.empty()) {
      std::vector<uint8_t> again;
      encodeFlowLogBlock(log.entries, again);
      FlowLog reread;
      writeFile(path, reinterpret_cast<const uint8_t*>(bytes.data()), kFlowLogHeaderSize);
      std::ofstream(path, std::ios::binary | std::ios::app).write(reinterpret_cast<const char*>(again.data()),
                                                                   static_cast<std::streamsize>(again.size()));
      FUZZ_CHECK(readFlowLog(path, reread, error) && reread.damage.empty());
      FUZZ_CHECK(reread.entries.size() == log.entries.size());
      for (size_t i = 0; i < log.entries.size(); ++i) {
        FUZZ_CHECK(reread.entries[i].flow_id == log.entries[i].flow_id);
        FUZZ_CHECK(reread.entries[i].last_ms == log.entries[i].last_ms);
        FUZZ_CHECK(reread.entries[i].key == log.entries[i].key);
      }
    }
    return 0;
  }
  if (mode < 2) {
    std::string bytes;
    if (mode == 0) {
      bytes.assign(kIndexMagic, kIndexMagic + sizeof kIndexMagic);
      bytes.append(8, '\0');
    }
    bytes.append(reinterpret_cast<const char*>(data), size);
    const std::string path = scratch("x.idx");
    writeFile(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    SegmentIndex index;
    std::string error;
    if (readSegmentIndex(path, index, error)) {
      for (const IndexBlock& b : index.blocks) {
        for (uint32_t f : b.flows) FUZZ_CHECK(f < index.flows.size());
        FUZZ_CHECK(b.offset + b.length <= index.indexed_end || b.offset + b.length < b.offset);
      }
      if (!index.flows.empty()) checkQueries(path, index, data, size);
      checkAddressFilter(index);
    } else {
      FUZZ_CHECK(!error.empty());
    }
    // The same bytes as a segment's address filter: asked without a crash.
    const std::string adf = scratch("x.adf");
    writeFile(adf, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    const uint32_t words[] = {0, size > 4 ? addressWord(data + 1) : 1u};
    (void)askAddressFilter(adf, words);
    return 0;
  }
  std::string bytes(kPcapFileHeaderSize, '\0');
  writePcapFileHeader(reinterpret_cast<uint8_t*>(bytes.data()), 65535, 1);
  bytes.append(reinterpret_cast<const char*>(data), size);
  const std::string path = scratch("x.pcap");
  writeFile(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  const RepairResult r = repairSegment(path);
  const auto after = std::filesystem::file_size(path);
  FUZZ_CHECK(after <= bytes.size());
  if (r.valid && r.cut_bytes != 0) {
    FUZZ_CHECK(after == r.kept_bytes);
    FUZZ_CHECK(after + r.cut_bytes == bytes.size());
  }
  if (!r.valid) FUZZ_CHECK(after == bytes.size());  // damage is left as it is
  return 0;
}
