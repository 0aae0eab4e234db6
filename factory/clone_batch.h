// Clone a template N times and measure each clone: the engine behind
// `kata-factory clone` (and, later, the bench). Clones stay alive in the
// returned batch until it is released or destroyed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "factory/agent_client.h"
#include "factory/zygote.h"

namespace kf {

struct CloneRecord {
  int index = 0;
  pid_t pid = -1;
  uint64_t clone_to_ping_ns = 0;  // request to zygote -> first Ping answered
  uint64_t fork_to_ping_ns = 0;   // fork() in the zygote -> first Ping answered
  SandboxTimings timings;
  uint64_t rss = 0, pss = 0, private_dirty = 0;  // bytes, read after all clones exist
};

struct CloneBatchOptions {
  int count = 1;
  // Each clone's sockets go to RUN/clone-<i>/ (agent.sock). Empty: a fresh
  // directory under $TMPDIR (or /tmp), removed on release.
  std::string run_dir;
  bool mergeable = false;
  bool set_identity = true;   // send each clone a fresh identity after its first Ping
  int pings = 0;              // extra Pings per clone, timed: round trip over agent.sock
  std::function<void(int done, int total)> progress;
};

struct CloneSummary {
  int count = 0;
  uint64_t p50_ns = 0, p99_ns = 0, max_ns = 0;         // clone_to_ping
  uint64_t fork_p50_ns = 0, fork_p99_ns = 0;           // fork_to_ping
  uint64_t rtt_count = 0, rtt_p50_ns = 0, rtt_p99_ns = 0;  // Ping round trips (pings > 0)
  uint64_t mem_available_delta = 0;                     // bytes, whole batch
  uint64_t pss_total = 0, rss_total = 0, private_dirty_total = 0;
  uint64_t kvm_estimate_per_clone = 0;
  double wall_s = 0;
};

class CloneBatch {
 public:
  static Result<CloneBatch> Run(LoadedTemplate tmpl, const CloneBatchOptions& options);
  CloneBatch() = default;
  CloneBatch(CloneBatch&&) = default;
  CloneBatch& operator=(CloneBatch&&) = default;
  ~CloneBatch() { (void)Release(); }

  const std::vector<CloneRecord>& records() const { return records_; }
  const CloneSummary& summary() const { return summary_; }
  std::vector<CloneHandle>& clones() { return clones_; }
  // The connection the batch made to each clone's agent (index = clone).
  std::vector<AgentClient>& agents() { return agents_; }
  const std::string& run_dir() const { return run_dir_; }
  // Stops every clone (and then the zygote).
  Status Release();

 private:
  std::unique_ptr<Zygote> zygote_;
  std::vector<CloneHandle> clones_;
  std::vector<AgentClient> agents_;
  std::vector<std::string> clone_dirs_;  // made by the batch, removed on release
  std::string run_dir_;
  bool own_run_dir_ = false;             // made by the batch: removed too
  std::vector<CloneRecord> records_;
  CloneSummary summary_;
};

// p-th percentile (0..100) of values, nearest-rank; 0 for an empty input.
uint64_t Percentile(std::vector<uint64_t> values, double p);

}  // namespace kf
