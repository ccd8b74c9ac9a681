#include "flowfold/exporters/text_exporter.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "flowfold/exporters/app_names.h"
#include "flowfold/exporters/civil_date.h"
#include "flowfold/exporters/rotating_output.h"
#include "flowfold/flowcache/wire.h"
#include "flowfold/log.h"

namespace flowfold {

namespace {

// The formatters write into a std::string with their own small routines
// (std::to_chars, a cached date, digits by hand): with snprintf(), gmtime_r()
// and inet_ntop() a line cost more than everything else the probe does with a
// flow (bench/PROFILE.md). The output is the same (tests/unit/text holds it
// to a reference built with those calls).

void put(std::string& out, std::string_view s) { out.append(s); }

void putUnsigned(std::string& out, uint64_t v) {
  char buf[20];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void putDigits(char* p, unsigned v, int width) {  // zero-padded, exactly `width` digits
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

// "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC. The part up to the seconds is kept for
// the last second formatted on this thread: the records of a batch end
// within seconds of each other.
void putIsoTime(std::string& out, uint64_t ms) {
  thread_local uint64_t cached_secs = UINT64_MAX;
  thread_local std::string cached;  // "YYYY-MM-DDTHH:MM:SS"
  const uint64_t secs = ms / 1000;
  if (secs != cached_secs) {
    const CivilDate d = civilFromDays(static_cast<int64_t>(secs / 86400));
    const auto in_day = static_cast<unsigned>(secs % 86400);
    char buf[40];
    char* p = buf;
    if (d.year >= 0 && d.year <= 9999) {
      putDigits(p, static_cast<unsigned>(d.year), 4);
      p += 4;
    } else {
      p = std::to_chars(p, buf + 24, d.year).ptr;
    }
    *p++ = '-';
    putDigits(p, d.month, 2);
    p[2] = '-';
    putDigits(p + 3, d.day, 2);
    p[5] = 'T';
    putDigits(p + 6, in_day / 3600, 2);
    p[8] = ':';
    putDigits(p + 9, in_day / 60 % 60, 2);
    p[11] = ':';
    putDigits(p + 12, in_day % 60, 2);
    cached.assign(buf, p + 14);
    cached_secs = secs;
  }
  out.append(cached);
  char frac[5] = {'.', 0, 0, 0, 'Z'};
  putDigits(frac + 1, static_cast<unsigned>(ms % 1000), 3);
  out.append(frac, sizeof frac);
}

void putAddress(std::string& out, const std::array<uint8_t, 16>& addr, uint8_t version) {
  if (version != 6) {
    for (int i = 0; i < 4; ++i) {
      if (i != 0) out.push_back('.');
      putUnsigned(out, addr[static_cast<size_t>(i)]);
    }
    return;
  }
  out.append(formatAddress(addr, version));  // inet_ntop: RFC 5952 compression
}

// nfdump's notation: one letter per TCP flag, '.' when clear.
void putTcpFlags(std::string& out, uint8_t f) {
  char s[8];
  const char* letters = "CEUAPRSF";
  for (int bit = 7; bit >= 0; --bit) s[7 - bit] = (f & (1u << bit)) ? letters[7 - bit] : '.';
  out.append(s, sizeof s);
}

void putMac(std::string& out, const std::array<uint8_t, 6>& m) {
  static constexpr char kHex[] = "0123456789abcdef";
  char s[17];
  for (size_t i = 0; i < 6; ++i) {
    s[i * 3] = kHex[m[i] >> 4];
    s[i * 3 + 1] = kHex[m[i] & 0xF];
    if (i < 5) s[i * 3 + 2] = ':';
  }
  out.append(s, sizeof s);
}

bool isIcmp(const FlowKey& k) { return k.protocol == kProtoIcmp || k.protocol == kProtoIcmpv6; }

void putEndpoint(std::string& out, const std::array<uint8_t, 16>& addr, uint8_t version, uint16_t port) {
  if (version == 6) out.push_back('[');
  putAddress(out, addr, version);
  put(out, version == 6 ? "]:" : ":");
  putUnsigned(out, port);
}

class TextExporter final : public Exporter {
 public:
  explicit TextExporter(const TextOptions& o)
      : Exporter(o.format == TextOptions::Format::kJson ? "json" : "text"),
        options_(o),
        out_(o.path.empty() ? std::string("-") : o.path, o.rotation),
        local_(o.local_networks.empty() ? nullptr : &options_.local_networks) {}

 protected:
  // One buffer per batch, one write, no stdio buffer: whole batches reach the
  // file (or a pipe to `jq`) as they come, and a failure is seen at the batch
  // it hits. What a failed write put out is cut back to its last whole line,
  // so every line in the file is a whole record (a valid JSON object), and
  // exactly the records not in the file are counted as lost.
  void doExport(std::span<const FlowRecord> records, uint64_t now_ms) override {
    try {
      if (out_.advanceTo(now_ms)) torn_line_ = false;  // a new file: nothing torn in it
    } catch (const std::exception& e) {
      reportOpenFailure(e, records.size());
      return;
    }
    OutputFile& file = *out_.file();
    batch_.clear();
    // A line torn by an earlier failure that could not be cut back (a pipe):
    // end it, so that the lines after it are whole.
    if (torn_line_) batch_.push_back('\n');
    const size_t first_line = batch_.size();
    for (const FlowRecord& r : records) {
      if (options_.format == TextOptions::Format::kJson) {
        appendFlowJson(batch_, r, local_);
      } else {
        appendFlowText(batch_, r, local_);
      }
      batch_.push_back('\n');
    }
    size_t written = 0;
    const int err = file.writeAll(batch_.data(), batch_.size(), written);
    size_t whole = batch_.size();  // bytes of whole lines that stay in the file
    if (err != 0) {
      whole = cutBackToWholeLines(file, written);
    } else {
      torn_line_ = false;  // the newline that ended it went out with this batch
    }
    const size_t lines = whole > first_line ? static_cast<size_t>(std::count(
                                                  batch_.begin() + static_cast<ptrdiff_t>(first_line),
                                                  batch_.begin() + static_cast<ptrdiff_t>(whole), '\n'))
                                            : 0;
    auto& c = mutableCounters();
    c.records.fetch_add(lines, std::memory_order_relaxed);
    c.messages.fetch_add(lines, std::memory_order_relaxed);
    c.bytes.fetch_add(whole > first_line ? whole - first_line : 0, std::memory_order_relaxed);
    if (err != 0) reportLoss(file, err, records.size() - lines, records.size());
  }

 private:
  // After a write that failed with `written` bytes out: takes back the torn
  // last line; returns how many bytes of the batch stay in the file.
  size_t cutBackToWholeLines(OutputFile& file, size_t written) {
    const size_t last_newline = written == 0 ? std::string::npos : batch_.rfind('\n', written - 1);
    const size_t whole = last_newline == std::string::npos ? 0 : last_newline + 1;
    size_t stays = whole;
    if (!file.takeBack(written, whole)) {
      stays = written;
      unsigned long long suppressed = 0;
      if (cut_failure_log_.allow(suppressed)) {
        logWarn("exporter %s: %s: cannot cut off a partial line: %s%s", name().c_str(), file.name().c_str(),
                std::strerror(errno),
                suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
      }
    }
    if (stays != 0) torn_line_ = batch_[stays - 1] != '\n';
    return whole;
  }

  // Rotation: the file of this interval could not be opened (its directory
  // went away, a link planted under its name): the batch is lost, counted.
  void reportOpenFailure(const std::exception& e, size_t lost) {
    auto& c = mutableCounters();
    c.errors.fetch_add(1, std::memory_order_relaxed);
    c.dropped.fetch_add(lost, std::memory_order_relaxed);
    ++failures_;
    unsigned long long suppressed = 0;
    if (failure_log_.allow(suppressed)) {
      logWarn("exporter %s: %s (%zu records lost, %llu failures so far%s)", name().c_str(), e.what(), lost,
              static_cast<unsigned long long>(failures_),
              suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "");
    }
  }

  void reportLoss(const OutputFile& file, int err, size_t lost, size_t of) {
    auto& c = mutableCounters();
    c.errors.fetch_add(1, std::memory_order_relaxed);
    c.dropped.fetch_add(lost, std::memory_order_relaxed);
    ++failures_;
    unsigned long long suppressed = 0;
    if (failure_log_.allow(suppressed)) {
      logWarn("exporter %s: write to %s failed: %s (%zu of %zu records lost, %llu failures so far%s)%s",
              name().c_str(), file.name().c_str(), std::strerror(err), lost, of,
              static_cast<unsigned long long>(failures_),
              suppressed ? (", " + std::to_string(suppressed) + " similar messages suppressed").c_str() : "",
              err == ENOSPC ? "; free some space: writing resumes by itself" : "");
    }
  }

  TextOptions options_;
  RotatingOutput out_;
  const LocalNetworks* local_;  // options_.local_networks, or nullptr when unset
  std::string batch_;
  bool torn_line_ = false;  // the output ends inside a line a failed write left
  uint64_t failures_ = 0;
  LogRateLimiter failure_log_, cut_failure_log_;
};

}  // namespace

namespace {

// " mpls 16-5-0,17-0-1": the stack entries kept, each label-TC-S as nfdump
// shows them; nothing without MPLS, so such lines read as before.
void putMplsText(std::string& out, const MplsStack& stack) {
  if (!mplsPresent(stack[0])) return;
  put(out, " mpls ");
  for (size_t i = 0; i < stack.size() && mplsPresent(stack[i]); ++i) {
    if (i != 0) out.push_back(',');
    putUnsigned(out, mplsLabel(stack[i]));
    out.push_back('-');
    putUnsigned(out, mplsTrafficClass(stack[i]));
    out.push_back('-');
    putUnsigned(out, mplsBottom(stack[i]));
  }
}

// {"label":16,"tc":5,"s":0},...: the entries kept, top first (none: empty).
void putMplsJson(std::string& out, const MplsStack& stack) {
  for (size_t i = 0; i < stack.size() && mplsPresent(stack[i]); ++i) {
    put(out, i == 0 ? "{\"label\":" : ",{\"label\":");
    putUnsigned(out, mplsLabel(stack[i]));
    put(out, ",\"tc\":");
    putUnsigned(out, mplsTrafficClass(stack[i]));
    put(out, ",\"s\":");
    putUnsigned(out, mplsBottom(stack[i]));
    out.push_back('}');
  }
}

// A server name as nDPI read it off the wire, in one text token: bytes
// that would split or garble the line (space, control, '%', non-ASCII) as
// %XX.
void putTextToken(std::string& out, std::string_view v) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : v) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f || b == '%') {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    } else {
      out.push_back(c);
    }
  }
}

// A JSON string's contents: quote, backslash and control bytes escaped, and
// bytes beyond ASCII taken as Latin-1 (\u00XX), so that a name off the wire
// that is not UTF-8 still makes a valid line.
void putJsonString(std::string& out, std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : v) {
    const auto b = static_cast<unsigned char>(c);
    if (b == '"' || b == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (b < 0x20 || b >= 0x7f) {
      put(out, "\\u00");
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    } else {
      out.push_back(c);
    }
  }
}

// DPI's label (`dpi: true`), on a flow DPI inspected.
void putAppText(std::string& out, const AppLabel& app) {
  put(out, " app ");
  put(out, applicationName(app));
  put(out, " category ");
  put(out, categoryName(app));
  put(out, " server_name ");
  if (app.serverNameLength() == 0) out.push_back('-');
  putTextToken(out, app.serverName());
  put(out, app.guessed() ? " guessed 1" : " guessed 0");
}

void putAppJson(std::string& out, const AppLabel& app) {
  put(out, ",\"application\":\"");
  putJsonString(out, applicationName(app));
  put(out, "\",\"category\":\"");
  putJsonString(out, categoryName(app));
  put(out, "\",\"server_name\":");
  if (app.serverNameLength() == 0) {
    put(out, "null");
  } else {
    out.push_back('"');
    putJsonString(out, app.serverName());
    out.push_back('"');
  }
  put(out, app.guessed() ? ",\"app_guessed\":true" : ",\"app_guessed\":false");
}

}  // namespace

void appendFlowText(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks) {
  const auto& k = r.key;
  putIsoTime(out, r.first_ms);
  out.push_back(' ');
  putIsoTime(out, r.last_ms);
  put(out, " proto ");
  putUnsigned(out, k.protocol);
  out.push_back(' ');
  if (isIcmp(k)) {
    putAddress(out, k.src_addr, k.ip_version);
    put(out, " -> ");
    putAddress(out, k.dst_addr, k.ip_version);
    put(out, " icmp ");
    putUnsigned(out, k.dst_port >> 8);
    out.push_back('.');
    putUnsigned(out, k.dst_port & 0xFF);
  } else {
    putEndpoint(out, k.src_addr, k.ip_version, k.src_port);
    put(out, " -> ");
    putEndpoint(out, k.dst_addr, k.ip_version, k.dst_port);
  }
  put(out, " vlan ");
  putUnsigned(out, k.vlan_id);
  put(out, " pkts ");
  putUnsigned(out, r.packets);
  put(out, " bytes ");
  putUnsigned(out, r.octets);
  put(out, " flags ");
  putTcpFlags(out, r.tcp_flags);
  put(out, " tos ");
  putUnsigned(out, r.tos);
  put(out, " ttl ");
  putUnsigned(out, r.min_ttl);
  out.push_back('-');
  putUnsigned(out, r.max_ttl);
  putMplsText(out, r.mpls_stack);
  put(out, " end ");
  put(out, toString(r.end_reason));
  // The flow's id (flowId, 148): the same on every line of one flow.
  put(out, " flow_id ");
  putUnsigned(out, r.flow_id);
  if (r.app.inspected()) putAppText(out, r.app);
  if (local_networks != nullptr && !local_networks->empty()) {
    const FlowDirection d = local_networks->direction(k);
    put(out, " direction ");
    put(out, d == FlowDirection::kNone ? "-" : toString(d));
  }
}

void appendFlowJson(std::string& out, const FlowRecord& r, const LocalNetworks* local_networks) {
  const auto& k = r.key;
  put(out, "{\"first\":\"");
  putIsoTime(out, r.first_ms);
  put(out, "\",\"last\":\"");
  putIsoTime(out, r.last_ms);
  put(out, "\",\"first_ms\":");
  putUnsigned(out, r.first_ms);
  put(out, ",\"last_ms\":");
  putUnsigned(out, r.last_ms);
  put(out, ",\"ip_version\":");
  putUnsigned(out, k.ip_version);
  put(out, ",\"proto\":");
  putUnsigned(out, k.protocol);
  put(out, ",\"src\":\"");
  putAddress(out, k.src_addr, k.ip_version);
  put(out, "\",\"src_port\":");
  putUnsigned(out, k.src_port);
  put(out, ",\"dst\":\"");
  putAddress(out, k.dst_addr, k.ip_version);
  put(out, "\",\"dst_port\":");
  putUnsigned(out, k.dst_port);
  put(out, ",\"vlan\":");
  putUnsigned(out, k.vlan_id);
  put(out, ",\"inner_vlan\":");
  putUnsigned(out, k.inner_vlan_id);
  put(out, ",\"ingress_if\":");
  putUnsigned(out, k.ingress_if);
  put(out, ",\"packets\":");
  putUnsigned(out, r.packets);
  put(out, ",\"bytes\":");
  putUnsigned(out, r.octets);
  put(out, ",\"tcp_flags\":");
  putUnsigned(out, r.tcp_flags);
  put(out, ",\"tos\":");
  putUnsigned(out, r.tos);
  put(out, ",\"min_ttl\":");
  putUnsigned(out, r.min_ttl);
  put(out, ",\"max_ttl\":");
  putUnsigned(out, r.max_ttl);
  put(out, ",\"src_mac\":\"");
  putMac(out, r.src_mac);
  put(out, "\",\"dst_mac\":\"");
  putMac(out, r.dst_mac);
  put(out, "\",\"mpls_label\":");
  putUnsigned(out, r.mplsTopLabel());
  put(out, ",\"mpls_labels\":[");
  putMplsJson(out, r.mpls_stack);
  put(out, "],\"flow_id\":");
  putUnsigned(out, r.flow_id);
  if (r.app.inspected()) putAppJson(out, r.app);
  put(out, ",\"end_reason\":\"");
  put(out, toString(r.end_reason));
  if (local_networks != nullptr && !local_networks->empty()) {
    const FlowDirection d = local_networks->direction(k);
    if (d == FlowDirection::kNone) {
      put(out, "\",\"direction\":null}");
    } else {
      put(out, "\",\"direction\":\"");
      put(out, toString(d));
      put(out, "\"}");
    }
    return;
  }
  put(out, "\"}");
}

std::string formatFlowText(const FlowRecord& r, const LocalNetworks* local_networks) {
  std::string line;
  line.reserve(160);
  appendFlowText(line, r, local_networks);
  return line;
}

std::string formatFlowJson(const FlowRecord& r, const LocalNetworks* local_networks) {
  std::string line;
  line.reserve(400);
  appendFlowJson(line, r, local_networks);
  return line;
}

std::unique_ptr<Exporter> makeTextExporter(const TextOptions& options) {
  return std::make_unique<TextExporter>(options);
}

}  // namespace flowfold
