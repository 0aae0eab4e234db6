// Memory accounting for clones: what a process costs the host (from
// /proc/<pid>/smaps_rollup), what the host has left (/proc/meminfo), and an
// estimate of the kernel memory KVM keeps per VM, which no /proc file shows.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "vmm-glue/result.h"

namespace kf {

struct ProcessMemory {
  uint64_t rss = 0;            // bytes
  uint64_t pss = 0;            // proportional share: shared pages divided among sharers
  uint64_t private_dirty = 0;  // pages this process alone has written
  uint64_t shared_clean = 0;
  uint64_t anonymous = 0;
};

Result<ProcessMemory> ReadProcessMemory(pid_t pid);
// Parses the text of smaps_rollup (exposed for tests).
Result<ProcessMemory> ParseSmapsRollup(const std::string& text);

// MemAvailable from /proc/meminfo, in bytes.
Result<uint64_t> ReadMemAvailable();

// Kernel memory KVM holds for one VM that /proc does not attribute to the
// process: a fixed part (struct kvm, vCPU, LAPIC, MMU caches) plus shadow
// paging's reverse maps, ~8 bytes per 4 KiB page of slot (ENVIRONMENT.md
// section 4: ~390 KiB for 64 MiB, ~800 KiB for 256 MiB, ~2.8 MiB for 1 GiB).
uint64_t EstimateKvmVmBytes(uint64_t guest_mem_bytes, int vcpus);

}  // namespace kf
