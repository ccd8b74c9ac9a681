#include "flowfold/exporters/ipfix_exporter.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/exporters/host_port.h"
#include "flowfold/log.h"
#include "biflow_pairer.h"
#include "ipfix_encoder.h"
#include "ipfix_fields.h"
#include "ipfix_options_records.h"
#include "ipfix_transport.h"

namespace flowfold {

namespace {

using namespace ipfix;

constexpr size_t kMinMtu = 256;               // the template message is 296 bytes (checked below)
constexpr size_t kMinMtuWithDirection = 512;  // 520 bytes with templates 258 and 259 (checked below)
constexpr size_t kMaxUdpMessage = 65507;      // largest UDP payload over IPv4
constexpr size_t kStreamMessageSize = 65000;  // TCP and file: big messages, few writes
// Biflow: most records waiting for their reverse direction (about 100 MB);
// beyond it the oldest go out one-sided.
constexpr size_t kMaxWaitingBiflowHalves = 1'000'000;

// Owns the session logic: when templates go out, where messages end, pacing,
// counting. The encoder builds the bytes, the transport moves them.
class IpfixExporter final : public Exporter {
 public:
  IpfixExporter(const IpfixOptions& options, std::unique_ptr<MessageTransport> transport,
                std::unique_ptr<MessageEncoder> encoder)
      : Exporter("ipfix " + transport->describe()),
        udp_(options.transport == IpfixOptions::Transport::kUdp),
        per_session_templates_(transport->sendsTemplatesPerSession()),
        refresh_ms_(udp_ ? options.template_refresh_ms : 0),
        refresh_messages_(udp_ ? options.template_refresh_packets : 0),
        options_interval_ms_(options.options_interval_ms),
        observation_domain_(options.observation_domain),
        sampling_(options.sampling),
        transport_(std::move(transport)),
        encoder_(std::move(encoder)),
        local_networks_(options.local_networks) {
    if (options.biflow) pairer_.emplace(options.biflow_wait_ms, kMaxWaitingBiflowHalves);
  }

  ~IpfixExporter() override {
    try {
      emitMessage();
      transport_->flush();
      syncTransportCounters();
    } catch (const std::exception& e) {
      logWarn("exporter %s: final flush failed: %s", name().c_str(), e.what());
    }
  }

 protected:
  void doExport(std::span<const FlowRecord> records, uint64_t now_ms) override {
    beginCall(now_ms);
    const size_t other = pairer_ ? pairInTemplateOrder(records, now_ms) : appendInTemplateOrder(records);
    // Nothing calls us between batches, so a partial message is sent now
    // rather than held for an unknown time.
    emitMessage();
    sendOptionsIfDue();
    transport_->push();
    syncTransportCounters();
    if (other > 0) {
      mutableCounters().dropped.fetch_add(other, std::memory_order_relaxed);
      if (!bad_version_logged_) {  // a decoder bug, not an I/O problem: say it once
        bad_version_logged_ = true;
        logWarn("exporter %s: dropping records with an IP version other than 4 or 6 "
                "(counted in records_dropped)",
                name().c_str());
      }
    }
  }

  // Biflow: records whose wait for their reverse is over go out, also when
  // no record comes (a quiet link).
  // Without biflow only periodic options records can be due.
  void doTick(uint64_t now_ms) override {
    if (!pairer_ && (!meteringSource() || !templates_sent_ || options_interval_ms_ == 0)) return;
    beginCall(now_ms);
    if (pairer_) {
      pairer_->add({}, now_ms, biflows_);
      appendBiflowsInTemplateOrder();
      emitMessage();
    }
    sendOptionsIfDue();
    transport_->push();
    syncTransportCounters();
  }

  void doFlush(uint64_t now_ms) override {
    beginCall(now_ms);
    // Even without flows a file (or session) starts with the templates.
    if (!templates_sent_) sendTemplatesAndOptions();
    if (pairer_) {
      pairer_->flushAll(biflows_);
      appendBiflowsInTemplateOrder();
    }
    emitMessage();
    sendOptionsIfDue();
    transport_->flush();
    syncTransportCounters();
  }

  // The end: everything flushed, then the final options records, whose
  // counts are those of the stats line at the end (less this last message).
  void doClose(uint64_t now_ms) override {
    closing_ = true;  // the final report below stands for any periodic one due now
    doFlush(now_ms);
    if (meteringSource()) sendOptions();
    // A TCP session that ends cleanly withdraws its templates (RFC 7011
    // section 8.1): the collector may forget them. UDP and files do not.
    if (per_session_templates_ && templates_sent_) send(encoder_->encodeWithdrawals(), 0);
    transport_->flush();
    syncTransportCounters();
  }

 private:
  void beginCall(uint64_t now_ms) {
    now_ms_ = now_ms;
    if (!called_) {
      called_ = true;
      first_call_ms_ = now_ms;
      last_options_ms_ = now_ms;
    }
    encoder_->setExportTime(static_cast<uint32_t>(now_ms / 1000));
    // Every message went out at the end of the last call: a new file (a
    // rotation) starts clean, with the templates.
    if (transport_->startsNewFile(now_ms)) templates_sent_ = false;
    if (!templates_sent_) {
      templates_due_ = true;
    } else if (refresh_ms_ != 0) {
      if (now_ms < last_templates_ms_) last_templates_ms_ = now_ms;  // clock stepped back
      if (now_ms - last_templates_ms_ >= refresh_ms_) {
        templates_due_ = true;
        // With sampling, the rate goes with each refresh by time.
        if (sampling_.enabled()) options_due_ = true;
      }
    }
  }

  // Options records (ipfix_options_records.h) that are due: after the
  // templates of a new session or of a refresh by time (with sampling), and
  // every options_interval.
  void sendOptionsIfDue() {
    if (!meteringSource() || closing_) return;
    if (options_interval_ms_ != 0 && templates_sent_) {
      if (now_ms_ < last_options_ms_) last_options_ms_ = now_ms_;  // clock stepped back
      if (now_ms_ - last_options_ms_ >= options_interval_ms_) options_due_ = true;
    }
    if (options_due_) sendOptions();
  }

  // One options message with the counts as of now: every message before it
  // delivered (UDP counts at push()) and counted.
  [[gnu::noinline]] void sendOptions() {
    emitMessage();
    if (!templates_sent_ || templates_due_) sendTemplates();
    if (!templates_sent_) return;  // lost with them: tried again next call
    transport_->push();
    syncTransportCounters();
    send(encoder_->encodeOptions(optionsValues()), 0);
    options_due_ = false;
    last_options_ms_ = now_ms_;
  }

  OptionsValues optionsValues() const {
    const MeteringStatistics m = meteringSource()->statistics();
    const ExporterCounters& c = counters();
    OptionsValues v;
    v.observation_domain = observation_domain_;
    v.system_init_ms = first_call_ms_;
    v.observation_ms = now_ms_;
    v.messages = c.messages.load(std::memory_order_relaxed);
    v.flow_records = c.records.load(std::memory_order_relaxed);
    v.octets = c.bytes.load(std::memory_order_relaxed);
    v.ignored_packets = m.packets_ignored;
    v.exporting_process = observation_domain_;  // one exporting process per domain
    v.not_sent_flows = c.dropped.load(std::memory_order_relaxed) + m.records_not_exported;
    v.sampling = sampling_.enabled();
    v.random = sampling_.mode == SamplingMode::kRandom;
    v.interval = sampling_.interval;
    v.packets_observed = m.packets_observed;
    v.packets_selected = m.packets_selected;
    return v;
  }

  // Records go out grouped by template, IPv4 before IPv6 and, with
  // local_networks, those without a direction before those with one (256,
  // 258, 257, 259): a message holds at most one data set per template however
  // the records interleave. Returns the records of another IP version.
  size_t appendInTemplateOrder(std::span<const FlowRecord> records) {
    v6_.clear();
    size_t other = 0;
    for (const FlowRecord& r : records) {
      if (r.key.ip_version == 4) {
        appendOrHoldDirected(r);
      } else if (r.key.ip_version == 6) {
        v6_.push_back(&r);
      } else {
        ++other;
      }
    }
    appendHeldDirected();
    for (const FlowRecord* r : v6_) appendOrHoldDirected(*r);
    appendHeldDirected();
    return other;
  }

  // Biflow: the batch's records wait for their reverse direction; the
  // biflows completed (or waited out) go out grouped by template (260, 262,
  // 261, 263), as uniflow records do. Returns the records of another IP
  // version.
  size_t pairInTemplateOrder(std::span<const FlowRecord> records, uint64_t now_ms) {
    const size_t other = std::count_if(records.begin(), records.end(), [](const FlowRecord& r) {
      return r.key.ip_version != 4 && r.key.ip_version != 6;
    });
    if (other == 0) {
      pairer_->add(records, now_ms, biflows_);
    } else {
      std::vector<FlowRecord> known;
      for (const FlowRecord& r : records)
        if (r.key.ip_version == 4 || r.key.ip_version == 6) known.push_back(r);
      pairer_->add(known, now_ms, biflows_);
    }
    appendBiflowsInTemplateOrder();
    return other;
  }

  void appendBiflowsInTemplateOrder() {
    biflow_directions_.clear();
    for (const Biflow& b : biflows_) biflow_directions_.push_back(local_networks_.direction(b.initiator.key));
    for (const uint8_t version : {4, 6}) {
      for (const bool directed : {false, true}) {
        for (size_t i = 0; i < biflows_.size(); ++i) {
          const Biflow& b = biflows_[i];
          if (b.initiator.key.ip_version != version || (biflow_directions_[i] != FlowDirection::kNone) != directed)
            continue;
          appendBiflow(b, biflow_directions_[i]);
        }
      }
    }
    biflows_.clear();
  }

  void appendBiflow(const Biflow& b, FlowDirection direction) {
    const FlowRecord* responder = b.paired ? &b.responder : nullptr;
    appendWithRoom([&] { return encoder_->appendBiflow(b.initiator, responder, b.direction, direction); });
    if (b.paired) mutableCounters().biflows_paired.fetch_add(1, std::memory_order_relaxed);
  }

  // Without local_networks every record has no direction and goes out at once.
  void appendOrHoldDirected(const FlowRecord& r) {
    const FlowDirection d = local_networks_.direction(r.key);
    if (d == FlowDirection::kNone) {
      append(r);
    } else {
      directed_.push_back({&r, d});
    }
  }

  void appendHeldDirected() {
    for (const auto& [r, d] : directed_) append(*r, d);
    directed_.clear();
  }

  void append(const FlowRecord& record, FlowDirection direction = FlowDirection::kNone) {
    appendWithRoom([&] { return encoder_->append(record, direction); });
  }

  // Appends one record (tryAppend: false when the open message is full),
  // the templates first when due; a full message goes out and the record
  // starts the next one.
  template <class TryAppend>
  void appendWithRoom(TryAppend&& tryAppend) {
    if (templates_due_) sendTemplatesAndOptions();
    if (tryAppend()) return;
    emitMessage();
    if (templates_due_) sendTemplatesAndOptions();  // that message may have completed a refresh interval
    if (!tryAppend()) throw std::logic_error("IPFIX: record larger than a message");
  }

  // The options records of a new session go right after its templates,
  // before any flow record: nfdump 1.7.1 then takes the sequence number the
  // first flow message carries without counting a failure.
  // Out of line: appendWithRoom() runs per record and must stay small
  // enough to be inlined into it (bench/PROFILE.md, issue 21).
  [[gnu::noinline]] void sendTemplatesAndOptions() {
    sendTemplates();
    if (options_due_ && meteringSource()) sendOptions();
  }


  void sendTemplates() {
    emitMessage();
    if (!templates_sent_) options_due_ = true;  // a new session: the options follow the templates
    if (per_session_templates_) {  // TCP: the transport starts every connection with them
      const std::span<const uint8_t> t = encoder_->encodeTemplates();
      transport_->setSessionStart(t.data(), t.size());
      templates_sent_ = true;
      templates_due_ = false;
      return;
    }
    // A lost template message (a full disk) is tried again before the next
    // data message, not before every record: a failing file would otherwise
    // get one message (and two failed writes) per record.
    templates_due_ = false;
    if (!send(encoder_->encodeTemplates(), 0)) {
      templates_lost_ = true;
      return;
    }
    templates_lost_ = false;
    templates_sent_ = true;
    last_templates_ms_ = now_ms_;
    data_messages_since_templates_ = 0;
  }

  void emitMessage() {
    const size_t records = encoder_->pendingRecords();
    std::span<const uint8_t> message = encoder_->finish();
    if (message.empty()) return;
    if (templates_lost_) {
      // A reader cannot decode data whose templates are not before it in the
      // stream: the templates go first, or the message is lost with them.
      held_.assign(message.begin(), message.end());  // encodeTemplates() reuses the buffer
      sendTemplates();
      if (templates_lost_) {
        mutableCounters().dropped.fetch_add(records, std::memory_order_relaxed);
        return;
      }
      message = held_;
    }
    send(message, records);
    if (refresh_messages_ != 0 && ++data_messages_since_templates_ >= refresh_messages_) {
      templates_due_ = true;
    }
  }

  /// Sends one message. A failure loses that message's records only: they are
  /// counted, the failure is logged (rate-limited), and the batch goes on.
  /// (UDP queues the message: its failure is counted at push().)
  bool send(std::span<const uint8_t> message, size_t records) {
    auto& c = mutableCounters();
    try {
      transport_->send(message.data(), message.size(), records);
      syncTransportCounters();
    } catch (const std::exception& e) {
      c.errors.fetch_add(1, std::memory_order_relaxed);
      c.dropped.fetch_add(records, std::memory_order_relaxed);
      unsigned long long suppressed = 0;
      if (send_failure_log_.allow(suppressed))
        logWarn("exporter %s: %s (%zu records lost%s)", name().c_str(), e.what(), records,
                suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
      return false;
    }
    if (!transport_->countsDelivery()) {
      c.messages.fetch_add(1, std::memory_order_relaxed);
      c.bytes.fetch_add(message.size(), std::memory_order_relaxed);
      c.records.fetch_add(records, std::memory_order_relaxed);
    }
    return true;
  }

  // What a queueing transport (UDP) delivered, and the losses a queueing or
  // buffering one (TCP) reports after accepting the records.
  void syncTransportCounters() {
    auto& c = mutableCounters();
    if (transport_->countsDelivery()) {
      const MessageTransport::Delivered d = transport_->delivered();
      c.messages.fetch_add(d.messages - seen_delivered_.messages, std::memory_order_relaxed);
      c.bytes.fetch_add(d.bytes - seen_delivered_.bytes, std::memory_order_relaxed);
      c.records.fetch_add(d.records - seen_delivered_.records, std::memory_order_relaxed);
      seen_delivered_ = d;
    }
    const uint64_t dropped = transport_->recordsDropped(), errors = transport_->errors();
    // A UDP message lost at push() may have carried the templates, or the
    // collector restarted (ECONNREFUSED): the next batch starts with them.
    if (errors != seen_errors_ && !per_session_templates_) templates_sent_ = false;
    c.dropped.fetch_add(dropped - seen_dropped_, std::memory_order_relaxed);
    // A buffering transport (TCP) loses records it had accepted, which were
    // counted as exported then: one record, one count (records= or dropped=).
    if (!transport_->countsDelivery())
      c.records.fetch_sub(dropped - seen_dropped_, std::memory_order_relaxed);
    c.errors.fetch_add(errors - seen_errors_, std::memory_order_relaxed);
    c.collector_drops.store(transport_->collectorDrops(), std::memory_order_relaxed);
    c.refused.store(transport_->collectorRefusals(), std::memory_order_relaxed);
    seen_dropped_ = dropped;
    seen_errors_ = errors;
  }

  const bool udp_;
  const bool per_session_templates_;
  uint64_t seen_dropped_ = 0, seen_errors_ = 0;
  MessageTransport::Delivered seen_delivered_;
  const uint64_t refresh_ms_;        // 0: no refresh by time
  const uint32_t refresh_messages_;  // 0: no refresh by count
  const uint64_t options_interval_ms_;  // 0: options only at a session's start and at the end
  const uint32_t observation_domain_;
  const SamplingOptions sampling_;
  std::unique_ptr<MessageTransport> transport_;
  std::unique_ptr<MessageEncoder> encoder_;
  std::vector<const FlowRecord*> v6_;  // reused between batches
  const LocalNetworks local_networks_;
  std::vector<std::pair<const FlowRecord*, FlowDirection>> directed_;  // reused between batches
  std::optional<BiflowPairer> pairer_;  // set: biflow
  std::vector<Biflow> biflows_;         // ready to go out; reused between batches
  std::vector<FlowDirection> biflow_directions_;
  bool bad_version_logged_ = false;
  LogRateLimiter send_failure_log_;

  bool templates_sent_ = false;
  bool templates_due_ = false;
  bool templates_lost_ = false;  // the last template message failed: data must wait for it
  std::vector<uint8_t> held_;    // a data message waiting for its templates
  uint64_t now_ms_ = 0;
  uint64_t last_templates_ms_ = 0;
  uint32_t data_messages_since_templates_ = 0;
  bool called_ = false;
  uint64_t first_call_ms_ = 0;  // systemInitTimeMilliseconds of the options records
  bool options_due_ = false;
  bool closing_ = false;
  uint64_t last_options_ms_ = 0;
};

}  // namespace

std::unique_ptr<Exporter> makeIpfixExporter(const IpfixOptions& options) {
  using Transport = IpfixOptions::Transport;
  size_t max_message = kStreamMessageSize;
  if (options.transport == Transport::kUdp) {
    const size_t mtu = options.mtu != 0 ? options.mtu : automaticDatagramBytes(options.host);
    const bool with_direction = !options.local_networks.empty();
    // The template message must fit in one datagram.
    const size_t templates =
        templateMessageSize(with_direction, options.biflow, options.sampling.enabled(), options.applications);
    // With DPI labels a record is at most 302 bytes (ipfix_application.h): 512 holds it.
    const size_t min_mtu =
        std::max(with_direction || options.applications ? kMinMtuWithDirection : kMinMtu, templates);
    if (mtu < min_mtu || mtu > kMaxUdpMessage) {
      throw std::invalid_argument("IPFIX: mtu " + std::to_string(mtu) + " out of range " +
                                  std::to_string(min_mtu) + ".." + std::to_string(kMaxUdpMessage) +
                                  (options.biflow ? " (with biflow)" : "") +
                                  (with_direction ? " (with local_networks)" : ""));
    }
    max_message = mtu;
  }
  if (options.applications && options.biflow)
    throw std::invalid_argument("IPFIX: biflow records do not carry DPI labels yet: set biflow: false (or dpi: false)");
  if (options.applications && options.encoder != IpfixOptions::Encoder::kDirect)
    throw std::invalid_argument("IPFIX: DPI labels go out with the direct encoder only: set encoder: direct");
  std::unique_ptr<MessageTransport> transport;
  switch (options.transport) {
    case Transport::kUdp:
      transport = makeUdpTransport(options.host, options.port, options.max_messages_per_second);
      break;
    case Transport::kTcp:
      transport = makeTcpTransport(options.host, options.port, options.tcp_buffer_bytes);
      break;
    case Transport::kFile: transport = makeFileTransport(options.path, options.rotation); break;
    default: throw std::invalid_argument("IPFIX: unknown transport");
  }
  std::unique_ptr<MessageEncoder> encoder =
      options.encoder == IpfixOptions::Encoder::kDirect
          ? makeDirectEncoder(options.observation_domain, max_message, !options.local_networks.empty(), options.biflow,
                              options.sampling.enabled(), options.applications)
          : makeFixbufEncoder(options.observation_domain, max_message, !options.local_networks.empty(), options.biflow,
                              options.sampling.enabled());
  return std::make_unique<IpfixExporter>(options, std::move(transport), std::move(encoder));
}

}  // namespace flowfold
