#include "bench/density.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "bench/vm_memory.h"
#include "factory/clock.h"
#include "memshare/accounting.h"

namespace kf::bench {

namespace {

constexpr int kKsmSettleTimeoutS = 300;

// Puts KSM's settings back however density ends.
struct KsmRestore {
  const Ksm* ksm = nullptr;
  KsmSettings saved;
  ~KsmRestore() {
    if (ksm != nullptr) (void)ksm->Write(saved);
  }
};

}  // namespace

DensityStop DensityStopRule(uint64_t live, uint64_t count, uint64_t budget, uint64_t drop) {
  if (live >= count) return DensityStop::kCount;
  if (budget == 0) return DensityStop::kGoOn;
  if (drop >= budget) return DensityStop::kBudget;
  const uint64_t per_vm = live > 0 ? drop / live : 0;
  if (drop + per_vm > budget) return DensityStop::kBudget;
  return DensityStop::kGoOn;
}

uint64_t DensityStep(uint64_t count) { return std::max<uint64_t>(1, (count + 19) / 20); }

Result<DensityResult> RunDensity(Target& target, const DensityOptions& o, Progress& progress) {
  DensityResult r;
  r.count = o.count;
  r.mem_budget = o.mem_budget;
  r.step = DensityStep(o.count);
  r.ksm_requested = o.ksm;

  // Limits: plan, refuse or raise.
  ASSIGN_OR_RETURN(r.limits, ReadHostLimits());
  const LimitPlan plan = PlanLimits(r.limits, o.count, CostsFor(target.guest(), target.self()));
  if (!plan.refusal.empty()) return Error("density: " + plan.refusal);
  RETURN_IF_ERROR(ApplyLimits(plan, r.limits, &r.limit_actions));
  struct Restore {
    LimitPlan plan;
    HostLimits before;
    ~Restore() { RestoreLimits(plan, before); }
  } restore{plan, r.limits};
  for (const auto& a : r.limit_actions) progress.Note(a);

  Ksm ksm;
  KsmRestore ksm_restore;
  if (o.ksm) {
    r.ksm.skipped = ksm.UnavailableReason();
    if (!r.ksm.skipped.empty()) return Error("--ksm: " + r.ksm.skipped);
    ASSIGN_OR_RETURN(r.ksm.saved, ksm.ReadSettings());
  }

  // No pool (every VM is a clone kept), no cap; a MemAvailable floor of
  // 256 MiB keeps the host alive whatever the budget says.
  RETURN_IF_ERROR(target.Configure(Phase{0, std::nullopt, 256ull << 20}));
  auto stub = target.NewStub();
  {
    CallError err;  // warm-up: the zygote and its template, out of the baseline
    auto warm = target.GetAndPing(*stub, false, &err);
    if (!warm) return Error("density: the warm-up VM: " + err.message);
    if (!target.Release(*stub, warm->id, &err)) return Error("density: " + err.message);
  }
  ASSIGN_OR_RETURN(r.baseline_mem_available, ReadMemAvailable());
  const int vcpus = std::max<int>(1, static_cast<int>(target.template_vcpus()));
  const uint64_t kvm_estimate = EstimateKvmVmBytes(target.template_mem_bytes(), vcpus);
  r.kvm_estimate_per_vcpu =
      EstimateKvmVmBytes(target.template_mem_bytes(), vcpus + 1) - kvm_estimate;

  std::vector<std::string> ids;
  std::vector<int> pids;
  std::vector<uint64_t> all, batch;
  const uint64_t t0 = MonotonicNs();
  uint64_t drop = 0;
  auto record = [&] {
    VmMemory m = SampleVmMemory(pids);
    drop = Drop(r.baseline_mem_available, m.mem_available);
    DensityPoint p;
    p.live = pids.size();
    p.elapsed_s = double(MonotonicNs() - t0) / 1e9;
    p.mem_available_delta_per_vm = PerVm(drop, p.live);
    p.pss_per_vm = PerVm(m.pss, p.live);
    p.rss_per_vm = PerVm(m.rss, p.live);
    p.private_dirty_per_vm = PerVm(m.private_dirty, p.live);
    p.kvm_estimate_per_vm = kvm_estimate;
    p.batch_total = Summarize(batch);
    batch.clear();
    r.points.push_back(p);
  };
  progress.Begin("density", o.count);
  while (true) {
    // MemAvailable is cheap: checked before every clone for the budget.
    if (o.mem_budget != 0) {
      auto avail = ReadMemAvailable();
      if (avail.ok()) drop = Drop(r.baseline_mem_available, *avail);
    }
    const DensityStop stop = DensityStopRule(ids.size(), o.count, o.mem_budget, drop);
    if (stop != DensityStop::kGoOn) {
      r.stop_reason = stop == DensityStop::kCount ? "count" : "mem-budget";
      break;
    }
    CallError err;
    auto vm = target.GetAndPing(*stub, false, &err);
    if (!vm) {
      r.stop_reason = err.message;  // RESOURCE_EXHAUSTED (floor), EMFILE, ...
      progress.Note("density stopped at " + std::to_string(ids.size()) +
                    " live VMs: " + err.message);
      break;
    }
    ids.push_back(vm->id);
    pids.push_back(vm->pid);
    all.push_back(vm->get_ns + vm->ping_ns);
    batch.push_back(vm->get_ns + vm->ping_ns);
    progress.Update(ids.size());
    if (ids.size() % r.step == 0) record();
  }
  if (!batch.empty() || r.points.empty()) record();
  progress.Done();
  r.live = ids.size();
  r.total = Summarize(all);

  if (o.ksm && r.live > 0) {
    ksm_restore.ksm = &ksm;
    ksm_restore.saved = r.ksm.saved;
    const DensityPoint& last = r.points.back();
    r.ksm.pss_per_vm_before = last.pss_per_vm;
    r.ksm.mem_available_delta_per_vm_before = last.mem_available_delta_per_vm;
    ASSIGN_OR_RETURN(r.ksm.before, ksm.ReadCounters());
    progress.Begin("density, KSM merging", kKsmSettleTimeoutS);
    const uint64_t k0 = MonotonicNs();
    auto after = ksm.MergeAndSettle(kKsmSettleTimeoutS,
                                    [&] { progress.Update((MonotonicNs() - k0) / 1000000000ull); });
    progress.Done();
    if (!after.ok()) return after.error().Context("density: KSM");
    r.ksm.after = *after;
    r.ksm.settle_s = double(MonotonicNs() - k0) / 1e9;
    r.ksm.saved_bytes = r.ksm.after.pages_sharing > r.ksm.before.pages_sharing
                            ? (r.ksm.after.pages_sharing - r.ksm.before.pages_sharing) * 4096
                            : 0;
    // MemAvailable lags the merge: the pages KSM frees first land on the
    // per-CPU free lists, which NR_FREE_PAGES does not count, and per-CPU
    // counter deltas are folded in every vm.stat_interval (1 s). Read it
    // until two reads a second apart agree (at most 5 s), or the "after"
    // figure is the "before" one (it was, to the byte, in the first runs).
    auto settled = ReadMemAvailable();
    for (int i = 0; i < 5 && settled.ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      auto again = ReadMemAvailable();
      if (!again.ok() || *again == *settled) break;
      settled = again;
    }
    VmMemory m = SampleVmMemory(pids);
    r.ksm.pss_per_vm_after = PerVm(m.pss, r.live);
    r.ksm.mem_available_delta_per_vm_after =
        PerVm(Drop(r.baseline_mem_available, m.mem_available), r.live);
  }

  // An in-process daemon releases them all at once when it is stopped;
  // a running daemon's are released one by one.
  if (target.self()) return r;
  progress.Begin("density, releasing", ids.size());
  uint64_t released = 0;
  for (const auto& id : ids) {
    CallError err;
    if (!target.Release(*stub, id, &err) && r.stop_reason == "count")
      progress.Note("release: " + err.message);
    progress.Update(++released);
  }
  progress.Done();
  return r;
}

}  // namespace kf::bench
