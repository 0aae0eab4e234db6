// The warm pools' bookkeeping: for each template, the ids of ready VMs
// waiting to be handed out, the target size, the clones under way, and when
// the next refill clone may start (rate cap, back-off after failures).
// Plain data: no threads, no clock of its own, no VMs (those live in the
// core's table); the caller locks. Unit-tested without KVM.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kf::daemon {

struct PoolCounters {
  uint32_t target = 0;
  uint32_t ready = 0;
  uint32_t cloning = 0;
  uint64_t clones_total = 0;
  uint64_t failures_total = 0;
  std::string last_error;
};

class WarmPool {
 public:
  // Adds the template or changes its target and rate; ready VMs above a
  // lowered target stay until handed out.
  void Configure(const std::string& tmpl, uint32_t target, double refill_per_second);
  // Forgets the template; returns the ids that were ready (to release).
  std::vector<std::string> Remove(const std::string& tmpl);
  bool Has(const std::string& tmpl) const { return pools_.count(tmpl) > 0; }

  // The oldest ready VM, taken out of the pool.
  std::optional<std::string> Take(const std::string& tmpl);
  // A VM that left without being taken (died, released): true if it was there.
  bool Erase(const std::string& tmpl, const std::string& id);

  // The template to refill next at `now_ns`: the one furthest below its
  // target (ready + cloning) whose rate and back-off allow a start now.
  std::optional<std::string> NextRefill(uint64_t now_ns) const;
  // When NextRefill may next have something (for the refill thread's
  // sleep), or nullopt when every pool is full.
  std::optional<uint64_t> NextRefillTime() const;
  // A refill clone starts / ends. Success puts `id` in the pool; failure
  // backs the template off: backoff_ns, doubling per consecutive failure
  // up to 30 s.
  void BeginClone(const std::string& tmpl, uint64_t now_ns);
  // False when the template was removed meanwhile (the caller releases id).
  bool CloneSucceeded(const std::string& tmpl, const std::string& id);
  void CloneFailed(const std::string& tmpl, uint64_t now_ns, uint64_t backoff_ns,
                   const std::string& error);

  PoolCounters Counters(const std::string& tmpl) const;
  std::vector<std::string> Templates() const;

 private:
  struct Pool {
    uint32_t target = 0;
    double rate = 0;
    std::deque<std::string> ready;
    uint32_t cloning = 0;
    uint64_t not_before_ns = 0;  // rate cap and back-off
    uint64_t current_backoff_ns = 0;
    uint64_t clones_total = 0, failures_total = 0;
    std::string last_error;
    uint32_t Deficit() const;
  };
  std::map<std::string, Pool> pools_;
};

}  // namespace kf::daemon
