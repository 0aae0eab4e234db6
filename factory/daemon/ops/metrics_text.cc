// The Prometheus text exposition format, version 0.0.4:
// https://prometheus.io/docs/instrumenting/exposition_formats/
#include <charconv>
#include <cmath>
#include <cstdint>

#include "factory/daemon/ops/metrics.h"

namespace kf::ops {
namespace {

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void Header(const FamilyBase& f, std::string& out) {
  out += "# HELP " + f.name() + " " + EscapeHelp(f.help()) + "\n";
  out += "# TYPE " + f.name() + " " + TypeName(f.type()) + "\n";
}

// {a="x",b="y"} with an optional extra label (le) last; "" when empty.
std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra_name + "=\"" + extra_value + "\"";
  }
  if (!out.empty()) out += "}";
  return out;
}

void Sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  out += labels;
  out += ' ';
  out += FormatMetricValue(v);
  out += '\n';
}

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole numbers as integers ("2147483648", not "2.147483648e+09").
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) return std::to_string(static_cast<int64_t>(v));
  // Shortest round-trip digits; plain decimals ("0.0001", not "1e-04") in
  // the range latencies and ratios live in.
  char buf[64];
  double mag = std::fabs(v);
  auto [end, ec] = mag >= 1e-6 && mag < 1e15
                       ? std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed)
                       : std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

template <>
void Family<Counter>::Render(std::string& out) const {
  Header(*this, out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, c] : children_)
    Sample(out, name(), Labels(label_names(), values), c->Value());
}

template <>
void Family<Gauge>::Render(std::string& out) const {
  Header(*this, out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, g] : children_)
    Sample(out, name(), Labels(label_names(), values), g->Value());
}

template <>
void Family<Histogram>::Render(std::string& out) const {
  Header(*this, out);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, h] : children_) {
    Histogram::Snapshot s = h->Take();
    for (size_t i = 0; i <= s.bounds.size(); ++i) {
      std::string le = i < s.bounds.size() ? FormatMetricValue(s.bounds[i]) : "+Inf";
      Sample(out, name() + "_bucket", Labels(label_names(), values, "le", le),
             static_cast<double>(s.cumulative[i]));
    }
    std::string labels = Labels(label_names(), values);
    Sample(out, name() + "_sum", labels, s.sum);
    Sample(out, name() + "_count", labels, static_cast<double>(s.count));
  }
}

std::string MetricsRegistry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) f->Render(out);
  return out;
}

}  // namespace kf::ops
