#include "bench/soak.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "factory/clock.h"
#include "factory/daemon/run_dir.h"

namespace kf::bench {

namespace {

uint64_t CountEntries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  uint64_t n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// Every process's parent, from /proc/*/stat.
std::map<int, int> ParentsOfAll() {
  std::map<int, int> parent;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return parent;
  while (dirent* e = ::readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    const auto stat = daemon::ReadProcStat(pid);
    if (stat && stat->state != 'Z') parent[pid] = stat->ppid;
  }
  ::closedir(d);
  return parent;
}

uint64_t CountDescendants(int root) {
  const auto parent = ParentsOfAll();
  uint64_t n = 0;
  for (const auto& [pid, ppid] : parent) {
    for (int p = ppid, hops = 0; p > 1 && hops < 64; ++hops) {
      if (p == root) {
        ++n;
        break;
      }
      auto it = parent.find(p);
      if (it == parent.end()) break;
      p = it->second;
    }
  }
  return n;
}

// The daemon serving `socket`: its lock file SOCKET.lock holds its pid
// (factory/daemon/run_dir.h).
Result<int> DaemonPid(const std::string& socket) {
  std::ifstream lock(socket + ".lock");
  int pid = 0;
  if (!(lock >> pid) || pid <= 0)
    return Error("cannot read the daemon's pid from " + socket + ".lock");
  return pid;
}

// Waits until the pool is back to its target of ready VMs with nothing
// leased or being cloned: the state the two samples are compared in.
Status WaitSettled(Target& target, uint32_t pool_size) {
  const uint64_t end = MonotonicNs() + 120ull * 1000000000;
  pb::PoolStatus last;
  while (MonotonicNs() < end) {
    ASSIGN_OR_RETURN(last, target.Pool());
    if (last.ready() == pool_size && last.leased() == 0 && last.cloning() == 0)
      return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Error("soak: the pool did not settle in 120 s (ready " + std::to_string(last.ready()) +
               ", leased " + std::to_string(last.leased()) + ", cloning " +
               std::to_string(last.cloning()) + ")");
}

}  // namespace

Result<DaemonResources> SampleProcess(int pid) {
  DaemonResources r;
  const std::string proc = "/proc/" + std::to_string(pid);
  if (::access(proc.c_str(), F_OK) != 0) return Error("process " + std::to_string(pid) + " is gone");
  r.fds = CountEntries(proc + "/fd");
  r.threads = CountEntries(proc + "/task");
  std::ifstream status(proc + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) r.rss_bytes = std::stoull(line.substr(6)) * 1024;
  r.descendants = CountDescendants(pid);
  return r;
}

Result<SoakResult> RunSoak(Target& target, const SoakOptions& o, Progress& progress) {
  SoakResult r;
  RETURN_IF_ERROR(target.Configure(Phase{o.pool_size, std::nullopt}));
  if (target.self()) {
    r.daemon_pid = ::getpid();
    r.daemon_where = "this process (--self: the clients' threads and memory are counted too)";
  } else {
    ASSIGN_OR_RETURN(r.daemon_pid, DaemonPid(target.socket()));
    r.daemon_where = "pid from " + target.socket() + ".lock";
  }
  RETURN_IF_ERROR(target.WaitPoolFull(120000));
  // A running daemon keeps its own pool size (Configure changes only --self's).
  ASSIGN_OR_RETURN(pb::PoolStatus pool, target.Pool());
  const uint32_t pool_size = pool.target();
  ThroughputOptions cycles;
  cycles.clients = o.clients;
  // Enough for every client to run several cycles and the pool to be
  // drained and refilled a few times.
  cycles.count = std::max<uint64_t>({o.count / 10, uint64_t{o.clients} * 4, 1});
  ASSIGN_OR_RETURN(ThroughputResult warm, RunCycles(target, cycles, "soak warm-up", progress));
  r.warmup_cycles = warm.done;
  RETURN_IF_ERROR(WaitSettled(target, pool_size));
  ASSIGN_OR_RETURN(r.warm, SampleProcess(r.daemon_pid));

  cycles.count = o.count;
  ASSIGN_OR_RETURN(r.cycles, RunCycles(target, cycles,
                                       "soak, " + std::to_string(o.clients) + " clients", progress));
  RETURN_IF_ERROR(WaitSettled(target, pool_size));
  ASSIGN_OR_RETURN(r.after, SampleProcess(r.daemon_pid));
  return r;
}

}  // namespace kf::bench
