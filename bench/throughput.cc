#include "bench/throughput.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "factory/clock.h"

namespace kf::bench {

Result<ThroughputResult> RunThroughput(Target& target, const ThroughputOptions& o,
                                       Progress& progress) {
  RETURN_IF_ERROR(target.Configure(Phase{0, std::nullopt}));
  {
    // Warm-up (not counted): starts the zygote.
    CallError err;
    auto warm = target.GetAndPing(target.stub(), false, &err);
    if (!warm) return Error("throughput: the warm-up VM: " + err.message);
    if (!target.Release(target.stub(), warm->id, &err)) return Error("throughput: " + err.message);
  }
  return RunCycles(target, o, "throughput, " + std::to_string(o.clients) + " clients", progress);
}

Result<ThroughputResult> RunCycles(Target& target, const ThroughputOptions& o,
                                   const std::string& label, Progress& progress) {
  ThroughputResult r;
  r.clients = o.clients;
  r.requested = o.count;
  ASSIGN_OR_RETURN(pb::PoolStatus pool, target.Pool());
  r.pool_size = pool.target();

  std::atomic<uint64_t> next{0}, done{0}, failures{0}, hits{0};
  std::mutex mu;  // guards the sample vectors and first_error
  std::vector<uint64_t> total, get, release;
  const uint64_t max_failures = std::max<uint64_t>(10, o.count / 10);
  auto client = [&] {
    auto stub = target.NewStub();
    std::vector<uint64_t> my_total, my_get, my_release;
    while (next.fetch_add(1) < o.count && failures.load() < max_failures) {
      CallError err;
      auto vm = target.GetAndPing(*stub, false, &err);
      uint64_t rel_ns = 0;
      if (vm) {
        const uint64_t r0 = MonotonicNs();
        if (target.Release(*stub, vm->id, &err))
          rel_ns = MonotonicNs() - r0;
        else
          vm.reset();
      }
      if (!vm) {
        failures.fetch_add(1);
        std::lock_guard lock(mu);
        if (r.first_error.empty()) r.first_error = err.message;
        continue;
      }
      hits.fetch_add(vm->pool_hit ? 1 : 0);
      my_total.push_back(vm->get_ns + vm->ping_ns);
      my_get.push_back(vm->get_ns);
      my_release.push_back(rel_ns);
      done.fetch_add(1);
    }
    std::lock_guard lock(mu);
    total.insert(total.end(), my_total.begin(), my_total.end());
    get.insert(get.end(), my_get.begin(), my_get.end());
    release.insert(release.end(), my_release.begin(), my_release.end());
  };
  progress.Begin(label, o.count);
  const uint64_t t0 = MonotonicNs();
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < o.clients; ++i) threads.emplace_back(client);
  while (true) {
    const uint64_t d = done.load(), f = failures.load();
    progress.Update(d);
    if (d + f >= o.count || f >= max_failures) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& t : threads) t.join();
  const uint64_t t1 = MonotonicNs();
  progress.Done();
  r.done = done.load();
  r.failures = failures.load();
  r.pool_hits = hits.load();
  r.wall_s = double(t1 - t0) / 1e9;
  r.vms_per_second = r.wall_s > 0 ? r.done / r.wall_s : 0;
  r.total = Summarize(total);
  r.get_vm = Summarize(get);
  r.release = Summarize(release);
  if (r.done == 0) return Error(label + ": no VM was handed out; first error: " + r.first_error);
  return r;
}

}  // namespace kf::bench
