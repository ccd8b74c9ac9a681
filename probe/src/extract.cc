// flowfold extract: reads only what the ring's indexes say can match.
//
//  1. Segments: those of the ring's directories whose time range (from the
//     second of their first packet to the next segment of their stream)
//     meets --from/--to.
//  2. In each, with its index: the flows the filter can match. The filter's
//     program is followed once per kind of packet (filter_anchors.h), with
//     a flow's key fields as tests and every byte no key holds taken both
//     ways: a flow is a candidate when its key passes the tests of a path
//     that accepts, and, when the verdict depends on the key alone, the
//     headers rebuilt from its key match (a filter on payloads, lengths,
//     TTL... makes every flow a candidate that passes those tests: their
//     blocks are read through, and it is said so). A filter that tests an
//     address on every path ('host', 'net') also leaves undecoded the
//     index blocks whose new flows' coded keys hold none of the tested
//     bytes. Non-IP packets (no flow key) are always candidates.
//  3. Only the blocks holding candidates (and the part of the segment no
//     block covers yet) are read; each of their packets is then checked with
//     the filter itself and the time range, as tcpdump -r would.
//  4. The packets, in time order across segments, go out as pcap with
//     nanosecond timestamps.
//
// --flow-id N first looks N up in the ring's flow logs (flow_log.h): its key
// and time span narrow the segments, the blocks (the flows of that key) and
// the packets (decoded again: those whose key, outer or tunnelled, is N's).

#include "flowfold/probe/extract.h"

#include <fcntl.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "flowfold/flowcache/wire.h"
#include "flowfold/log.h"
#include "flowfold/probe/decoder.h"
#include "flowfold/probe/filter_anchors.h"
#include "flowfold/recorder/address_filter.h"
#include "flowfold/recorder/flow_log.h"
#include "flowfold/recorder/file_io.h"
#include "flowfold/recorder/key_coding.h"
#include "flowfold/recorder/pcap_segment.h"
#include "flowfold/recorder/segment_index.h"
#include "flowfold/recorder/segment_ring.h"

namespace flowfold {

namespace {

using namespace recorder;

// Exit statuses of extract (README "Packet recording").
constexpr int kExtractOk = 0;
constexpr int kExtractNoFlow = 1;  // --flow-id: not in the ring, or its packets are gone
constexpr int kExtractUsage = 2;
constexpr int kExtractRing = 3;   // the ring cannot be read
constexpr int kExtractWrite = 4;  // the output cannot be written

struct ExtractError {
  int status;
  std::string message;
};

std::string usage() {
  return "usage: flowfold extract --ring DIR [--ring DIR ...] [--flow-id N[,N...]] [--from TIME] [--to TIME]\n"
         "                        -w FILE|- [BPF filter ...]\n"
         "  N: a flow record's flowId (IPFIX 148, flow_id in text, JSON and MySQL)\n"
         "  TIME: 2026-12-07T03:12:00Z (UTC; seconds and Z optional, fractions allowed) or Unix seconds\n";
}

// "2026-12-07T03:12:05.25Z", "2026-12-07 03:12", "1700000000.5" -> ns since the epoch.
uint64_t parseTime(const std::string& text, const char* option) {
  const auto bad = [&] {
    return ExtractError{kExtractUsage, std::string("extract: ") + option + " '" + text +
                                           "' is not a time: give 2026-12-07T03:12:00Z (UTC) or Unix seconds"};
  };
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    char* end = nullptr;
    const double s = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || s < 0) throw bad();
    return static_cast<uint64_t>(s * 1e9);
  }
  std::tm tm{};
  const char* rest = nullptr;
  for (const char* format : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"}) {
    tm = std::tm{};
    rest = strptime(text.c_str(), format, &tm);
    if (rest) break;
  }
  if (!rest) throw bad();
  uint64_t ns = static_cast<uint64_t>(timegm(&tm)) * 1'000'000'000;
  if (*rest == '.') {
    uint64_t scale = 100'000'000;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) ns += static_cast<uint64_t>(*rest - '0') * scale;
  }
  if (*rest == 'Z') ++rest;
  if (*rest != '\0') throw bad();
  return ns;
}

struct Options {
  std::vector<std::string> rings;
  uint64_t from_ns = 0, to_ns = UINT64_MAX;
  std::string output;
  std::string filter;
  std::vector<uint64_t> flow_ids;
  bool verbose = false;
};

// "42", "42,43" -> the ids; throws on anything else.
void parseFlowIds(const std::string& text, std::vector<uint64_t>& out) {
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    uint64_t id = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || id == 0)
      throw ExtractError{kExtractUsage, "extract: --flow-id '" + text +
                                            "' is not a flow id: give the flowId of a record (a number above 0), "
                                            "or several separated by commas"};
    out.push_back(id);
    if (comma == std::string::npos) return;
    start = comma + 1;
  }
}

Options parseOptions(int argc, char** argv) {
  enum { kRing = 1000, kFrom, kTo, kFlowId };
  const option longs[] = {{"ring", required_argument, nullptr, kRing}, {"from", required_argument, nullptr, kFrom},
                          {"to", required_argument, nullptr, kTo},     {"flow-id", required_argument, nullptr, kFlowId},
                          {"help", no_argument, nullptr, 'h'},         {"verbose", no_argument, nullptr, 'v'},
                          {nullptr, 0, nullptr, 0}};
  Options o;
  optind = 0;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+:w:hv", longs, nullptr)) != -1) {
    switch (c) {
      case kRing: o.rings.push_back(optarg); break;
      case kFrom: o.from_ns = parseTime(optarg, "--from"); break;
      case kTo: o.to_ns = parseTime(optarg, "--to"); break;
      case kFlowId: parseFlowIds(optarg, o.flow_ids); break;
      case 'w': o.output = optarg; break;
      case 'v': o.verbose = true; break;
      case 'h': throw ExtractError{kExtractOk, usage()};
      case ':': throw ExtractError{kExtractUsage, std::string("extract: ") + argv[optind - 1] + " needs a value\n" + usage()};
      default: throw ExtractError{kExtractUsage, std::string("extract: unknown option ") + argv[optind - 1] + "\n" + usage()};
    }
  }
  for (int i = optind; i < argc; ++i) o.filter += (o.filter.empty() ? "" : " ") + std::string(argv[i]);
  if (o.rings.empty()) throw ExtractError{kExtractUsage, "extract: give the ring with --ring DIR\n" + usage()};
  if (o.output.empty())
    throw ExtractError{kExtractUsage, "extract: give the output with -w FILE (or -w - for standard output)\n" + usage()};
  if (o.from_ns > o.to_ns)
    throw ExtractError{kExtractUsage, "extract: --from is after --to: give the earlier time with --from"};
  return o;
}

// ---------------------------------------------------------------- the ring

struct SegmentFile {
  std::string path;
  SegmentName name;
  uint64_t end_s = UINT64_MAX;  // when the next segment of its stream began
};

// The flow logs in the rings' directories.
std::vector<std::string> flowLogPaths(const std::vector<std::string>& rings) {
  std::vector<std::string> paths;
  for (const std::string& dir : rings) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;  // listSegments() says why
    while (const dirent* e = ::readdir(d))
      if (parseFlowLogName(e->d_name)) paths.push_back(dir + "/" + e->d_name);
    ::closedir(d);
  }
  return paths;
}

// The first segment of each run that left a flow log in the rings.
std::set<uint64_t> runStarts(const std::vector<std::string>& rings) {
  std::set<uint64_t> starts;
  for (const std::string& path : flowLogPaths(rings)) {
    uint64_t first = 0;
    std::string error;
    if (readFlowLogRun(path, first, error)) starts.insert(first);
  }
  return starts;
}

std::vector<SegmentFile> listSegments(const std::vector<std::string>& rings) {
  std::vector<SegmentFile> out;
  for (const std::string& dir : rings) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw ExtractError{kExtractRing, "extract: cannot read the ring directory " + dir + ": " + std::strerror(errno)};
    while (const dirent* e = ::readdir(d)) {
      const auto name = parseSegmentName(e->d_name);
      if (!name) continue;
      const std::string path = dir + "/" + e->d_name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back(SegmentFile{path, *name});
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) { return a.name.sequence < b.name.sequence; });
  // A segment ends where the next one of its stream and run begins. Another
  // run (a capture file recorded again, a restart) may begin earlier in
  // time: its segments say nothing of when this one ended.
  const std::set<uint64_t> runs = runStarts(rings);
  const auto runOf = [&](uint64_t sequence) {
    const auto it = runs.upper_bound(sequence);
    return it == runs.begin() ? uint64_t{0} : *std::prev(it);
  };
  std::map<std::pair<uint64_t, std::string>, SegmentFile*> last;
  for (SegmentFile& s : out) {
    const auto key = std::make_pair(runOf(s.name.sequence), s.name.stream);
    if (auto it = last.find(key); it != last.end() && s.name.start_s >= it->second->name.start_s)
      it->second->end_s = s.name.start_s;
    last[key] = &s;
  }
  return out;
}

// ---------------------------------------------------------------- flow ids

struct WantedFlow {
  uint64_t id = 0;
  FlowKey key{};  // ingress_if 0: neither the index nor a decoded frame knows the interface
  uint64_t from_ns = UINT64_MAX, to_ns = 0;
  // The segments of the run that logged it: [first, end) by sequence.
  uint64_t segments_first = 0, segments_end = UINT64_MAX;

  bool inSegment(uint64_t sequence) const { return sequence >= segments_first && sequence < segments_end; }
};

FlowKey withoutInterface(FlowKey k) {
  k.ingress_if = 0;
  return k;
}

std::string joinIds(const std::vector<uint64_t>& ids) {
  std::string out;
  for (uint64_t id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

// Each id's key and time span, from the rings' flow logs (a long flow,
// exported at each active timeout, spans all its records).
std::vector<WantedFlow> lookUpFlowIds(const std::vector<std::string>& rings, const std::vector<uint64_t>& ids) {
  std::map<uint64_t, WantedFlow> found;
  for (uint64_t id : ids) found.emplace(id, WantedFlow{});
  std::set<uint64_t> run_starts;  // each run's first segment
  size_t logs = 0;
  std::vector<uint64_t> sorted_ids(ids.begin(), ids.end());
  std::sort(sorted_ids.begin(), sorted_ids.end());
  const std::vector<std::string> paths = flowLogPaths(rings);
  prefetchFlowLogs(paths);
  for (const std::string& path : paths) {
    FlowLog log;
    std::string error;
    if (!readFlowLog(path, log, error, sorted_ids)) {
      logWarn("extract: flow log %s: %s (skipped)", path.c_str(), error.c_str());
      continue;
    }
    if (!log.damage.empty())
      logWarn("extract: flow log %s: %s; the flows after it cannot be looked up", path.c_str(), log.damage.c_str());
    ++logs;
    run_starts.insert(log.run_first_segment);
    for (const FlowLogEntry& e : log.entries) {
      const auto it = found.find(e.flow_id);
      if (it == found.end()) continue;
      WantedFlow& w = it->second;
      w.id = e.flow_id;
      w.key = withoutInterface(e.key);
      w.from_ns = std::min(w.from_ns, e.first_ms * 1'000'000);
      w.to_ns = std::max(w.to_ns, e.last_ms * 1'000'000 + 999'999);
      w.segments_first = log.run_first_segment;
    }
  }
  if (logs == 0)
    throw ExtractError{kExtractNoFlow, "extract: the ring has no flow log (flowfold-flows-*.flows), so flow ids cannot "
                                       "be looked up: it was recorded by an older flowfold; give --from/--to and a "
                                       "filter on the flow's addresses and ports instead"};
  // A run's segments end where the next run's begin.
  for (auto& [id, w] : found)
    if (const auto next = run_starts.upper_bound(w.segments_first); next != run_starts.end()) w.segments_end = *next;
  std::vector<WantedFlow> out;
  std::vector<uint64_t> missing;
  for (uint64_t id : ids) {
    const WantedFlow& w = found[id];
    if (w.id == 0) missing.push_back(id);
    else if (std::none_of(out.begin(), out.end(), [&](const WantedFlow& o) { return o.id == id; })) out.push_back(w);
  }
  if (!missing.empty()) {
    const std::string text = "flow id" + std::string(missing.size() > 1 ? "s " : " ") + joinIds(missing) +
                             (missing.size() > 1 ? " are" : " is") +
                             " not in the ring's flow logs: no record with it was exported while recording into "
                             "this ring, or its packets (and with them its log entry) have been removed since";
    if (out.empty()) throw ExtractError{kExtractNoFlow, "extract: " + text};
    logWarn("extract: %s", text.c_str());
  }
  return out;
}

// The packets of the wanted flows: each frame is decoded as the recorder's
// index and the flow cache decoded it (outer and tunnelled packets, IP
// fragments joined to their datagram's ports), in order, so its key is the
// one its flow record carries.
class FlowMatcher {
 public:
  FlowMatcher(int dlt, std::vector<WantedFlow> flows)
      : decoder_(dlt, {}, probe::TunnelMode::kBoth), flows_(std::move(flows)) {}

  std::vector<FlowKey> keys() const {
    std::vector<FlowKey> out;
    for (const WantedFlow& f : flows_) out.push_back(f.key);
    return out;
  }

  bool indexedFlow(const FlowKey& k) const {
    const FlowKey key = withoutInterface(k);
    return std::any_of(flows_.begin(), flows_.end(), [&](const WantedFlow& f) { return f.key == key; });
  }

  bool packet(uint64_t ts_ns, const uint8_t* data, uint32_t caplen, uint32_t wirelen) {
    if (!holdsTheAddressesOfOne(data, caplen)) return false;
    probe::DecodedPacket out{}, inner{};
    inner.tunnel_depth = 0;
    if (decoder_.decode(data, caplen, wirelen, ts_ns / 1'000'000, out, &inner) != probe::DecodeStatus::kOk) return false;
    return wanted(out.key, ts_ns) || (inner.tunnel_depth != 0 && wanted(inner.key, ts_ns));
  }

 private:
  // A packet of a wanted flow holds both of its addresses as they are (in
  // its IP header, outer or tunnelled): the other flows' packets of the
  // blocks read, nearly all of them, are set aside without being decoded.
  bool holdsTheAddressesOfOne(const uint8_t* data, uint32_t caplen) const {
    return std::any_of(flows_.begin(), flows_.end(), [&](const WantedFlow& f) {
      if (f.key.ip_version != 4 && f.key.ip_version != 6) return true;
      const size_t n = f.key.ip_version == 6 ? 16 : 4;
      return ::memmem(data, caplen, f.key.src_addr.data(), n) != nullptr &&
             ::memmem(data, caplen, f.key.dst_addr.data(), n) != nullptr;
    });
  }

  bool wanted(const FlowKey& k, uint64_t ts_ns) const {
    const FlowKey key = withoutInterface(k);
    return std::any_of(flows_.begin(), flows_.end(),
                       [&](const WantedFlow& f) { return ts_ns >= f.from_ns && ts_ns <= f.to_ns && f.key == key; });
  }

  probe::Decoder decoder_;
  const std::vector<WantedFlow> flows_;  // those whose run wrote this segment
};

// ---------------------------------------------------------------- narrowing by flow

// Packets rebuilt from a flow key, to run the filter on: the headers
// (Ethernet with its VLAN tags, or raw IP) of a packet of the flow, with no
// payload. One buffer, reused for every flow (a query asks this of every
// flow of its segments: millions); the filter's paths over each kind of
// packet, found once a query.
class FlowPackets {
 public:
  using Needles = std::vector<std::vector<uint8_t>>;

  explicit FlowPackets(int dlt) : dlt_(dlt) {}

  // Whether the filter may match packets of flow `k`: its class's paths
  // (filter_anchors.h, found once per class) say whether k's key fields pass
  // the tests of one that accepts; when the filter's verdict depends on no
  // byte but those the key and the class fix, the rebuilt packet decides it
  // exactly, else the flow may match (its blocks are read, the filter run
  // on each packet; `unkeyed`: a flow of any key may match).
  bool mayMatch(const bpf_program& program, const FlowKey& k, bool& unkeyed) {
    unkeyed = false;
    if (k == FlowKey{} || !rebuildable()) return true;  // packets without a flow key, or not rebuilt: read them
    Shape& shape = shapes_[shapeOf(k)];
    if (!shape.found) follow(program, k, shape);
    if (!shape.paths) {  // more paths than were followed
      unkeyed = true;
      return true;
    }
    if (!probe::passesAPath(*shape.paths, fieldsOf(k))) return false;
    if (shape.paths->unkeyed) {
      // Said when the filter may match flows whatever their keys (not for
      // libpcap's check, in every port test, that a packet is no later fragment).
      unkeyed = std::any_of(shape.paths->accepting.begin(), shape.paths->accepting.end(),
                            [](const std::vector<probe::FieldTest>& tests) { return tests.empty(); });
      return true;
    }
    build(k);
    return matches(program);
  }

  // Byte strings of which every key the filter may match holds one in its
  // coded form (key_coding.h keeps addresses as they are): the leading
  // whole bytes of an address test that each accepting path passes, and the
  // coded all-zero key (packets of no flow, ARP for one, are always asked).
  // nullopt when a path of some class tests no address. Follows every
  // class, once a query.
  const std::optional<Needles>& addressNeedles(const bpf_program& program) {
    if (!needles_found_) {
      needles_found_ = true;
      needles_ = findNeedles(program);
    }
    return needles_;
  }

  // The whole address words each accepting path of every class tests: a
  // path is possible in a segment only if all of its words are there.
  // nullopt when some path tests none (or the paths are not known): then no
  // segment can be passed over by its address filter.
  using PathWords = std::vector<std::vector<uint32_t>>;
  const std::optional<PathWords>& pathWords(const bpf_program& program) {
    if (!path_words_found_) {
      path_words_found_ = true;
      if (addressNeedles(program)) path_words_ = findPathWords();  // every class's paths are known then
    }
    return path_words_;
  }

 private:
  static constexpr uint8_t kClassProtocols[] = {6, 17, 136, 1, 58};  // each with headers of its own; then all others

  std::optional<PathWords> findPathWords() const {
    PathWords out;
    for (const Shape& shape : shapes_) {
      if (!shape.found) continue;
      if (!shape.paths) return std::nullopt;
      for (const std::vector<probe::FieldTest>& path : shape.paths->accepting) {
        std::vector<uint32_t> words;
        for (const probe::FieldTest& t : path) {
          if (t.field >= probe::kSrcPort || t.mask != 0xFFFFFFFF) continue;
          const uint8_t bytes[4] = {static_cast<uint8_t>(t.value >> 24), static_cast<uint8_t>(t.value >> 16),
                                    static_cast<uint8_t>(t.value >> 8), static_cast<uint8_t>(t.value)};
          words.push_back(recorder::addressWord(bytes));
        }
        if (words.empty()) return std::nullopt;
        std::sort(words.begin(), words.end());
        words.erase(std::unique(words.begin(), words.end()), words.end());
        if (std::find(out.begin(), out.end(), words) == out.end()) out.push_back(std::move(words));
      }
    }
    // No rebuilt packet can match (`arp`, `mpls`, `pppoes`): what matches is
    // in the frames of no flow, or laid out otherwise, which the index lists
    // under the all-zero key; the filters are not asked.
    if (out.empty()) return std::nullopt;
    return out;
  }

  std::optional<Needles> findNeedles(const bpf_program& program) {
    if (!rebuildable()) return std::nullopt;
    Needles out(1);
    recorder::putKey(out[0], FlowKey{});
    for (size_t c = 0; c <= std::size(kClassProtocols); ++c)
      for (const uint8_t version : {uint8_t{4}, uint8_t{6}})
        for (const uint16_t outer : {uint16_t{0}, uint16_t{1}})
          for (const uint16_t inner : {uint16_t{0}, uint16_t{1}}) {
            FlowKey k{};
            k.ip_version = version;
            k.protocol = c < std::size(kClassProtocols) ? kClassProtocols[c] : uint8_t{47};
            k.vlan_id = outer;
            k.inner_vlan_id = inner;
            Shape& shape = shapes_[shapeOf(k)];
            if (!shape.found) follow(program, k, shape);
            if (!shape.paths) return std::nullopt;
            const auto tests = probe::addressTests(*shape.paths);
            if (!tests) return std::nullopt;
            for (const probe::FieldTest& t : *tests) {
              std::vector<uint8_t> bytes;
              for (int b = 0; b < 4 && (t.mask >> (24 - 8 * b) & 0xff) == 0xff; ++b)
                bytes.push_back(static_cast<uint8_t>(t.value >> (24 - 8 * b)));
              if (std::find(out.begin(), out.end(), bytes) == out.end()) out.push_back(std::move(bytes));
            }
          }
    return out;
  }


  // A class of flows whose rebuilt packets differ only in their key fields
  // (addresses, ports or ICMP type and code, VLAN ids and, for the other
  // protocols, the protocol): the IP version, the VLAN tags there are, the
  // protocol.
  struct Shape {
    bool found = false;
    std::optional<probe::FilterPaths> paths;  // nullopt: more paths than were followed
  };
  static size_t protocolClass(uint8_t protocol) {
    size_t c = 0;
    while (c < std::size(kClassProtocols) && kClassProtocols[c] != protocol) ++c;
    return c;
  }
  static size_t shapeOf(const FlowKey& k) {
    return ((protocolClass(k.protocol) * 2 + (k.ip_version == 6)) * 2 + (k.vlan_id != 0)) * 2 + (k.inner_vlan_id != 0);
  }
  bool rebuildable() const { return recorder::rebuiltLinkType(static_cast<uint32_t>(dlt_)); }

  // A key's fields as its rebuilt packet holds them (build()).
  static probe::KeyFields fieldsOf(const FlowKey& k) {
    probe::KeyFields f;
    const size_t words = k.ip_version == 6 ? 4 : 1;
    for (size_t w = 0; w < words; ++w) {
      f.value[probe::kSrcWord0 + w] = flowfold::load32(k.src_addr.data() + 4 * w);  // big-endian
      f.value[probe::kDstWord0 + w] = flowfold::load32(k.dst_addr.data() + 4 * w);
    }
    f.value[probe::kSrcPort] = k.src_port;
    f.value[probe::kDstPort] = k.dst_port;
    f.value[probe::kOuterVlan] = k.vlan_id != 0 ? k.vlan_id : k.inner_vlan_id;  // the first tag's
    f.value[probe::kInnerVlan] = k.vlan_id != 0 ? k.inner_vlan_id : 0;
    f.value[probe::kProtocol] = k.protocol;
    return f;
  }

  // The paths of the filter over the packet of k's class: the headers
  // build() writes, with the key fields known per flow, the bytes build()
  // fixes for every packet of the class (tags' and IP's types, the
  // protocol) known, and all else not known (the link addresses, TTL, IP's
  // and TCP's other fields, the payload, up to 64 KiB of it, and its length).
  void follow(const bpf_program& program, const FlowKey& k, Shape& shape) {
    shape.found = true;
    build(k);
    probe::PacketTemplate t;
    t.bytes.assign(buf_, buf_ + length_);
    t.known_length = length_;
    t.bytes.resize(65535, 0);
    t.kind.assign(t.bytes.size(), probe::PacketTemplate::kUnkeyed);
    const auto fixed = [&](size_t at, size_t n) {
      std::fill_n(t.kind.begin() + static_cast<long>(at), n, probe::PacketTemplate::kFixed);
    };
    const auto field = [&](uint8_t f, size_t at, uint8_t n) {
      std::fill_n(t.kind.begin() + static_cast<long>(at), n, probe::PacketTemplate::kKeyed);
      t.field_offset[f] = at;
      t.field_size[f] = n;
    };
    if (dlt_ == DLT_EN10MB) {
      const size_t tags = (k.vlan_id != 0) + (k.inner_vlan_id != 0);
      for (size_t i = 0; i < tags; ++i) {
        fixed(12 + 4 * i, 2);  // the tag's type
        field(static_cast<uint8_t>(i == 0 ? probe::kOuterVlan : probe::kInnerVlan), 14 + 4 * i, 2);
      }
      fixed(12 + 4 * tags, 2);  // the IP version's type
    }
    const bool other = protocolClass(k.protocol) == std::size(kClassProtocols);
    const size_t protocol_at = v6_ ? ip_ + 6 : ip_ + 9;
    if (other) field(probe::kProtocol, protocol_at, 1);
    else fixed(protocol_at, 1);
    const size_t address = v6_ ? ip_ + 8 : ip_ + 12, words = v6_ ? 4 : 1;
    for (size_t w = 0; w < words; ++w) {
      field(static_cast<uint8_t>(probe::kSrcWord0 + w), address + 4 * w, 4);
      field(static_cast<uint8_t>(probe::kDstWord0 + w), address + 4 * words + 4 * w, 4);
    }
    if (!v6_) {
      t.header_length_byte = ip_;
      t.moved_from = ip_ + 20;
    }
    if (protocol_ == 6 || protocol_ == 17 || protocol_ == 136) {
      field(probe::kSrcPort, l4_, 2);
      field(probe::kDstPort, l4_ + 2, 2);
    } else if (protocol_ == 1 || protocol_ == 58) {
      field(probe::kDstPort, l4_, 2);  // type and code
    }
    shape.paths = probe::followFilter(program, t);
  }

  void put16(size_t at, uint16_t v) {
    buf_[at] = static_cast<uint8_t>(v >> 8);
    buf_[at + 1] = static_cast<uint8_t>(v);
  }

  // Writes the headers of `k`, for a packet with no payload (rebuildable()).
  void build(const FlowKey& k) {
    size_t at = 0;
    v6_ = k.ip_version == 6;
    if (dlt_ == DLT_EN10MB) {
      std::memset(buf_, 0, 12);
      at = 12;
      if (k.vlan_id != 0) {
        put16(at, k.inner_vlan_id != 0 ? 0x88a8 : 0x8100);
        put16(at + 2, k.vlan_id);
        at += 4;
      }
      if (k.inner_vlan_id != 0) {
        put16(at, 0x8100);
        put16(at + 2, k.inner_vlan_id);
        at += 4;
      }
      put16(at, v6_ ? 0x86dd : 0x0800);
      at += 2;
    }
    ip_ = at;
    protocol_ = k.protocol;
    if (!v6_) {
      const uint8_t h[12] = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, k.protocol, 0, 0};
      std::memcpy(buf_ + at, h, sizeof h);
      std::memcpy(buf_ + at + 12, k.src_addr.data(), 4);
      std::memcpy(buf_ + at + 16, k.dst_addr.data(), 4);
      l4_ = at + 20;
    } else {
      const uint8_t h[8] = {0x60, 0, 0, 0, 0, 0, k.protocol, 64};
      std::memcpy(buf_ + at, h, sizeof h);
      std::memcpy(buf_ + at + 8, k.src_addr.data(), 16);
      std::memcpy(buf_ + at + 24, k.dst_addr.data(), 16);
      l4_ = at + 40;
    }
    at = l4_;
    if (protocol_ == 6) {
      put16(at, k.src_port), put16(at + 2, k.dst_port);
      std::memset(buf_ + at + 4, 0, 16);
      buf_[at + 12] = 0x50;  // data offset 5
      put16(at + 14, 0xffff);
      at += 20;
    } else if (protocol_ == 17 || protocol_ == 136) {
      put16(at, k.src_port), put16(at + 2, k.dst_port), put16(at + 6, 0);
      at += 8;
    } else if (protocol_ == 1 || protocol_ == 58) {
      buf_[at] = static_cast<uint8_t>(k.dst_port >> 8), buf_[at + 1] = static_cast<uint8_t>(k.dst_port);
      std::memset(buf_ + at + 2, 0, 6);
      at += 8;
    }
    length_ = at;
    const size_t l4_length = length_ - l4_;
    if (!v6_) put16(ip_ + 2, static_cast<uint16_t>(20 + l4_length));
    else put16(ip_ + 4, static_cast<uint16_t>(l4_length));
    if (protocol_ == 17 || protocol_ == 136) put16(l4_ + 4, static_cast<uint16_t>(l4_length));
  }

  bool matches(const bpf_program& program) const {
    pcap_pkthdr h{};
    h.caplen = h.len = static_cast<uint32_t>(length_);
    return pcap_offline_filter(&program, &h, buf_) != 0;
  }

  const int dlt_;
  uint8_t buf_[14 + 8 + 40 + 20] = {};
  bool v6_ = false;
  uint8_t protocol_ = 0;
  size_t ip_ = 0, l4_ = 0, length_ = 0;
  Shape shapes_[(std::size(kClassProtocols) + 1) * 8];
  bool needles_found_ = false;
  std::optional<Needles> needles_;
  bool path_words_found_ = false;
  std::optional<PathWords> path_words_;
};

// ---------------------------------------------------------------- reading

struct Packet {
  uint64_t ts_ns;
  uint64_t order;  // the segment's sequence and the packet's place: a stable tie-break
  std::vector<uint8_t> record;  // pcap record header and data
};

struct Totals {
  uint64_t segments = 0, blocks = 0, blocks_read = 0, bytes_read = 0, scanned_bytes = 0;
  uint64_t segments_passed = 0;  // closed segments their address filter showed to hold none of the addresses
  bool payload_filter = false;
};

// The matching packets of [offset, offset + length) of the segment.
void readRange(int fd, uint64_t offset, uint64_t length, const Options& o, const bpf_program* program,
               FlowMatcher* flows, uint64_t sequence, std::vector<Packet>& out, Totals& totals) {
  std::vector<uint8_t> data(length);
  if (!readAt(fd, data.data(), data.size(), offset)) return;
  totals.bytes_read += length;
  for (size_t pos = 0; pos + kPcapRecordHeaderSize <= data.size();) {
    const uint8_t* h = data.data() + pos;
    const uint32_t caplen = recorder::loadHost32(h + 8);
    if (pos + kPcapRecordHeaderSize + caplen > data.size()) break;
    const uint64_t ts = uint64_t{recorder::loadHost32(h)} * 1'000'000'000 + recorder::loadHost32(h + 4);
    // Every packet read goes through the matcher, in order: a later fragment
    // takes its ports from the first one.
    bool keep = !flows || flows->packet(ts, h + kPcapRecordHeaderSize, caplen, recorder::loadHost32(h + 12));
    keep = keep && ts >= o.from_ns && ts <= o.to_ns;
    if (keep && program) {
      pcap_pkthdr ph{};
      ph.caplen = caplen;
      ph.len = recorder::loadHost32(h + 12);
      keep = pcap_offline_filter(program, &ph, h + kPcapRecordHeaderSize) != 0;
    }
    if (keep) out.push_back(Packet{ts, (sequence << 32) + out.size(), {h, h + kPcapRecordHeaderSize + caplen}});
    pos += kPcapRecordHeaderSize + caplen;
  }
}

// `rebuilt` is the query's (made at its first segment: every segment of a
// query has one link type), so a filter's address tests are found once.
// A segment file open for reading, with its link type.
struct OpenSegment {
  int fd = -1;
  uint64_t size = 0;
  uint32_t dlt = 0;
  ~OpenSegment() {
    if (fd >= 0) ::close(fd);
  }
  /// False (and a warning) when it cannot be read or is not a ring's segment.
  bool open(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      logWarn("extract: cannot read segment %s: %s (skipped)", path.c_str(), std::strerror(errno));
      return false;
    }
    uint8_t header[kPcapFileHeaderSize];
    struct stat st {};
    if (!readAt(fd, header, sizeof header, 0) || recorder::loadHost32(header) != kPcapNanosecondMagic ||
        ::fstat(fd, &st) != 0) {
      logWarn("extract: %s is not a segment of a flowfold ring (skipped)", path.c_str());
      return false;
    }
    size = static_cast<uint64_t>(st.st_size);
    dlt = recorder::loadHost32(header + 20);
    return true;
  }
};

// The query's filter compiled for a link type (none when it has no filter).
class CompiledFilter {
 public:
  CompiledFilter(const std::string& filter, uint32_t dlt) {
    if (filter.empty()) return;
    dead_ = pcap_open_dead_with_tstamp_precision(static_cast<int>(dlt), 262144, PCAP_TSTAMP_PRECISION_NANO);
    if (pcap_compile(dead_, &program_, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      const std::string msg = pcap_geterr(dead_);
      pcap_close(dead_);
      throw ExtractError{kExtractUsage, "extract: bad filter '" + filter + "': " + msg};
    }
  }
  ~CompiledFilter() {
    if (!dead_) return;
    pcap_freecode(&program_);
    pcap_close(dead_);
  }
  CompiledFilter(const CompiledFilter&) = delete;
  CompiledFilter& operator=(const CompiledFilter&) = delete;
  const bpf_program* get() const { return dead_ ? &program_ : nullptr; }

 private:
  pcap_t* dead_ = nullptr;
  bpf_program program_{};
};

// The segment's index read for the query: which blocks of its time hold a
// flow the query may want. False (and `error`) when the index cannot be read.
bool findWantedBlocks(const std::string& index_path, const Options& o, const bpf_program* program,
                      const FlowMatcher* flows, FlowPackets& rebuilt, Totals& totals, SegmentIndex& index,
                      std::string& error) {
  const TimeSpan span{o.from_ns, o.to_ns};  // only the index blocks of the time asked are read
  // Flow ids alone name exact keys: the index is searched without decoding its keys.
  if (flows && !program) return readSegmentIndex(index_path, index, error, std::span<const FlowKey>(flows->keys()), span);
  // Otherwise each flow of the index is asked once, as it is read: whether
  // the wanted flows' keys hold it, whether the filter may match its packets.
  const auto candidate = [&](const FlowKey& key) {
    if (flows && !flows->indexedFlow(key)) return false;
    if (!program) return true;
    bool unkeyed = false;
    const bool may = rebuilt.mayMatch(*program, key, unkeyed);
    if (unkeyed) totals.payload_filter = true;
    return may;
  };
  // A filter that tests addresses on every path: a block whose new flows'
  // coded keys hold none of the bytes it tests has none of its candidates.
  static const std::optional<FlowPackets::Needles> kNoNeedles;
  const std::optional<FlowPackets::Needles>& needles =
      program && !flows ? rebuilt.addressNeedles(*program) : kNoNeedles;
  const auto keys_may_hold = [&](const uint8_t* keys, size_t n) {
    return std::any_of(needles->begin(), needles->end(),
                       [&](const std::vector<uint8_t>& b) { return ::memmem(keys, n, b.data(), b.size()) != nullptr; });
  };
  return readSegmentIndex(index_path, index, error, candidate, span,
                          needles ? std::function<bool(const uint8_t*, size_t)>(keys_may_hold) : nullptr);
}

// Whether a closed segment's address filter (address_filter.h) shows that
// no flow of it can match: each accepting path of the filter tests whole
// address words, and for every path one of its words is not in the
// segment; nor has it packets of no flow (ARP and the like, which the
// filter may match whatever their addresses). `indexed_end` is then what
// its index covers.
bool segmentHoldsNone(const std::string& segment_path, uint64_t segment_size,
                      const std::optional<FlowPackets::PathWords>& paths, uint64_t& indexed_end, Totals& totals) {
  if (!paths) return false;
  std::vector<uint32_t> words;
  for (const std::vector<uint32_t>& p : *paths) words.insert(words.end(), p.begin(), p.end());
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  const auto answer = recorder::askAddressFilter(recorder::addressFilterPathOf(segment_path), words);
  // A filter that says it covers more than the segment holds is not its (a
  // file left over from another segment of the same name): not used.
  if (!answer || answer->non_ip_keys || answer->indexed_end > segment_size) return false;
  const auto held = [&](uint32_t w) {
    return answer->held[static_cast<size_t>(std::lower_bound(words.begin(), words.end(), w) - words.begin())];
  };
  for (const std::vector<uint32_t>& p : *paths)
    if (std::all_of(p.begin(), p.end(), held)) return false;  // this path may be taken here
  indexed_end = answer->indexed_end;
  totals.blocks += answer->index_blocks;
  ++totals.segments_passed;
  return true;
}

void extractSegment(const SegmentFile& s, const Options& o, const std::vector<WantedFlow>& wanted, std::vector<Packet>& out,
                    Totals& totals, std::optional<uint32_t>& linktype, std::optional<FlowPackets>& rebuilt) {
  OpenSegment segment;
  if (!segment.open(s.path)) return;
  if (linktype && *linktype != segment.dlt)
    throw ExtractError{kExtractRing, "extract: the ring holds segments of two link types (" + std::to_string(*linktype) +
                                         " and " + std::to_string(segment.dlt) +
                                         "), which one pcap file cannot: extract each interface's stream apart"};
  linktype = segment.dlt;
  ++totals.segments;
  const CompiledFilter filter(o.filter, segment.dlt);
  const bpf_program* program = filter.get();
  std::optional<FlowMatcher> flows;
  if (!o.flow_ids.empty()) {
    std::vector<WantedFlow> here;
    for (const WantedFlow& w : wanted)
      if (w.inSegment(s.name.sequence)) here.push_back(w);
    flows.emplace(static_cast<int>(segment.dlt), std::move(here));
  }
  if (!rebuilt) rebuilt.emplace(static_cast<int>(segment.dlt));
  const FlowMatcher* matcher = flows ? &*flows : nullptr;
  SegmentIndex index;
  std::string error;
  uint64_t indexed_end = kPcapFileHeaderSize;
  const TimeSpan span{o.from_ns, o.to_ns};
  if (program && !flows && segmentHoldsNone(s.path, segment.size, rebuilt->pathWords(*program), indexed_end, totals)) {
    // Nothing of it to read (but what its index does not cover, below).
  } else if (findWantedBlocks(indexPathOf(s.path), o, program, matcher, *rebuilt, totals, index, error)) {
    for (const IndexBlock& b : index.blocks) {
      ++totals.blocks;
      if (!span.meets(b.first_ts_ns, b.last_ts_ns) || !b.wanted) continue;
      ++totals.blocks_read;
      readRange(segment.fd, b.offset, b.length, o, program, flows ? &*flows : nullptr, s.name.sequence, out, totals);
    }
    indexed_end = std::max<uint64_t>(indexed_end, index.indexed_end);
  } else if (struct stat ist {}; ::lstat(indexPathOf(s.path).c_str(), &ist) == 0) {
    logWarn("extract: index of %s: %s; its segment is read through", s.path.c_str(), error.c_str());
  }
  // What no block covers (no index, or the last second of a segment being written).
  if (indexed_end < segment.size) {
    totals.scanned_bytes += segment.size - indexed_end;
    readRange(segment.fd, indexed_end, segment.size - indexed_end, o, program, flows ? &*flows : nullptr,
              s.name.sequence, out, totals);
  }
}

void writeOutput(const Options& o, const std::vector<Packet>& packets, uint32_t linktype) {
  const bool stdout_out = o.output == "-";
  if (stdout_out && isatty(STDOUT_FILENO))
    throw ExtractError{kExtractUsage, "extract: standard output is a terminal: give -w FILE, or pipe -w - into a program"};
  const int fd = stdout_out ? STDOUT_FILENO
                            : ::open(o.output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0)
    throw ExtractError{kExtractWrite, "extract: cannot create " + o.output + ": " + std::strerror(errno) +
                                          (errno == EEXIST ? " (it exists: give a new file; nothing is overwritten)" : "")};
  std::vector<uint8_t> out(kPcapFileHeaderSize);
  writePcapFileHeader(out.data(), 262144, linktype);
  for (const Packet& p : packets) out.insert(out.end(), p.record.begin(), p.record.end());
  std::string why;
  const bool written = writeAll(fd, out.data(), out.size(), why);
  if (!stdout_out) ::close(fd);
  if (!written)
    throw ExtractError{kExtractWrite, "extract: writing " + (stdout_out ? std::string("standard output") : o.output) +
                                          " failed: " + why};
}

}  // namespace

int runExtract(int argc, char** argv) {
  try {
    Options o = parseOptions(argc, argv);
    std::vector<SegmentFile> segments = listSegments(o.rings);
    if (segments.empty())
      throw ExtractError{kExtractRing, "extract: no segment in " + o.rings[0] + (o.rings.size() > 1 ? " and the others" : "") +
                                           ": is it the recorder's directory (recorder.directory, --record)?"};
    std::vector<WantedFlow> wanted;
    if (!o.flow_ids.empty()) {
      wanted = lookUpFlowIds(o.rings, o.flow_ids);
      // Only the time the flows were seen: the segments and blocks of other times are not read.
      uint64_t from = UINT64_MAX, to = 0;
      for (const WantedFlow& w : wanted) {
        from = std::min(from, w.from_ns);
        to = std::max(to, w.to_ns);
      }
      o.from_ns = std::max(o.from_ns, from);
      o.to_ns = std::min(o.to_ns, to);
    }
    std::vector<Packet> packets;
    Totals totals;
    std::optional<uint32_t> linktype;  // the segments' (DLT_NULL is 0)
    std::optional<FlowPackets> rebuilt;
    for (const SegmentFile& s : segments) {
      if (s.name.start_s * 1'000'000'000 > o.to_ns) continue;
      if (s.end_s != UINT64_MAX && (s.end_s + 1) * 1'000'000'000 < o.from_ns) continue;
      if (!wanted.empty() &&
          std::none_of(wanted.begin(), wanted.end(), [&](const WantedFlow& w) { return w.inSegment(s.name.sequence); }))
        continue;
      extractSegment(s, o, wanted, packets, totals, linktype, rebuilt);
    }
    std::sort(packets.begin(), packets.end(),
              [](const Packet& a, const Packet& b) { return a.ts_ns != b.ts_ns ? a.ts_ns < b.ts_ns : a.order < b.order; });
    if (!wanted.empty() && packets.empty() && o.filter.empty())
      throw ExtractError{kExtractNoFlow, "extract: flow id " + joinIds(o.flow_ids) +
                                             ": no packet of it is in the ring (at the times asked, if --from/--to "
                                             "narrowed them): its segments may have been removed to keep the ring "
                                             "within its bounds; nothing written"};
    writeOutput(o, packets, linktype.value_or(DLT_EN10MB));
    if (totals.payload_filter)
      logInfo("extract: the filter looks at fields no index holds (payloads, lengths, TTL, flags...): the blocks "
              "of every flow it may match were read through");
    if (o.verbose || totals.scanned_bytes != 0 || packets.empty())
      logInfo("extract: %zu packets from %llu segments (%llu of %llu indexed blocks read, %llu bytes read, %llu of them "
              "not indexed; %llu segments passed over by their address filter)",
              packets.size(), static_cast<unsigned long long>(totals.segments),
              static_cast<unsigned long long>(totals.blocks_read), static_cast<unsigned long long>(totals.blocks),
              static_cast<unsigned long long>(totals.bytes_read), static_cast<unsigned long long>(totals.scanned_bytes),
              static_cast<unsigned long long>(totals.segments_passed));
    return kExtractOk;
  } catch (const ExtractError& e) {
    if (e.status == kExtractOk) {
      std::fputs(e.message.c_str(), stdout);
      return kExtractOk;
    }
    logError("%s", e.message.c_str());
    return e.status;
  }
}

}  // namespace flowfold
