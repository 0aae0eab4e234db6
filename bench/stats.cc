#include "bench/stats.h"

#include <cctype>
#include <cstdlib>
#include <numeric>

#include "factory/clone_batch.h"

namespace kf::bench {

LatencySummary Summarize(const std::vector<uint64_t>& samples) {
  LatencySummary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  s.p50_ns = Percentile(samples, 50);
  s.p90_ns = Percentile(samples, 90);
  s.p99_ns = Percentile(samples, 99);
  s.max_ns = Percentile(samples, 100);
  long double sum = std::accumulate(samples.begin(), samples.end(), 0.0L);
  s.mean_ns = static_cast<uint64_t>(sum / samples.size());
  return s;
}

Result<uint64_t> ParseBytes(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 19) return Error("'" + text + "' is not a size (e.g. 20G, 512M, 1048576)");
  const uint64_t n = std::strtoull(text.substr(0, i).c_str(), nullptr, 10);
  std::string unit = text.substr(i);
  auto ends_with = [&](const std::string& tail) {
    return unit.size() >= tail.size() &&
           unit.compare(unit.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (unit.size() > 2 && ends_with("iB"))
    unit.resize(unit.size() - 2);
  else if (ends_with("B"))
    unit.resize(unit.size() - 1);
  int shift = 0;
  if (unit.empty())
    shift = 0;
  else if (unit == "K" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "m")
    shift = 20;
  else if (unit == "G" || unit == "g")
    shift = 30;
  else if (unit == "T" || unit == "t")
    shift = 40;
  else
    return Error("'" + text + "': unknown unit (K, M, G, T)");
  if (n == 0) return Error("'" + text + "': must be more than 0");
  if (shift > 0 && n > (UINT64_MAX >> shift)) return Error("'" + text + "': too large");
  return n << shift;
}

Result<std::vector<uint64_t>> ParseUintList(const std::string& text, uint64_t max_each) {
  std::vector<uint64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    if (item.empty() || item.size() > 19 ||
        item.find_first_not_of("0123456789") != std::string::npos)
      return Error("'" + text + "' is not a comma-separated list of numbers");
    const uint64_t v = std::strtoull(item.c_str(), nullptr, 10);
    if (v > max_each) return Error("'" + item + "' is more than " + std::to_string(max_each));
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

}  // namespace kf::bench
