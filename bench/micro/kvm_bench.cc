// What the per-clone KVM work costs (issue #6, micro-benchmarks): the calls a
// sandbox VMM makes after fork, one at a time, through vmm-glue/:
//   KVM_CREATE_VM (with the in-kernel irqchip and PIT, as Linux guests have),
//   one memory slot over 128 MiB of a private memfd mapping,
//   KVM_CREATE_VCPU (plus its kvm_run mmap),
//   a full vCPU state restore (regs, sregs, FPU, xsave, MSRs, LAPIC, events,
//   MP state: what a clone restores from its template).
// Each reports wall time per operation. Without a usable /dev/kvm every
// benchmark is skipped with the reason (no figure is invented).
// Run: build/bench/micro/kvm_bench
#include <benchmark/benchmark.h>

#include <string>

#include "memshare/guest_backing.h"
#include "vmm-glue/kvm.h"
#include "vmm-glue/vcpu.h"
#include "vmm-glue/vm.h"

namespace {

constexpr uint64_t kMemBytes = 128ull << 20;

// Opens /dev/kvm once; skips the benchmark when it cannot.
const kf::Kvm* KvmOrSkip(benchmark::State& state) {
  static kf::Result<kf::Kvm> kvm = kf::Kvm::Open();
  if (!kvm.ok()) {
    state.SkipWithError(("no usable KVM: " + kvm.error().message()).c_str());
    return nullptr;
  }
  return &*kvm;
}

kf::VmConfig LinuxLikeConfig() {
  kf::VmConfig c;
  c.irqchip = true;
  c.pit = true;
  return c;
}

void BM_CreateVm(benchmark::State& state) {
  const kf::Kvm* kvm = KvmOrSkip(state);
  if (kvm == nullptr) return;
  for (auto _ : state) {
    auto vm = kf::Vm::Create(*kvm, LinuxLikeConfig());
    if (!vm.ok()) return state.SkipWithError(vm.error().message().c_str());
    benchmark::DoNotOptimize(vm);
  }
}
BENCHMARK(BM_CreateVm)->Unit(benchmark::kMicrosecond);

void BM_MemorySlot128MiB(benchmark::State& state) {
  const kf::Kvm* kvm = KvmOrSkip(state);
  if (kvm == nullptr) return;
  auto fd = kf::CreateMemfd("kvm-bench", kMemBytes);
  if (!fd.ok()) return state.SkipWithError(fd.error().message().c_str());
  auto mem = kf::MapPrivate(fd->get(), kMemBytes);
  if (!mem.ok()) return state.SkipWithError(mem.error().message().c_str());
  for (auto _ : state) {
    state.PauseTiming();
    auto vm = kf::Vm::Create(*kvm, kf::VmConfig{});
    if (!vm.ok()) return state.SkipWithError(vm.error().message().c_str());
    state.ResumeTiming();
    kf::Status s = vm->SetMemorySlot(0, 0, kMemBytes, mem->data());
    if (!s.ok()) return state.SkipWithError(s.error().message().c_str());
    state.PauseTiming();
    vm = kf::Error("dropped");  // the VM goes outside the timing
    state.ResumeTiming();
  }
}
BENCHMARK(BM_MemorySlot128MiB)->Unit(benchmark::kMicrosecond);

void BM_CreateVcpu(benchmark::State& state) {
  const kf::Kvm* kvm = KvmOrSkip(state);
  if (kvm == nullptr) return;
  for (auto _ : state) {
    state.PauseTiming();
    auto vm = kf::Vm::Create(*kvm, LinuxLikeConfig());
    if (!vm.ok()) return state.SkipWithError(vm.error().message().c_str());
    state.ResumeTiming();
    auto vcpu = vm->CreateVcpu(0);
    if (!vcpu.ok()) return state.SkipWithError(vcpu.error().message().c_str());
    benchmark::DoNotOptimize(vcpu);
    state.PauseTiming();
    vcpu = kf::Error("dropped");
    vm = kf::Error("dropped");
    state.ResumeTiming();
  }
}
BENCHMARK(BM_CreateVcpu)->Unit(benchmark::kMicrosecond);

void BM_RestoreVcpuState(benchmark::State& state) {
  const kf::Kvm* kvm = KvmOrSkip(state);
  if (kvm == nullptr) return;
  auto vm = kf::Vm::Create(*kvm, LinuxLikeConfig());
  if (!vm.ok()) return state.SkipWithError(vm.error().message().c_str());
  auto vcpu = vm->CreateVcpu(0);
  if (!vcpu.ok()) return state.SkipWithError(vcpu.error().message().c_str());
  const auto cpuid = kvm->info().supported_cpuid;
  kf::Status set = vcpu->SetCpuid(cpuid);
  if (!set.ok()) return state.SkipWithError(set.error().message().c_str());
  auto msrs = vcpu->ProbeSavableMsrs();
  if (!msrs.ok()) return state.SkipWithError(msrs.error().message().c_str());
  auto saved = vcpu->CaptureState(*msrs, cpuid);
  if (!saved.ok()) return state.SkipWithError(saved.error().message().c_str());
  for (auto _ : state) {
    kf::Status s = vcpu->RestoreState(*saved);
    if (!s.ok()) return state.SkipWithError(s.error().message().c_str());
  }
  state.counters["msrs"] = static_cast<double>(msrs->size());
}
BENCHMARK(BM_RestoreVcpuState)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
