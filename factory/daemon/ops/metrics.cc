#include "factory/daemon/ops/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kf::ops {
namespace {

[[noreturn]] void Misuse(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::abort();
}

bool ValidName(const std::string& s, bool colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

void CheckFamily(const std::string& name, const std::vector<std::string>& labels, bool histogram) {
  if (!ValidName(name, true)) Misuse("bad metric name \"" + name + "\"");
  for (const auto& l : labels) {
    if (!ValidName(l, false) || l.compare(0, 2, "__") == 0 || (histogram && l == "le"))
      Misuse(name + ": bad label name \"" + l + "\"");
  }
}

}  // namespace

void Counter::Inc(double by) {
  if (by > 0) value_.fetch_add(by, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  // Buckets are "less than or equal": v == bound counts in that bucket.
  size_t i = 0;
  while (i < bounds_.size() && !(v <= bounds_[i])) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

void FamilyBase::CheckArity(size_t got) const {
  if (got != labels_.size())
    Misuse(name_ + " wants " + std::to_string(labels_.size()) + " label values, got " +
           std::to_string(got));
}

template <>
std::unique_ptr<Counter> Family<Counter>::Make() const {
  return std::make_unique<Counter>();
}
template <>
std::unique_ptr<Gauge> Family<Gauge>::Make() const {
  return std::make_unique<Gauge>();
}
template <>
std::unique_ptr<Histogram> Family<Histogram>::Make() const {
  return std::make_unique<Histogram>(bounds_);
}

void MetricsRegistry::Register(std::unique_ptr<FamilyBase> family) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : families_) {
    // A histogram also owns NAME_bucket, NAME_sum and NAME_count.
    if (f->name() == family->name()) Misuse("metric \"" + family->name() + "\" added twice");
  }
  families_.push_back(std::move(family));
}

CounterFamily& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                           std::vector<std::string> labels) {
  CheckFamily(name, labels, false);
  auto f = std::make_unique<CounterFamily>(name, help, MetricType::kCounter, std::move(labels));
  CounterFamily& ref = *f;
  if (ref.label_names().empty()) ref.Get();
  Register(std::move(f));
  return ref;
}

GaugeFamily& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels) {
  CheckFamily(name, labels, false);
  auto f = std::make_unique<GaugeFamily>(name, help, MetricType::kGauge, std::move(labels));
  GaugeFamily& ref = *f;
  if (ref.label_names().empty()) ref.Get();
  Register(std::move(f));
  return ref;
}

HistogramFamily& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                               std::vector<double> bounds,
                                               std::vector<std::string> labels) {
  CheckFamily(name, labels, true);
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
      Misuse(name + ": buckets must be finite and strictly increasing");
  }
  auto f = std::make_unique<HistogramFamily>(name, help, MetricType::kHistogram, std::move(labels),
                                             std::move(bounds));
  HistogramFamily& ref = *f;
  if (ref.label_names().empty()) ref.Get();
  Register(std::move(f));
  return ref;
}

}  // namespace kf::ops
