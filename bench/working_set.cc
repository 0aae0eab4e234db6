#include "bench/working_set.h"

#include "agent/bare/bare_abi.h"
#include "bench/stats.h"
#include "bench/vm_memory.h"
#include "factory/clock.h"
#include "memshare/accounting.h"

namespace kf::bench {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kLinuxAgentBuffer = 64ull << 20;  // agent/linux: DirtyPages' buffer

}  // namespace

Result<WorkingSetResult> RunWorkingSet(Target& target, const WorkingSetOptions& o,
                                       Progress& progress) {
  WorkingSetResult r;
  r.vms_per_step = o.vms;
  if (target.guest() == "linux") {
    r.gpa = 0;
    r.max_pages = kLinuxAgentBuffer / kPage;
  } else {
    r.gpa = KF_BARE_INIT_GPA;
    r.max_pages =
        target.template_mem_bytes() > r.gpa ? (target.template_mem_bytes() - r.gpa) / kPage : 0;
  }
  RETURN_IF_ERROR(target.Configure(Phase{0, std::nullopt}));
  auto stub = target.NewStub();
  {
    CallError err;  // warm-up: the zygote, out of the baseline
    auto warm = target.GetAndPing(*stub, false, &err);
    if (!warm) return Error("working-set: the warm-up VM: " + err.message);
    if (!target.Release(*stub, warm->id, &err)) return Error("working-set: " + err.message);
  }
  for (uint64_t pages : o.pages) {
    WorkingSetStep step;
    step.pages = pages;
    if (pages > r.max_pages) {
      step.skipped = std::to_string(pages) + " pages do not fit: the guest has " +
                     std::to_string(r.max_pages) + " where DirtyPages may write";
      r.steps.push_back(step);
      continue;
    }
    ASSIGN_OR_RETURN(uint64_t before, ReadMemAvailable());
    std::vector<VmSample> vms;
    std::vector<int> pids;
    std::vector<uint64_t> dirty_ns;
    progress.Begin("working set, " + std::to_string(pages) + " pages", o.vms);
    Status failed;
    for (uint64_t i = 0; i < o.vms && failed.ok(); ++i) {
      CallError err;
      auto vm = target.GetAndPing(*stub, true, &err);
      if (!vm) {
        failed = Error("working-set: " + err.message);
        break;
      }
      if (pages > 0) {
        const uint64_t d0 = MonotonicNs();
        auto dirtied = vm->agent->DirtyPages(r.gpa, pages, 0x6b66'0000'0000ull + (pages << 20) + i);
        dirty_ns.push_back(MonotonicNs() - d0);
        if (!dirtied.ok())
          failed = dirtied.error().Context("working-set: " + vm->id + " DirtyPages");
      }
      pids.push_back(vm->pid);
      vms.push_back(std::move(*vm));
      progress.Update(i + 1);
    }
    progress.Done();
    if (failed.ok()) {
      VmMemory m = SampleVmMemory(pids);
      step.vms = pids.size();
      step.pss_per_vm = PerVm(m.pss, step.vms);
      step.rss_per_vm = PerVm(m.rss, step.vms);
      step.private_dirty_per_vm = PerVm(m.private_dirty, step.vms);
      step.mem_available_delta_per_vm = PerVm(Drop(before, m.mem_available), step.vms);
      step.dirty_ms_p50 = Summarize(dirty_ns).p50_ns / 1e6;
    }
    for (auto& vm : vms) {
      vm.agent.reset();
      CallError err;
      if (!target.Release(*stub, vm.id, &err) && failed.ok()) failed = Error(err.message);
    }
    if (!failed.ok()) return failed.error();
    r.steps.push_back(step);
  }
  return r;
}

}  // namespace kf::bench
