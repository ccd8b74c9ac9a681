#pragma once
// Application labels from nDPI (libndpi 4.2, Debian 12), behind a header
// that does not show nDPI's: the flow cache keeps a DpiFlow per flow while
// it is being inspected, and an Engine per worker thread (an nDPI detection
// module is not shared between threads) feeds it the flow's first packets.
//
// When a flow settles (issue 23): nDPI has named its protocol and has no more
// to extract (ndpi_extra_dissection_possible: a TLS flow settles once its
// server name is read, an HTTP flow once its Host is), or it has seen
// kMaxTcpPackets / kMaxUdpPackets packets (ndpiReader's limits, so that the
// labels agree with nDPI's own tool). A flow that ends before then gets
// nDPI's guess (ndpi_detection_giveup), marked `guessed`.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace flowfold::dpi {

/// ndpiReader's packet limits per flow before it gives up (both directions).
inline constexpr uint32_t kMaxTcpPackets = 80;
inline constexpr uint32_t kMaxUdpPackets = 24;

/// What nDPI says about a flow. Ids are nDPI's (ndpi_protocol_ids.h), which
/// the names below spell; 0 is unknown.
struct Label {
  uint16_t master = 0;    // e.g. TLS (91) in TLS.YouTube
  uint16_t app = 0;       // e.g. YouTube (124); equal to master, or 0, for a plain protocol
  uint16_t category = 0;  // ndpi_protocol_category_t, e.g. 5 Web
  bool guessed = false;   // the flow ended before nDPI settled: its best guess
  /// TLS/QUIC SNI, HTTP Host, DNS query name, ...; empty when none.
  std::array<char, 80> server_name{};

  bool known() const { return master != 0 || app != 0; }
  std::string serverName() const { return std::string(server_name.data()); }
};

/// One flow under inspection (nDPI's per-flow state, ~1 KB, freed with it).
class DpiFlow {
 public:
  DpiFlow();
  ~DpiFlow();
  DpiFlow(const DpiFlow&) = delete;
  DpiFlow& operator=(const DpiFlow&) = delete;

  uint32_t packets() const { return packets_; }
  bool settled() const { return settled_; }

 private:
  friend class Engine;
  ndpi_flow_struct* flow_ = nullptr;
  uint32_t packets_ = 0;
  bool settled_ = false;
  Label label_;
};

class Engine {
 public:
  /// Every protocol nDPI knows enabled. Throws std::runtime_error when nDPI
  /// cannot start (out of memory).
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Feeds one packet of the flow, from its IP header (`l3`, `size` bytes as
  /// captured), either direction, `protocol` its IP protocol. Returns true
  /// once the flow has settled; packets after that are not to be fed.
  bool feed(DpiFlow& flow, uint8_t protocol, const uint8_t* l3, size_t size, uint64_t ts_ms);

  /// The flow's label: the settled one, or (not settled) nDPI's guess now.
  Label label(DpiFlow& flow);

  /// "TLS.YouTube", "DNS", "Unknown": nDPI's name of the label.
  std::string name(const Label& label) const;
  /// "Web", "Streaming", ...: nDPI's name of the category.
  std::string categoryName(const Label& label) const;

  /// The library's version ("4.2.0").
  static std::string version();

 private:
  ndpi_detection_module_struct* module_ = nullptr;
};

}  // namespace flowfold::dpi
