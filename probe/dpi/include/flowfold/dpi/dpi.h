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
#include <vector>

#include "flowfold/flowcache/flow_record.h"

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace flowfold::dpi {

/// ndpiReader's packet limits per flow before it gives up (both directions).
inline constexpr uint32_t kMaxTcpPackets = 80;
inline constexpr uint32_t kMaxUdpPackets = 24;

/// What nDPI says about a flow (flowcache's AppLabel: it rides in every
/// FlowRecord). Ids are nDPI's (ndpi_protocol_ids.h); 0 is unknown.
using Label = AppLabel;

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

  /// The flow's label: the settled one, or (not settled) nDPI's guess now
  /// (ndpi_detection_giveup: the flow is not to be fed after it).
  Label label(DpiFlow& flow);
  /// Not settled, and more packets may follow (an interim record): what
  /// nDPI has named so far, without giving up; marked guessed.
  Label interimLabel(const DpiFlow& flow) const;

  /// "TLS.YouTube", "DNS", "Unknown": nDPI's name of the label.
  std::string name(const Label& label) const;
  /// "Web", "Streaming", ...: nDPI's name of the category.
  std::string categoryName(const Label& label) const;

  /// The library's version ("4.2.0").
  static std::string version();

  /// Every protocol name by id ("Unknown", "FTP_CONTROL", ...) and every
  /// category name by id: what exporters name labels with (app_names.h).
  std::vector<std::string> protocolNames() const;
  std::vector<std::string> categoryNames() const;

 private:
  ndpi_detection_module_struct* module_ = nullptr;
};

}  // namespace flowfold::dpi
