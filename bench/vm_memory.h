// Host memory of a set of live VMs, summed over their VMM processes
// (/proc/<pid>/smaps_rollup, memshare/accounting.h), with MemAvailable.
#pragma once

#include <cstdint>
#include <vector>

namespace kf::bench {

struct VmMemory {
  uint64_t processes = 0;                        // VMMs whose smaps_rollup could be read
  uint64_t rss = 0, pss = 0, private_dirty = 0;  // bytes, summed
  uint64_t mem_available = 0;                    // /proc/meminfo, when sampled
};

VmMemory SampleVmMemory(const std::vector<int>& pids);

// "per VM" with a divide-by-zero guard.
inline double PerVm(uint64_t total, uint64_t vms) { return vms ? double(total) / vms : 0.0; }
// The drop of MemAvailable from `before` to `after` (0 if it grew).
inline uint64_t Drop(uint64_t before, uint64_t after) {
  return before > after ? before - after : 0;
}

}  // namespace kf::bench
