// Soak (issue #8, docs/RELIABILITY.md): many GetVM + first Ping + ReleaseVM
// cycles at a given concurrency against a pool, with the daemon's resources
// sampled once the pool has settled after a warm-up and again after the
// run: open descriptors, threads, resident memory and descendant processes
// (zygotes and sandboxes). A leak shows as growth between the two samples;
// the warm-up lets allocator caches and gRPC thread pools reach their size.
#pragma once

#include <cstdint>
#include <string>

#include "bench/progress.h"
#include "bench/target.h"
#include "bench/throughput.h"

namespace kf::bench {

struct DaemonResources {
  uint64_t fds = 0, threads = 0, rss_bytes = 0;
  uint64_t descendants = 0;  // zygotes and sandbox VMMs
};

struct SoakResult {
  int daemon_pid = -1;
  std::string daemon_where;  // how the pid was found; "this process" for --self
  uint64_t warmup_cycles = 0;
  DaemonResources warm, after;
  ThroughputResult cycles;  // the measured run (not the warm-up)
};

struct SoakOptions {
  uint64_t count = 10000;
  uint32_t clients = 32;
  uint32_t pool_size = 8;
};

// The resources of process `pid` (from /proc).
Result<DaemonResources> SampleProcess(int pid);

Result<SoakResult> RunSoak(Target& target, const SoakOptions& options, Progress& progress);

}  // namespace kf::bench
