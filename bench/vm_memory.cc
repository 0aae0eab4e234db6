#include "bench/vm_memory.h"

#include "memshare/accounting.h"

namespace kf::bench {

VmMemory SampleVmMemory(const std::vector<int>& pids) {
  VmMemory m;
  auto avail = ReadMemAvailable();
  if (avail.ok()) m.mem_available = *avail;
  for (int pid : pids) {
    auto p = ReadProcessMemory(pid);
    if (!p.ok()) continue;
    ++m.processes;
    m.rss += p->rss;
    m.pss += p->pss;
    m.private_dirty += p->private_dirty;
  }
  return m;
}

}  // namespace kf::bench
