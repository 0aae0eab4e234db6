// Admission control: whether one more VM may be cloned now. Two limits,
// checked before every on-demand clone and every pool refill (a pool hit
// adds no VM and is always admitted): a cap on live VMs (pooled + leased +
// being cloned) and a floor on the host's MemAvailable, so the daemon says
// RESOURCE_EXHAUSTED before the host swaps or the OOM killer picks a victim.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "vmm-glue/result.h"

namespace kf::daemon {

struct AdmissionLimits {
  std::optional<uint64_t> max_live_vms;  // nullopt: no cap
  uint64_t mem_floor_bytes = 0;          // 0: no floor
};

class Admission {
 public:
  using MemReader = std::function<Result<uint64_t>()>;
  // `mem_available` reads MemAvailable (the host's, by default); tests pass
  // their own.
  explicit Admission(AdmissionLimits limits, MemReader mem_available = nullptr);

  // "" when one more VM may start with `live` VMs alive; else why not, for
  // the RESOURCE_EXHAUSTED message. MemAvailable is read only when a floor
  // is set; a host whose /proc/meminfo cannot be read is refused.
  std::string Refusal(uint64_t live) const;
  const AdmissionLimits& limits() const { return limits_; }

 private:
  AdmissionLimits limits_;
  MemReader mem_available_;
};

}  // namespace kf::daemon
