// A cgroup v2 directory per sandbox VMM, with memory.max and pids.max, where
// the host lets the daemon write cgroup v2 (docs/RELIABILITY.md "The jail").
//
// Layout, under the cgroup the daemon was started in (CG; under systemd the
// unit's own cgroup, which needs Delegate=yes):
//   CG/kf-daemon/        the daemon and its zygotes (cgroup v2 allows no
//                        processes in a cgroup that hands controllers down)
//   CG/kf-sandboxes/<id> one per clone, memory and pids controllers on
// A sandbox starts life in its directory: the zygote forks it there
// (ForkIntoCgroup, below), so all it allocates is charged there from the
// start; where the kernel refuses that, the sandbox moves itself in
// (EnterCgroup) before it maps guest memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

enum class CgroupMode {
  kAuto,      // use cgroups where cgroup v2 is writable; say why not otherwise
  kOff,       // never
  kRequired,  // the daemon refuses to start without them
};
std::optional<CgroupMode> ParseCgroupMode(std::string_view name);
const char* CgroupModeName(CgroupMode mode);

struct CgroupLimits {
  uint64_t memory_max_bytes = 0;  // 0: "max" (no limit)
  uint64_t pids_max = 0;          // 0: "max"
};

// The calling process's cgroup v2 directory (mount point + /proc/self/cgroup
// path), or an error saying why there is none (no cgroup2 mount, v1 only).
Result<std::string> OwnCgroupDir();

// What Setup(kAuto) would find here, read without changing anything (for
// `kata-factory host`): the directory the sandboxes' cgroups would go
// under, or why there would be none.
struct CgroupProbe {
  bool usable = false;
  std::string base;    // CG
  std::string reason;  // when not usable
};
CgroupProbe ProbeSandboxCgroups();

class SandboxCgroups {
 public:
  // kOff, or kAuto where cgroup v2 cannot be used: a disabled instance whose
  // reason() says why. kRequired where it cannot: the error.
  static Result<SandboxCgroups> Setup(CgroupMode mode);
  SandboxCgroups() = default;

  bool enabled() const { return !parent_.empty(); }
  // Enabled: the directory holding the sandboxes'; disabled: why not.
  const std::string& description() const { return description_; }

  // Creates kf-sandboxes/<id> with the limits; returns its O_DIRECTORY fd
  // for EnterCgroup in the sandbox.
  Result<UniqueFd> Create(const std::string& id, const CgroupLimits& limits) const;
  // Kills whatever is left in it (cgroup.kill) and removes it. Call after
  // the sandbox was reaped; quiet when there is nothing to remove.
  void Remove(const std::string& id) const;
  // Removes every empty sandbox directory (what a daemon that died left,
  // once CleanLeftovers killed its processes). Returns a line per removal.
  std::vector<std::string> RemoveEmpty() const;

  std::string DirFor(const std::string& id) const { return parent_ + "/" + id; }

 private:
  std::string parent_;       // CG/kf-sandboxes
  std::string description_;
};

// In the forked sandbox: moves the calling process into the cgroup `dirfd`.
Status EnterCgroup(int dirfd);

// fork() whose child starts life in the cgroup `dirfd` (clone3 with
// CLONE_INTO_CGROUP, Linux 5.7). Why: moving a process (EnterCgroup) takes
// the cgroup threadgroup lock for writing, which waits for an RCU grace
// period: 11.5 ms p50 of each clone in L1 (docs/BENCHMARKS.md); a child born
// in its cgroup takes that lock for reading only. Returns as fork() does;
// *born_in_cgroup says whether the child is already there. Where the kernel
// or a container's seccomp profile refuses clone3 (ENOSYS), it is a plain
// fork() and the child must EnterCgroup itself: same result, slower.
//
// The child runs like one after vfork() in one respect: glibc's fork() is
// bypassed, so glibc's cached thread id of the child's main thread is the
// parent's. glibc 2.34+ raise()/abort() ask the kernel for the id; the
// sandbox never pthread_kill()s its main thread from another thread and
// uses no robust or priority-inheritance mutexes, which would read it. Only
// for a single-threaded caller (the zygote), like fork() there.
pid_t ForkIntoCgroup(int dirfd, bool* born_in_cgroup);

}  // namespace kf
