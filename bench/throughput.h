// Throughput: K client threads, each on its own gRPC channel, each looping
// GetVM, first Ping, ReleaseVM until `count` VMs have been handed out in
// all; pool misses (--self runs the daemon without a pool, so every GetVM
// clones). Clones per second = VMs handed out and pinged / wall time.
#pragma once

#include <cstdint>
#include <string>

#include "bench/progress.h"
#include "bench/stats.h"
#include "bench/target.h"

namespace kf::bench {

struct ThroughputResult {
  uint32_t clients = 0;
  uint32_t pool_size = 0;
  uint64_t requested = 0, done = 0, failures = 0, pool_hits = 0;
  std::string first_error;
  double wall_s = 0;
  double vms_per_second = 0;  // done / wall_s
  LatencySummary total;       // per VM: GetVM call -> first Ping answered, under load
  LatencySummary get_vm;      // per VM: GetVM call -> reply
  LatencySummary release;     // per VM: ReleaseVM call -> reply
};

struct ThroughputOptions {
  uint64_t count = 1000;
  uint32_t clients = 2;
};

Result<ThroughputResult> RunThroughput(Target& target, const ThroughputOptions& options,
                                       Progress& progress);

// The client loop alone, against the daemon as it is configured (no
// restart, no warm-up VM): what RunThroughput times, and what the soak
// (bench/soak.h) repeats. `label` names the progress bar.
Result<ThroughputResult> RunCycles(Target& target, const ThroughputOptions& options,
                                   const std::string& label, Progress& progress);

}  // namespace kf::bench
