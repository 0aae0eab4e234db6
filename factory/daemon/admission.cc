#include "factory/daemon/admission.h"

#include "memshare/accounting.h"

namespace kf::daemon {

Admission::Admission(AdmissionLimits limits, MemReader mem_available)
    : limits_(limits), mem_available_(std::move(mem_available)) {
  if (!mem_available_) mem_available_ = [] { return ReadMemAvailable(); };
}

std::string Admission::Refusal(uint64_t live) const {
  if (limits_.max_live_vms && live >= *limits_.max_live_vms)
    return "live VMs at the cap (" + std::to_string(live) + " of " +
           std::to_string(*limits_.max_live_vms) + ")";
  if (limits_.mem_floor_bytes == 0) return "";
  auto avail = mem_available_();
  if (!avail.ok()) return "cannot read host memory: " + avail.error().message();
  if (*avail < limits_.mem_floor_bytes)
    return "host MemAvailable " + std::to_string(*avail >> 20) + " MiB is below the floor of " +
           std::to_string(limits_.mem_floor_bytes >> 20) + " MiB";
  return "";
}

}  // namespace kf::daemon
