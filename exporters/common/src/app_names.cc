#include "flowfold/exporters/app_names.h"

namespace flowfold {

namespace {

std::vector<std::string>& protocolTable() {
  static std::vector<std::string> names;
  return names;
}
std::vector<std::string>& categoryTable() {
  static std::vector<std::string> names;
  return names;
}

std::string nameIn(const std::vector<std::string>& table, uint16_t id) {
  if (id < table.size() && !table[id].empty()) return table[id];
  return std::to_string(id);
}

}  // namespace

void setAppNames(std::vector<std::string> protocols, std::vector<std::string> categories) {
  protocolTable() = std::move(protocols);
  categoryTable() = std::move(categories);
}

std::string protocolName(uint16_t id) { return nameIn(protocolTable(), id); }

std::string applicationName(const AppLabel& l) {
  if (!l.inspected()) return "";
  // As ndpi_protocol2name() spells it.
  if (l.master != 0 && l.master != l.app) {
    if (l.app != 0) return protocolName(l.master) + "." + protocolName(l.app);
    return protocolName(l.master);
  }
  return protocolName(l.app);
}

std::string categoryName(const AppLabel& l) {
  if (!l.inspected()) return "";
  return nameIn(categoryTable(), l.category);
}

ServerNameKind serverNameKind(const AppLabel& l) {
  if (l.serverNameLength() == 0) return ServerNameKind::kNone;
  switch (l.master != 0 ? l.master : l.app) {
    case ndpi_id::kHttp: return ServerNameKind::kHttpHost;
    case ndpi_id::kTls:
    case ndpi_id::kQuic:
    case ndpi_id::kDtls: return ServerNameKind::kTlsSni;
    case ndpi_id::kDns:
    case ndpi_id::kMdns:
    case ndpi_id::kLlmnr: return ServerNameKind::kDnsQuery;
    default: return ServerNameKind::kOther;
  }
}

}  // namespace flowfold
