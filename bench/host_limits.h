// What limits thousands of live VMs on a host: process ids (every sandbox
// VMM is a process, a Linux guest's has 3 threads), open files (the
// in-process daemon holds each VM's control socket and pidfd), the
// per-user process limit, and vm.max_map_count (per process; reported).
// Density plans against them before it starts: raises what it may (the
// soft open-file limit up to the hard one; as root the hard one and
// kernel.pid_max), and refuses, saying which limit and how to lift it,
// when the count cannot fit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::bench {

struct HostLimits {
  bool root = false;
  uint64_t pid_max = 0;                       // /proc/sys/kernel/pid_max
  uint64_t threads_max = 0;                   // /proc/sys/kernel/threads-max
  uint64_t max_map_count = 0;                 // /proc/sys/vm/max_map_count (per process)
  uint64_t nr_open = 0;                       // /proc/sys/fs/nr_open: the ceiling of RLIMIT_NOFILE
  uint64_t nofile_soft = 0, nofile_hard = 0;  // RLIMIT_NOFILE of this process
  uint64_t nproc_soft = 0, nproc_hard = 0;    // RLIMIT_NPROC (threads of this user)
};

Result<HostLimits> ReadHostLimits();

// Per live VM, what this process and the host spend.
struct VmCosts {
  uint64_t fds = 0;    // in this process (the in-process daemon's); 0 against a socket
  uint64_t tasks = 1;  // kernel tasks (pids): the VMM process and its threads
};
VmCosts CostsFor(const std::string& guest, bool self_daemon);

struct LimitPlan {
  uint64_t nofile_wanted = 0;  // raise RLIMIT_NOFILE to this (0: as it is)
  bool raise_nofile_hard = false;
  uint64_t pid_max_wanted = 0;  // write kernel.pid_max (0: as it is)
  std::string refusal;          // non-empty: the count cannot fit, and why
};

// Pure: what `vms` live VMs need against `limits`.
LimitPlan PlanLimits(const HostLimits& limits, uint64_t vms, const VmCosts& costs);

// Carries out a plan (one line per change in `actions`). kernel.pid_max is
// put back by RestoreLimits.
Status ApplyLimits(const LimitPlan& plan, const HostLimits& before,
                   std::vector<std::string>* actions);
void RestoreLimits(const LimitPlan& plan, const HostLimits& before);

}  // namespace kf::bench
