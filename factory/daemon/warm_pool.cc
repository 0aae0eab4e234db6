#include "factory/daemon/warm_pool.h"

#include <algorithm>

namespace kf::daemon {

namespace {
constexpr uint64_t kMaxBackoffNs = 30'000'000'000ull;
}

uint32_t WarmPool::Pool::Deficit() const {
  const uint64_t have = ready.size() + cloning;
  return have >= target ? 0 : static_cast<uint32_t>(target - have);
}

void WarmPool::Configure(const std::string& tmpl, uint32_t target, double refill_per_second) {
  Pool& p = pools_[tmpl];
  p.target = target;
  p.rate = refill_per_second > 0 ? refill_per_second : 0;
}

std::vector<std::string> WarmPool::Remove(const std::string& tmpl) {
  auto it = pools_.find(tmpl);
  if (it == pools_.end()) return {};
  std::vector<std::string> ids(it->second.ready.begin(), it->second.ready.end());
  pools_.erase(it);
  return ids;
}

std::optional<std::string> WarmPool::Take(const std::string& tmpl) {
  auto it = pools_.find(tmpl);
  if (it == pools_.end() || it->second.ready.empty()) return std::nullopt;
  std::string id = std::move(it->second.ready.front());
  it->second.ready.pop_front();
  return id;
}

bool WarmPool::Erase(const std::string& tmpl, const std::string& id) {
  auto it = pools_.find(tmpl);
  if (it == pools_.end()) return false;
  auto& q = it->second.ready;
  auto pos = std::find(q.begin(), q.end(), id);
  if (pos == q.end()) return false;
  q.erase(pos);
  return true;
}

std::optional<std::string> WarmPool::NextRefill(uint64_t now_ns) const {
  const std::string* best = nullptr;
  uint32_t best_deficit = 0;
  for (const auto& [name, p] : pools_) {
    const uint32_t d = p.Deficit();
    if (d == 0 || p.not_before_ns > now_ns) continue;
    if (d > best_deficit) best = &name, best_deficit = d;
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::optional<uint64_t> WarmPool::NextRefillTime() const {
  std::optional<uint64_t> next;
  for (const auto& [name, p] : pools_)
    if (p.Deficit() > 0 && (!next || p.not_before_ns < *next)) next = p.not_before_ns;
  return next;
}

void WarmPool::BeginClone(const std::string& tmpl, uint64_t now_ns) {
  Pool& p = pools_[tmpl];
  ++p.cloning;
  if (p.rate > 0) p.not_before_ns = now_ns + static_cast<uint64_t>(1e9 / p.rate);
}

bool WarmPool::CloneSucceeded(const std::string& tmpl, const std::string& id) {
  auto it = pools_.find(tmpl);
  if (it == pools_.end()) return false;
  Pool& p = it->second;
  if (p.cloning > 0) --p.cloning;
  ++p.clones_total;
  p.current_backoff_ns = 0;
  p.ready.push_back(id);
  return true;
}

void WarmPool::CloneFailed(const std::string& tmpl, uint64_t now_ns, uint64_t backoff_ns,
                           const std::string& error) {
  auto it = pools_.find(tmpl);
  if (it == pools_.end()) return;
  Pool& p = it->second;
  if (p.cloning > 0) --p.cloning;
  ++p.failures_total;
  p.last_error = error;
  p.current_backoff_ns =
      p.current_backoff_ns == 0 ? backoff_ns : std::min(p.current_backoff_ns * 2, kMaxBackoffNs);
  p.not_before_ns = std::max(p.not_before_ns, now_ns + p.current_backoff_ns);
}

PoolCounters WarmPool::Counters(const std::string& tmpl) const {
  PoolCounters c;
  auto it = pools_.find(tmpl);
  if (it == pools_.end()) return c;
  const Pool& p = it->second;
  c.target = p.target;
  c.ready = static_cast<uint32_t>(p.ready.size());
  c.cloning = p.cloning;
  c.clones_total = p.clones_total;
  c.failures_total = p.failures_total;
  c.last_error = p.last_error;
  return c;
}

std::vector<std::string> WarmPool::Templates() const {
  std::vector<std::string> names;
  for (const auto& [name, p] : pools_) names.push_back(name);
  return names;
}

}  // namespace kf::daemon
