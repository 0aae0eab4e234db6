// Working set: for each number of pages in --dirty-pages, clone `clones`
// VMs, have each one's agent dirty that many 4 KiB pages right after
// hand-out (DirtyPages; a different value per VM, so no two VMs' pages are
// alike and KSM could not merge them), then measure host memory per VM
// against pages dirtied. The VMs of a step are released before the next.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/progress.h"
#include "bench/target.h"

namespace kf::bench {

struct WorkingSetStep {
  uint64_t pages = 0;  // dirtied per VM
  uint64_t vms = 0;
  std::string skipped;  // why this step was not measured
  double pss_per_vm = 0, rss_per_vm = 0, private_dirty_per_vm = 0;  // bytes
  double mem_available_delta_per_vm = 0;                            // bytes
  double dirty_ms_p50 = 0;  // the DirtyPages call, median over the VMs
};

struct WorkingSetResult {
  uint64_t vms_per_step = 0;
  uint64_t gpa = 0;  // where DirtyPages writes (bare: KF_BARE_INIT_GPA; linux: buffer offset 0)
  uint64_t max_pages = 0;  // what fits from gpa
  std::vector<WorkingSetStep> steps;
};

struct WorkingSetOptions {
  std::vector<uint64_t> pages = {0, 256, 1024, 4096};
  uint64_t vms = 16;
};

Result<WorkingSetResult> RunWorkingSet(Target& target, const WorkingSetOptions& options,
                                       Progress& progress);

}  // namespace kf::bench
