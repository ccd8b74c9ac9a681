#include "flowfold/probe/exporter_factory.h"

#include <stdexcept>

#include "flowfold/exporters/ipfix_exporter.h"
#include "flowfold/exporters/mysql_exporter.h"
#include "flowfold/exporters/netflow9_exporter.h"
#include "flowfold/exporters/text_exporter.h"

namespace flowfold {

namespace {
std::unique_ptr<Exporter> makeOne(const ExporterConfig& c, const LocalNetworks& local_networks) {
  switch (c.type) {
    case ExporterConfig::Type::kText:
    case ExporterConfig::Type::kJson: {
      TextOptions o;
      o.format = c.type == ExporterConfig::Type::kJson ? TextOptions::Format::kJson : TextOptions::Format::kText;
      o.path = c.path;
      o.rotation = c.rotation;
      o.local_networks = local_networks;
      return makeTextExporter(o);
    }
    case ExporterConfig::Type::kNetflow9: {
      NetflowV9Options o;
      o.host = c.host;
      o.port = c.port;
      o.source_id = c.observation_domain;
      o.max_datagram = c.effectiveMtu();
      o.template_refresh_ms = c.template_refresh_ms;
      o.template_refresh_packets = c.template_refresh_packets;
      o.max_datagrams_per_second = c.rate_limit;
      o.local_networks = local_networks;
      return makeNetflowV9Exporter(o);
    }
    case ExporterConfig::Type::kMysql: {
      MysqlOptions o = c.mysql_dsn.empty() ? MysqlOptions{} : parseMysqlDsn(c.mysql_dsn);
      o.observation_domain = c.observation_domain;
      for (const auto& [key, value] : c.mysql_settings) setMysqlOption(o, key, value);
      o.local_networks = local_networks;
      return makeMysqlExporter(o);
    }
    case ExporterConfig::Type::kIpfix: {
      IpfixOptions o;
      o.transport = c.transport == ExporterConfig::Transport::kTcp    ? IpfixOptions::Transport::kTcp
                    : c.transport == ExporterConfig::Transport::kFile ? IpfixOptions::Transport::kFile
                                                                      : IpfixOptions::Transport::kUdp;
      o.host = c.host;
      o.port = c.port;
      o.path = c.path;
      o.rotation = c.rotation;
      o.observation_domain = c.observation_domain;
      o.mtu = c.effectiveMtu();
      o.template_refresh_ms = c.template_refresh_ms;
      o.template_refresh_packets = c.template_refresh_packets;
      o.max_messages_per_second = c.rate_limit;
      o.tcp_buffer_bytes = size_t{c.tcp_buffer_mb} << 20;
      if (c.ipfix_encoder)
        o.encoder = *c.ipfix_encoder == ExporterConfig::IpfixEncoder::kDirect ? IpfixOptions::Encoder::kDirect
                                                                              : IpfixOptions::Encoder::kLibfixbuf;
      o.local_networks = local_networks;
      return makeIpfixExporter(o);
    }
  }
  throw std::logic_error("unknown exporter type");
}
}  // namespace

std::vector<std::unique_ptr<Exporter>> makeExporters(const std::vector<ExporterConfig>& configs,
                                                     const LocalNetworks& local_networks) {
  std::vector<std::unique_ptr<Exporter>> out;
  for (const auto& c : configs) {
    try {
      out.push_back(makeOne(c, local_networks));
    } catch (const std::exception& e) {
      throw std::runtime_error("exporter " + c.describe() + " (" + c.origin + "): " + e.what());
    }
  }
  return out;
}

}  // namespace flowfold
