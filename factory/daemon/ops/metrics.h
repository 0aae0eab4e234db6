// Prometheus metrics: counters, gauges and histograms with labels, rendered
// in the text exposition format 0.0.4 (metrics_text.cc).
//
//   MetricsRegistry reg;
//   auto& getvm = reg.AddCounter("katafactory_getvm_total", "GetVM calls.", {"code"});
//   getvm.With({"OK"}).Inc();
//   std::string body = reg.Render();
//
// Updates are thread-safe and lock-free for counters and gauges (atomics);
// a histogram takes its own small mutex so a scrape never sees a count that
// disagrees with its buckets. Families hand out references that stay valid
// for the registry's life (until Remove() of that child).
//
// Names and labels are fixed at start-up by the program, so misuse (an
// invalid or duplicate name, the wrong number of label values, unsorted
// buckets) is a programming error: it aborts with a message saying which.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kf::ops {

class Counter {
 public:
  void Inc(double by = 1.0);  // by < 0 is ignored: counters only go up
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: finite upper bounds, strictly increasing; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Latency buckets in seconds, 100 us to 10 s: a clone takes about a
// millisecond, a pool miss or a Linux template boot much longer.
std::vector<double> LatencyBucketsSeconds();

enum class MetricType { kCounter, kGauge, kHistogram };

// The part of a family the renderer needs, whatever its metric type.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return labels_; }
  // Appends this family's text (HELP, TYPE and samples).
  virtual void Render(std::string& out) const = 0;

 protected:
  void CheckArity(size_t got) const;  // aborts on a mismatch

 private:
  std::string name_, help_;
  MetricType type_;
  std::vector<std::string> labels_;
};

// One metric per combination of label values, made on first use.
template <typename M>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The metric for these label values (in label_names() order).
  M& With(const std::vector<std::string>& values) {
    CheckArity(values.size());
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = children_[values];
    if (!slot) slot = Make();
    return *slot;
  }
  // The metric of a family without labels.
  M& Get() { return With({}); }
  // Drops one child (a template deleted): its series leaves the output.
  void Remove(const std::vector<std::string>& values) {
    std::lock_guard<std::mutex> lock(mu_);
    children_.erase(values);
  }
  void Render(std::string& out) const override;

 private:
  std::unique_ptr<M> Make() const;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;  // guarded by mu_
};

// Defined per metric type in metrics.cc (Make) and metrics_text.cc (Render).
template <>
std::unique_ptr<Counter> Family<Counter>::Make() const;
template <>
std::unique_ptr<Gauge> Family<Gauge>::Make() const;
template <>
std::unique_ptr<Histogram> Family<Histogram>::Make() const;
template <>
void Family<Counter>::Render(std::string& out) const;
template <>
void Family<Gauge>::Render(std::string& out) const;
template <>
void Family<Histogram>::Render(std::string& out) const;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class MetricsRegistry {
 public:
  // Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*,
  // not starting "__", and not "le" for histograms. A family without labels
  // shows its sample (0) from the start.
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> labels = {});
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> labels = {});
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help,
                                std::vector<double> bounds, std::vector<std::string> labels = {});

  // The text exposition format 0.0.4, families in the order they were
  // added, series sorted by label values.
  std::string Render() const;
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void Register(std::unique_ptr<FamilyBase> family);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;  // guarded by mu_
};

// Text-format pieces, exposed for tests: a sample value ("3", "0.25",
// "+Inf", "NaN") and an escaped label value (\\, \", \n) / HELP text (\\, \n).
std::string FormatMetricValue(double v);
std::string EscapeLabelValue(const std::string& v);
std::string EscapeHelp(const std::string& v);

}  // namespace kf::ops
