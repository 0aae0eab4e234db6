// Density: clone and keep alive (GetVM, first Ping, the agent connection
// then closed; the VM stays leased) until --count VMs live or the host's
// MemAvailable has dropped by --mem-budget, recording a point every `step`
// VMs: live VMs, host memory per VM three ways, and the GetVM latency of
// the last batch. With KSM, then: ksmd on, settled, and memory again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/host_limits.h"
#include "bench/ksm.h"
#include "bench/progress.h"
#include "bench/stats.h"
#include "bench/target.h"

namespace kf::bench {

enum class DensityStop { kGoOn, kCount, kBudget };

// Pure: whether to clone another VM. Stops at `count` live VMs, or when the
// next VM, at the average cost so far, would take the MemAvailable drop
// past `mem_budget` (0: no budget).
DensityStop DensityStopRule(uint64_t live, uint64_t count, uint64_t mem_budget, uint64_t mem_drop);
// VMs between two points: about 20 points over `count`, at least 1.
uint64_t DensityStep(uint64_t count);

struct DensityPoint {
  uint64_t live = 0;
  double elapsed_s = 0;
  double mem_available_delta_per_vm = 0;  // bytes: MemAvailable drop since the baseline / live
  double pss_per_vm = 0, rss_per_vm = 0,
         private_dirty_per_vm = 0;  // bytes: VMM smaps_rollup sums / live
  uint64_t kvm_estimate_per_vm =
      0;                       // bytes: memshare EstimateKvmVmBytes (kernel memory /proc misses)
  LatencySummary batch_total;  // GetVM call -> first Ping, the VMs since the previous point
};

struct DensityKsm {
  std::string skipped;  // why KSM was not measured
  KsmSettings saved;    // put back afterwards
  KsmCounters before, after;
  double settle_s = 0;
  double pss_per_vm_before = 0, pss_per_vm_after = 0;
  double mem_available_delta_per_vm_before = 0, mem_available_delta_per_vm_after = 0;
  uint64_t saved_bytes = 0;  // (pages_sharing after - before) * 4096
};

struct DensityResult {
  uint64_t count = 0, mem_budget = 0, step = 0;
  uint64_t live = 0;
  std::string stop_reason;  // "count", "mem-budget", or the failure that stopped it
  HostLimits limits;
  std::vector<std::string> limit_actions;
  uint64_t baseline_mem_available = 0;
  // KVM's kernel memory for one more vCPU (memshare EstimateKvmVmBytes),
  // for capacity plans of templates with more vCPUs than this one.
  uint64_t kvm_estimate_per_vcpu = 0;
  LatencySummary total;  // GetVM call -> first Ping, every VM
  std::vector<DensityPoint> points;
  bool ksm_requested = false;
  DensityKsm ksm;
};

struct DensityOptions {
  uint64_t count = 1000;
  uint64_t mem_budget = 0;  // bytes of MemAvailable drop; 0: none
  bool ksm = false;
};

// Plans host limits first (LimitPlan): refuses when `count` cannot fit.
Result<DensityResult> RunDensity(Target& target, const DensityOptions& options, Progress& progress);

}  // namespace kf::bench
