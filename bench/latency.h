// Latency: GetVM to the agent's first Ping, one VM at a time, each
// released before the next, for pool hits (the pool full before every
// call) and pool misses (no pool: each GetVM clones).
#pragma once

#include <cstdint>
#include <string>

#include "bench/progress.h"
#include "bench/stats.h"
#include "bench/target.h"

namespace kf::bench {

struct LatencyRun {
  std::string skipped;  // why this run was not measured ("" when it was)
  uint32_t pool_size = 0;
  uint64_t count = 0, pool_hits = 0, failures = 0;
  std::string first_error;
  LatencySummary get_vm;         // client: GetVM call -> reply
  LatencySummary first_ping;     // client: reply -> agent.sock connected, Ready, Ping answered
  LatencySummary total;          // client: GetVM call -> first Ping answered
  LatencySummary daemon_get_vm;  // the daemon's own total_ns of the GetVM
  LatencySummary release;        // client: ReleaseVM call -> reply (the VMM has exited)
  // Pool misses only: the new sandbox's own phases, as the daemon reports
  // them (pb::Timings sandbox_*_ns).
  LatencySummary sandbox_fork, sandbox_map, sandbox_create_vm, sandbox_restore;
};

struct LatencyResult {
  LatencyRun pool_hit, pool_miss;
};

struct LatencyOptions {
  uint64_t count = 200;        // per run
  uint32_t hit_pool_size = 4;  // --self: the pool for the hit run
};

// Pool misses against a running daemon are measured only when its pool for
// the template is empty by configuration (target 0); pool hits only when it
// has one.
Result<LatencyResult> RunLatency(Target& target, const LatencyOptions& options, Progress& progress);

}  // namespace kf::bench
