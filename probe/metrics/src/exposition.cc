// Prometheus text exposition format 0.0.4:
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>
#include <unordered_set>

#include "flowfold/probe/metrics.h"

namespace flowfold {

namespace {

bool isAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAsciiDigit(char c) { return c >= '0' && c <= '9'; }

void appendLabelValue(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void appendHelp(std::string& out, std::string_view help) {
  for (const char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void appendValue(std::string& out, const std::variant<uint64_t, double>& value) {
  char buf[64];
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    const auto r = std::to_chars(buf, buf + sizeof buf, *u);
    out.append(buf, r.ptr);
    return;
  }
  const double d = std::get<double>(value);
  if (std::isnan(d)) {
    out += "NaN";
  } else if (std::isinf(d)) {
    out += d > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest text that parses back to the same double (Go's ParseFloat reads it).
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, r.ptr);
  }
}

// The sample's label block, e.g. {a="1",b="x"}; "" when there are no labels.
std::string labelBlock(const MetricFamily& family, const MetricSample& sample) {
  std::string out;
  if (sample.labels.empty()) return out;
  std::unordered_set<std::string_view> seen;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : sample.labels) {
    if (!isValidLabelName(name)) {
      throw std::invalid_argument("metrics: invalid label name \"" + name + "\" in " +
                                  family.name);
    }
    if (!seen.insert(name).second) {
      throw std::invalid_argument("metrics: label \"" + name + "\" repeated in a sample of " +
                                  family.name);
    }
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    appendLabelValue(out, value);
    out += '"';
  }
  out += '}';
  return out;
}

// Identifies a sample's label set whatever the labels' order.
std::string seriesKey(const MetricSample& sample) {
  std::vector<std::pair<std::string_view, std::string_view>> sorted(sample.labels.begin(),
                                                                     sample.labels.end());
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& [name, value] : sorted) {
    key += name;
    key += '\0';
    key += value;
    key += '\0';
  }
  return key;
}

}  // namespace

bool isValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = isAsciiLetter(c) || c == '_' || c == ':' || (i > 0 && isAsciiDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool isValidLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = isAsciiLetter(c) || c == '_' || (i > 0 && isAsciiDigit(c));
    if (!ok) return false;
  }
  return true;
}

std::string renderPrometheus(const std::vector<MetricFamily>& families) {
  std::string out;
  std::unordered_set<std::string_view> names;
  for (const MetricFamily& family : families) {
    if (!isValidMetricName(family.name)) {
      throw std::invalid_argument("metrics: invalid metric name \"" + family.name + "\"");
    }
    // A second TYPE line for a name makes Prometheus reject the whole scrape.
    if (!names.insert(family.name).second) {
      throw std::invalid_argument("metrics: metric family \"" + family.name +
                                  "\" appears twice");
    }
    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += ' ';
      appendHelp(out, family.help);
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += family.type == MetricFamily::Type::kCounter ? " counter\n" : " gauge\n";

    std::unordered_set<std::string> label_sets;
    for (const MetricSample& sample : family.samples) {
      out += family.name;
      out += labelBlock(family, sample);
      out += ' ';
      appendValue(out, sample.value);
      out += '\n';
      if (!label_sets.insert(seriesKey(sample)).second) {
        throw std::invalid_argument("metrics: two samples of " + family.name +
                                    " have the same labels");
      }
    }
  }
  return out;
}

}  // namespace flowfold
