#include "flowfold/probe/exporter_factory.h"

#include <stdexcept>
#include <type_traits>
#include <variant>

#include "flowfold/exporters/ipfix_exporter.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "flowfold/exporters/netflow9_exporter.h"
#include "flowfold/exporters/text_exporter.h"

namespace flowfold {

namespace {

// The exporter's own options, as configured, with the probe's monitored
// networks and its sampling.
std::unique_ptr<Exporter> makeOne(const ExporterConfig& c, const LocalNetworks& local_networks,
                                  const SamplingOptions& sampling, bool applications) {
  return std::visit(
      [&](auto options) -> std::unique_ptr<Exporter> {
        options.local_networks = local_networks;
        if constexpr (requires { options.applications; }) options.applications = applications;
        if constexpr (requires { options.sampling; }) options.sampling = sampling;
        using Options = decltype(options);
        if constexpr (std::is_same_v<Options, IpfixOptions>) return makeIpfixExporter(options);
        else if constexpr (std::is_same_v<Options, NetflowV9Options>) return makeNetflowV9Exporter(options);
        else if constexpr (std::is_same_v<Options, TextOptions>) return makeTextExporter(options);
        else return makeMysqlExporter(options);
      },
      c.options);
}

}  // namespace

std::vector<std::unique_ptr<Exporter>> makeExporters(const std::vector<ExporterConfig>& configs,
                                                     const LocalNetworks& local_networks,
                                                     const SamplingOptions& sampling, bool applications) {
  std::vector<std::unique_ptr<Exporter>> out;
  for (const auto& c : configs) {
    try {
      out.push_back(makeOne(c, local_networks, sampling, applications));
    } catch (const std::exception& e) {
      throw std::runtime_error("exporter " + c.describe() + " (" + c.origin + "): " + e.what());
    }
  }
  return out;
}

}  // namespace flowfold
