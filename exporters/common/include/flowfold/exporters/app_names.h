#pragma once
// The names of DPI labels (flowcache's AppLabel), for exporters that write
// text: "TLS.YouTube", "Web". The ids are nDPI's; the names come from nDPI
// itself, given once at startup by the probe (setAppNames()) so that no
// exporter links nDPI. Before that, or for an id nDPI does not name, a
// label is named by its number.

#include <string>
#include <vector>

#include "flowfold/flowcache/flow_record.h"

namespace flowfold {

/// Sets the names, by id (protocols: nDPI's ndpi_get_proto_name for 0..N-1;
/// categories: ndpi_category_get_name). Call before any exporter runs; the
/// tables are read without a lock afterwards.
void setAppNames(std::vector<std::string> protocols, std::vector<std::string> categories);

/// nDPI's name of a protocol id ("TLS"), or its number.
std::string protocolName(uint16_t id);
/// The label's application as nDPI names it (ndpi_protocol2name): "TLS.YouTube"
/// (master.app), "DNS" (a plain protocol), "Unknown". "" for a flow DPI did
/// not inspect.
std::string applicationName(const AppLabel& label);
/// The label's category ("Web", "Streaming", "Unspecified"); "" uninspected.
std::string categoryName(const AppLabel& label);

/// nDPI's ids of the protocols whose server name an exporter files in a
/// field of its own (ndpi_protocol_ids.h; tests/unit/dpi holds them to it).
namespace ndpi_id {
inline constexpr uint16_t kDns = 5, kMdns = 8, kHttp = 7, kTls = 91, kQuic = 188, kLlmnr = 154, kDtls = 30;
}

/// What the label's server name is, by its protocol (master, else app).
enum class ServerNameKind : uint8_t { kNone, kHttpHost, kTlsSni, kDnsQuery, kOther };
ServerNameKind serverNameKind(const AppLabel& label);

}  // namespace flowfold
