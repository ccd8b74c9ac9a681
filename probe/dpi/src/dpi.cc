#include "flowfold/dpi/dpi.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern "C" {
#include <ndpi/ndpi_api.h>
}

namespace flowfold::dpi {

namespace {

// The flow's label from what nDPI returned for it (and its server name).
Label labelOf(const ndpi_protocol& p, const ndpi_flow_struct* flow, bool guessed) {
  Label l;
  l.master = p.master_protocol;
  l.app = p.app_protocol;
  l.category = static_cast<uint16_t>(p.category);
  l.flags = static_cast<uint8_t>(Label::kInspected | (guessed ? Label::kGuessed : 0));
  const size_t n = strnlen(flow->host_server_name, sizeof flow->host_server_name);
  std::memcpy(l.server_name.data(), flow->host_server_name, std::min(n, l.server_name.size() - 1));
  return l;
}

}  // namespace

DpiFlow::DpiFlow() {
  // nDPI wants its flow state zeroed; it frees what it hangs on it in
  // ndpi_free_flow_data().
  flow_ = static_cast<ndpi_flow_struct*>(std::calloc(1, ndpi_detection_get_sizeof_ndpi_flow_struct()));
  if (!flow_) throw std::bad_alloc();
}

DpiFlow::~DpiFlow() {
  ndpi_free_flow_data(flow_);
  std::free(flow_);
}

Engine::Engine() {
  module_ = ndpi_init_detection_module(ndpi_no_prefs);
  if (!module_) throw std::runtime_error("nDPI: cannot initialise the detection module (out of memory?)");
  NDPI_PROTOCOL_BITMASK all;
  NDPI_BITMASK_SET_ALL(all);
  ndpi_set_protocol_detection_bitmask2(module_, &all);
  ndpi_finalize_initialization(module_);
}

Engine::~Engine() { ndpi_exit_detection_module(module_); }

bool Engine::feed(DpiFlow& f, uint8_t protocol, const uint8_t* l3, size_t size, uint64_t ts_ms) {
  if (f.settled_) return true;
  ++f.packets_;
  const auto length = static_cast<unsigned short>(std::min<size_t>(size, 65535));
  const ndpi_protocol p = ndpi_detection_process_packet(module_, f.flow_, l3, length, ts_ms);
  // As ndpiReader decides (reader_util.c): an application named and nothing
  // more to read, or enough packets (then nDPI's guess if it named none).
  const uint32_t limit = protocol == 6 ? kMaxTcpPackets : kMaxUdpPackets;
  const bool enough = f.packets_ > limit;
  if (!enough && p.app_protocol == NDPI_PROTOCOL_UNKNOWN) return false;
  if (!enough && ndpi_extra_dissection_possible(module_, f.flow_)) return false;
  if (p.app_protocol != NDPI_PROTOCOL_UNKNOWN) {
    f.label_ = labelOf(p, f.flow_, false);
  } else {
    uint8_t guessed = 0;
    const ndpi_protocol g = ndpi_detection_giveup(module_, f.flow_, 1, &guessed);
    f.label_ = labelOf(g, f.flow_, guessed != 0);
  }
  f.settled_ = true;
  return true;
}

Label Engine::label(DpiFlow& f) {
  if (f.settled_) return f.label_;
  if (f.flow_->detected_protocol_stack[0] != NDPI_PROTOCOL_UNKNOWN) {
    // Named, and only its extra dissection (a DNS answer, a TLS certificate)
    // did not come: nDPI's verdict, not a guess (ndpiReader's "DPI").
    Label l = interimLabel(f);
    l.flags = Label::kInspected;
    return l;
  }
  uint8_t guessed = 0;
  const ndpi_protocol g = ndpi_detection_giveup(module_, f.flow_, 1, &guessed);
  // Not settled: whatever nDPI names now is short of its full inspection.
  return labelOf(g, f.flow_, true);
}

Label Engine::interimLabel(const DpiFlow& f) const {
  if (f.settled_) return f.label_;
  ndpi_protocol p{};
  p.master_protocol = f.flow_->detected_protocol_stack[1];
  p.app_protocol = f.flow_->detected_protocol_stack[0];
  p.category = f.flow_->category;
  return labelOf(p, f.flow_, true);
}

std::string Engine::name(const Label& l) const {
  char buf[64];
  ndpi_protocol p{};
  p.master_protocol = l.master;
  p.app_protocol = l.app;
  p.category = static_cast<ndpi_protocol_category_t>(l.category);
  return ndpi_protocol2name(module_, p, buf, sizeof buf);
}

std::string Engine::categoryName(const Label& l) const {
  const char* name = ndpi_category_get_name(module_, static_cast<ndpi_protocol_category_t>(l.category));
  return name ? name : "";
}

std::string Engine::version() { return ndpi_revision(); }

std::vector<std::string> Engine::protocolNames() const {
  std::vector<std::string> names;
  const u_int n = ndpi_get_num_supported_protocols(module_);
  names.reserve(n);
  for (u_int id = 0; id < n; ++id) {
    const char* name = ndpi_get_proto_name(module_, static_cast<u_int16_t>(id));
    names.emplace_back(name ? name : "");
  }
  return names;
}

std::vector<std::string> Engine::categoryNames() const {
  std::vector<std::string> names;
  for (int id = 0; id < NDPI_PROTOCOL_NUM_CATEGORIES; ++id) {
    const char* name = ndpi_category_get_name(module_, static_cast<ndpi_protocol_category_t>(id));
    names.emplace_back(name ? name : "");
  }
  return names;
}

}  // namespace flowfold::dpi
