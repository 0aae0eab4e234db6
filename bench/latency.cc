#include "bench/latency.h"

#include "factory/clock.h"

namespace kf::bench {

namespace {

constexpr int kPoolFillTimeoutMs = 120000;

Result<LatencyRun> Measure(Target& target, bool want_hits, uint64_t count, Progress& progress) {
  LatencyRun run;
  ASSIGN_OR_RETURN(pb::PoolStatus pool, target.Pool());
  run.pool_size = pool.target();
  std::vector<uint64_t> get, ping, total, daemon_total, release;
  std::vector<uint64_t> fork, map, create_vm, restore;  // misses' sandbox phases
  // One VM first, not counted: it starts the template's zygote where none
  // runs yet (a miss run's first clone would otherwise time the template load).
  {
    if (want_hits) RETURN_IF_ERROR(target.WaitPoolFull(kPoolFillTimeoutMs));
    CallError err;
    auto warm = target.GetAndPing(target.stub(), false, &err);
    if (!warm) return Error("latency: the warm-up VM: " + err.message);
    if (!target.Release(target.stub(), warm->id, &err)) return Error("latency: " + err.message);
  }
  progress.Begin(want_hits ? "latency, pool hits" : "latency, pool misses", count);
  for (uint64_t i = 0; i < count; ++i) {
    if (want_hits) RETURN_IF_ERROR(target.WaitPoolFull(kPoolFillTimeoutMs));
    CallError err;
    auto vm = target.GetAndPing(target.stub(), false, &err);
    if (!vm) {
      ++run.failures;
      if (run.first_error.empty()) run.first_error = err.message;
      // One failure is a figure; a run of them is a broken daemon.
      if (run.failures > 3 && run.failures * 2 > i + 1)
        return Error("latency: " + std::to_string(run.failures) + " of " + std::to_string(i + 1) +
                     " GetVM failed; first: " + run.first_error);
      continue;
    }
    run.pool_hits += vm->pool_hit ? 1 : 0;
    get.push_back(vm->get_ns);
    ping.push_back(vm->ping_ns);
    total.push_back(vm->get_ns + vm->ping_ns);
    daemon_total.push_back(vm->daemon.total_ns());
    if (const pb::Timings& t = vm->daemon; !vm->pool_hit && t.sandbox_create_vm_ns() != 0) {
      fork.push_back(t.sandbox_fork_ns());
      map.push_back(t.sandbox_map_ns());
      create_vm.push_back(t.sandbox_create_vm_ns());
      restore.push_back(t.sandbox_restore_ns());
    }
    const uint64_t r0 = MonotonicNs();
    if (!target.Release(target.stub(), vm->id, &err)) return Error("latency: " + err.message);
    release.push_back(MonotonicNs() - r0);
    progress.Update(i + 1);
  }
  progress.Done();
  run.count = get.size();
  run.get_vm = Summarize(get);
  run.first_ping = Summarize(ping);
  run.total = Summarize(total);
  run.daemon_get_vm = Summarize(daemon_total);
  run.release = Summarize(release);
  run.sandbox_fork = Summarize(fork);
  run.sandbox_map = Summarize(map);
  run.sandbox_create_vm = Summarize(create_vm);
  run.sandbox_restore = Summarize(restore);
  return run;
}

}  // namespace

Result<LatencyResult> RunLatency(Target& target, const LatencyOptions& o, Progress& progress) {
  LatencyResult r;
  // Pool hits.
  RETURN_IF_ERROR(target.Configure(Phase{o.hit_pool_size, std::nullopt}));
  ASSIGN_OR_RETURN(pb::PoolStatus pool, target.Pool());
  if (pool.target() == 0) {
    r.pool_hit.skipped = "the daemon's pool for '" + target.template_name() +
                         "' has a target of 0 (start it with --pool-size N, or use --self)";
  } else {
    ASSIGN_OR_RETURN(r.pool_hit, Measure(target, true, o.count, progress));
  }
  // Pool misses.
  RETURN_IF_ERROR(target.Configure(Phase{0, std::nullopt}));
  ASSIGN_OR_RETURN(pool, target.Pool());
  if (pool.target() != 0) {
    r.pool_miss.skipped = "the daemon's pool for '" + target.template_name() +
                          "' has a target of " + std::to_string(pool.target()) +
                          ", so GetVM would not clone (start it with --pool-size 0, or use --self)";
  } else {
    ASSIGN_OR_RETURN(r.pool_miss, Measure(target, false, o.count, progress));
  }
  return r;
}

}  // namespace kf::bench
