#include "bench/host_limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace kf::bench {

namespace {

// Descriptors and tasks this process and the bench itself need besides
// the VMs (gRPC threads, the zygote, stdio, the template).
constexpr uint64_t kFdSlack = 256;
constexpr uint64_t kTaskSlack = 512;
constexpr uint64_t kPidMaxCeiling = 4194304;  // PID_MAX_LIMIT on 64-bit

uint64_t ReadUintFile(const std::string& path) {
  std::ifstream f(path);
  uint64_t v = 0;
  f >> v;
  return f ? v : 0;
}

bool WriteFile(const std::string& path, uint64_t value) {
  std::ofstream f(path);
  f << value << "\n";
  f.flush();
  return static_cast<bool>(f);
}

uint64_t Lim(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); }

}  // namespace

Result<HostLimits> ReadHostLimits() {
  HostLimits l;
  l.root = ::geteuid() == 0;
  l.pid_max = ReadUintFile("/proc/sys/kernel/pid_max");
  l.threads_max = ReadUintFile("/proc/sys/kernel/threads-max");
  l.max_map_count = ReadUintFile("/proc/sys/vm/max_map_count");
  l.nr_open = ReadUintFile("/proc/sys/fs/nr_open");
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) < 0) return Error::Sys("getrlimit RLIMIT_NOFILE");
  l.nofile_soft = Lim(r.rlim_cur);
  l.nofile_hard = Lim(r.rlim_max);
  if (::getrlimit(RLIMIT_NPROC, &r) < 0) return Error::Sys("getrlimit RLIMIT_NPROC");
  l.nproc_soft = Lim(r.rlim_cur);
  l.nproc_hard = Lim(r.rlim_max);
  return l;
}

VmCosts CostsFor(const std::string& guest, bool self_daemon) {
  VmCosts c;
  c.fds = self_daemon ? 3 : 0;         // control socket, pidfd, one spare
  c.tasks = guest == "linux" ? 3 : 1;  // linux VMM: main, vCPU, device threads
  return c;
}

LimitPlan PlanLimits(const HostLimits& l, uint64_t vms, const VmCosts& costs) {
  LimitPlan plan;
  const uint64_t fds = vms * costs.fds + kFdSlack;
  const uint64_t tasks = vms * costs.tasks + kTaskSlack;
  const std::string n = std::to_string(vms);
  if (fds > l.nofile_soft) {
    if (fds <= l.nofile_hard) {
      plan.nofile_wanted = fds;
    } else if (l.root && (l.nr_open == 0 || fds <= l.nr_open)) {
      plan.nofile_wanted = fds;
      plan.raise_nofile_hard = true;
    } else {
      plan.refusal =
          n + " live VMs need about " + std::to_string(fds) +
          " open files in this process (the in-process daemon holds " + std::to_string(costs.fds) +
          " per VM); RLIMIT_NOFILE is " + std::to_string(l.nofile_soft) + " (hard " +
          std::to_string(l.nofile_hard) + ")" +
          (l.root ? " and fs.nr_open caps it at " + std::to_string(l.nr_open) +
                        ": raise fs.nr_open (sysctl fs.nr_open=" + std::to_string(fds) + ")"
                  : ": run as root, or raise the hard limit (ulimit -Hn " + std::to_string(fds) +
                        ")") +
          ", or lower --count";
      return plan;
    }
  }
  if (tasks > l.pid_max) {
    if (l.root && tasks <= kPidMaxCeiling) {
      plan.pid_max_wanted = tasks;
    } else {
      plan.refusal = n + " live VMs need about " + std::to_string(tasks) +
                     " process ids; kernel.pid_max is " + std::to_string(l.pid_max) +
                     (l.root ? "" : ": run as root (the bench raises it), or") + " lower --count";
      return plan;
    }
  }
  if (l.threads_max != 0 && tasks > l.threads_max) {
    plan.refusal = n + " live VMs need about " + std::to_string(tasks) +
                   " tasks; kernel.threads-max is " + std::to_string(l.threads_max) +
                   ": raise it (sysctl kernel.threads-max) or lower --count";
    return plan;
  }
  if (!l.root && tasks > l.nproc_soft) {
    plan.refusal = n + " live VMs need about " + std::to_string(tasks) +
                   " processes of this user; RLIMIT_NPROC is " + std::to_string(l.nproc_soft) +
                   ": raise it (ulimit -u), run as root, or lower --count";
    return plan;
  }
  return plan;
}

Status ApplyLimits(const LimitPlan& plan, const HostLimits& before,
                   std::vector<std::string>* actions) {
  if (plan.nofile_wanted != 0) {
    rlimit r{};
    r.rlim_cur = plan.nofile_wanted;
    r.rlim_max = plan.raise_nofile_hard ? std::max(plan.nofile_wanted, before.nofile_hard)
                                        : before.nofile_hard;
    if (::setrlimit(RLIMIT_NOFILE, &r) < 0)
      return Error::Sys("setrlimit RLIMIT_NOFILE to " + std::to_string(plan.nofile_wanted));
    actions->push_back("raised RLIMIT_NOFILE from " + std::to_string(before.nofile_soft) + " to " +
                       std::to_string(plan.nofile_wanted));
  }
  if (plan.pid_max_wanted != 0) {
    if (!WriteFile("/proc/sys/kernel/pid_max", plan.pid_max_wanted))
      return Error::Sys("writing /proc/sys/kernel/pid_max");
    actions->push_back("raised kernel.pid_max from " + std::to_string(before.pid_max) + " to " +
                       std::to_string(plan.pid_max_wanted) + " (put back afterwards)");
  }
  return Status::Ok();
}

void RestoreLimits(const LimitPlan& plan, const HostLimits& before) {
  if (plan.pid_max_wanted != 0) WriteFile("/proc/sys/kernel/pid_max", before.pid_max);
}

}  // namespace kf::bench
