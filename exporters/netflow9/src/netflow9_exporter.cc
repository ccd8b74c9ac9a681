#include "flowfold/exporters/netflow9_exporter.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "flowfold/exporters/host_port.h"
#include "flowfold/exporters/netflow9_transport.h"
#include "flowfold/log.h"

namespace flowfold {
namespace {

// Datagrams encoded per step: bounds the scratch buffer (64 x 1400 bytes by
// default) when a capture's end flushes a million flows in one batch.
constexpr size_t kDatagramsPerStep = 64;
constexpr uint64_t kAutoBootMarginMs = 24ull * 3600 * 1000;

}  // namespace

NetflowV9Exporter::NetflowV9Exporter(const NetflowV9Options& options)
    : Exporter("netflow9 " + joinHostPort(options.host, options.port)) {
  config_.source_id = options.source_id;
  config_.max_datagram = options.max_datagram != 0 ? options.max_datagram : automaticDatagramBytes(options.host);
  config_.template_refresh_packets = options.template_refresh_packets;
  config_.template_refresh_ms = options.template_refresh_ms;
  config_.boot_ms = options.boot_ms;
  local_networks_ = options.local_networks;
  config_.local_networks = &local_networks_;
  options_interval_ms_ = options.options_interval_ms;
  sampling_ = options.sampling;
  if (sampling_.enabled()) options_refresh_ms_ = options.template_refresh_ms;
  netflow9::validateConfig(config_);
  transport_ = std::make_unique<netflow9::UdpTransport>(options.host, options.port,
                                                        options.max_datagrams_per_second);
}

NetflowV9Exporter::~NetflowV9Exporter() = default;

void NetflowV9Exporter::resolveBoot(uint64_t now_ms) {
  if (config_.boot_ms == 0) {
    config_.boot_ms = now_ms > kAutoBootMarginMs ? now_ms - kAutoBootMarginMs : 0;
  }
}

void NetflowV9Exporter::doExport(std::span<const FlowRecord> records, uint64_t now_ms) {
  resolveBoot(now_ms);
  // The options go before the flows they describe (the sampling rate).
  if (optionsDue(now_ms)) sendOptions(now_ms);
  while (!records.empty()) {
    const size_t used =
        netflow9::encode(config_, state_, records, now_ms, scratch_, kDatagramsPerStep);
    records = records.subspan(used);
    datagrams_.clear();
    for (size_t i = 0; i < scratch_.size(); ++i) datagrams_.push_back(scratch_.datagram(i));
    errors_.assign(datagrams_.size(), 0);
    transport_->send(datagrams_, errors_);
    for (size_t i = 0; i < datagrams_.size(); ++i) countDatagram(datagrams_[i], scratch_.entries[i].records, errors_[i]);
  }
  auto& counters = mutableCounters();
  counters.collector_drops.store(transport_->collectorDrops(), std::memory_order_relaxed);
  counters.refused.store(transport_->collectorRefusals(), std::memory_order_relaxed);
}

void NetflowV9Exporter::countDatagram(std::span<const uint8_t> datagram, size_t n, int error) {
  auto& counters = mutableCounters();
  if (error == 0) {
    counters.messages.fetch_add(1, std::memory_order_relaxed);
    counters.bytes.fetch_add(datagram.size(), std::memory_order_relaxed);
    counters.records.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  // The datagram is lost (its sequence number leaves a gap the collector
  // will report); later ones are still sent. It may have carried the
  // templates, or the collector may be restarting (ECONNREFUSED): the
  // next encoded datagram carries the templates again, and the options.
  state_.templates_sent = false;
  options_sent_ = false;
  counters.errors.fetch_add(1, std::memory_order_relaxed);
  counters.dropped.fetch_add(n, std::memory_order_relaxed);
  ++send_failures_;
  unsigned long long suppressed = 0;
  if (send_failure_log_.allow(suppressed)) {
    logWarn("%s: send to %s failed (%zu records lost, %llu failed datagrams so far%s): %s; "
            "check that the collector is running and reachable",
            name().c_str(), transport_->remote().c_str(), n, static_cast<unsigned long long>(send_failures_),
            suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "",
            std::strerror(error));
  }
}

bool NetflowV9Exporter::optionsDue(uint64_t now_ms) const {
  if (!meteringSource()) return false;
  if (!options_sent_) return true;
  const uint64_t since = now_ms >= last_options_ms_ ? now_ms - last_options_ms_ : UINT64_MAX;  // clock stepped back
  return (options_interval_ms_ != 0 && since >= options_interval_ms_) ||
         (options_refresh_ms_ != 0 && since >= options_refresh_ms_);
}

void NetflowV9Exporter::sendOptions(uint64_t now_ms) {
  const auto& c = counters();
  netflow9::OptionsValues v;
  v.bytes = c.bytes.load(std::memory_order_relaxed);
  v.datagrams = c.messages.load(std::memory_order_relaxed);
  v.flows = c.records.load(std::memory_order_relaxed);
  v.sampling = sampling_.enabled();
  v.random = sampling_.mode == SamplingMode::kRandom;
  v.interval = sampling_.interval;
  netflow9::encodeOptions(config_, state_, v, now_ms, scratch_);
  datagrams_.assign(1, scratch_.datagram(0));
  errors_.assign(1, 0);
  transport_->send(datagrams_, errors_);
  options_sent_ = true;
  last_options_ms_ = now_ms;
  countDatagram(datagrams_[0], 0, errors_[0]);
}

void NetflowV9Exporter::doTick(uint64_t now_ms) {
  if (options_interval_ms_ == 0 || !options_sent_ || !optionsDue(now_ms)) return;
  sendOptions(now_ms);
}

// The final options datagram reports the counts after the first flush
// (which settles the collector's refusals of what went before); the second
// flush settles its own.
void NetflowV9Exporter::doClose(uint64_t now_ms) {
  doFlush(now_ms);
  if (!meteringSource()) return;
  resolveBoot(now_ms);
  sendOptions(now_ms);
  doFlush(now_ms);
}

void NetflowV9Exporter::doFlush(uint64_t) {
  transport_->checkCollector();
  transport_->checkPendingRefusal();
  mutableCounters().collector_drops.store(transport_->collectorDrops(), std::memory_order_relaxed);
  mutableCounters().refused.store(transport_->collectorRefusals(), std::memory_order_relaxed);
}

std::unique_ptr<Exporter> makeNetflowV9Exporter(const NetflowV9Options& options) {
  return std::make_unique<NetflowV9Exporter>(options);
}

}  // namespace flowfold
