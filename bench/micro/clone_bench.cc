// The memory side of a clone (issue #6, micro-benchmarks), no KVM needed:
//   fork() of a process that maps a 128 MiB template memfd privately with
//   its first 64 MiB touched (the zygote's situation: the child inherits the
//   page tables), child _exit, parent waitpid;
//   one copy-on-write fault: the first write to a 4 KiB page of a private
//   mapping of a populated memfd (what a clone pays per page it dirties);
//   a read fault on the same kind of mapping (a page shared with the template).
// Run: build/bench/micro/clone_bench
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "memshare/guest_backing.h"

namespace {

constexpr uint64_t kMemBytes = 128ull << 20;
constexpr uint64_t kTouched = 64ull << 20;
constexpr uint64_t kPage = 4096;

// A sealed-like template: a memfd whose first kTouched bytes hold data.
int TemplateMemfd() {
  static int fd = [] {
    auto m = kf::CreateMemfd("clone-bench", kMemBytes);
    if (!m.ok()) std::abort();
    auto w = kf::MapShared(m->get(), kMemBytes);
    if (!w.ok()) std::abort();
    for (uint64_t off = 0; off < kTouched; off += kPage) w->data()[off] = 1;
    return m->Release();
  }();
  return fd;
}

void BM_ForkOfZygoteLikeProcess(benchmark::State& state) {
  auto mem = kf::MapPrivate(TemplateMemfd(), kMemBytes);
  if (!mem.ok()) return state.SkipWithError(mem.error().message().c_str());
  volatile uint8_t sink = 0;
  for (uint64_t off = 0; off < kTouched; off += kPage) sink = sink + mem->data()[off];  // map it
  for (auto _ : state) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid < 0) return state.SkipWithError("fork failed");
    int st;
    ::waitpid(pid, &st, 0);
  }
}
BENCHMARK(BM_ForkOfZygoteLikeProcess)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Per page: a fresh private mapping each batch, then one write per page.
void FaultPages(benchmark::State& state, bool write) {
  constexpr uint64_t kPages = 4096;  // 16 MiB per batch
  for (auto _ : state) {
    state.PauseTiming();
    auto mem = kf::MapPrivate(TemplateMemfd(), kMemBytes);
    if (!mem.ok()) return state.SkipWithError(mem.error().message().c_str());
    state.ResumeTiming();
    uint8_t* p = mem->data();
    for (uint64_t i = 0; i < kPages; ++i) {
      if (write)
        p[i * kPage] = 2;
      else
        benchmark::DoNotOptimize(*static_cast<volatile uint8_t*>(p + i * kPage));
    }
    state.PauseTiming();
    mem = kf::Error("unmapped outside the timing");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kPages);  // items/s = faults/s
}
void BM_CopyOnWriteFault(benchmark::State& state) { FaultPages(state, true); }
void BM_SharedReadFault(benchmark::State& state) { FaultPages(state, false); }
BENCHMARK(BM_CopyOnWriteFault)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SharedReadFault)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
