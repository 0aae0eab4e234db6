#include "bench/report.h"

#include <cstdio>
#include <ctime>

#include "bench/vm_memory.h"
#include "factory/cli/json.h"

namespace kf::bench {

namespace {

using cli::Json;

double Ms(uint64_t ns) { return ns / 1e6; }
double MiB(double bytes) { return bytes / 1048576.0; }

void Latency(Json& j, const std::string& key, const LatencySummary& s) {
  j.BeginObjectIn(key)
      .Uint("count", s.count)
      .Num("p50", Ms(s.p50_ns))
      .Num("p90", Ms(s.p90_ns))
      .Num("p99", Ms(s.p99_ns))
      .Num("max", Ms(s.max_ns))
      .Num("mean", Ms(s.mean_ns))
      .EndObject();
}

void LatencyRunJson(Json& j, const std::string& key, const LatencyRun& r) {
  j.BeginObjectIn(key);
  if (!r.skipped.empty()) {
    j.Str("skipped", r.skipped).EndObject();
    return;
  }
  j.Uint("pool_size", r.pool_size)
      .Uint("count", r.count)
      .Uint("pool_hits", r.pool_hits)
      .Uint("failures", r.failures);
  if (!r.first_error.empty()) j.Str("first_error", r.first_error);
  Latency(j, "get_vm_to_first_ping_ms", r.total);
  Latency(j, "get_vm_ms", r.get_vm);
  Latency(j, "first_ping_ms", r.first_ping);
  Latency(j, "daemon_get_vm_ms", r.daemon_get_vm);
  Latency(j, "release_ms", r.release);
  if (r.sandbox_create_vm.count != 0) {
    j.BeginObjectIn("sandbox_phases_ms");
    Latency(j, "fork", r.sandbox_fork);
    Latency(j, "map", r.sandbox_map);
    Latency(j, "create_vm", r.sandbox_create_vm);
    Latency(j, "restore", r.sandbox_restore);
    j.EndObject();
  }
  j.EndObject();
}

std::string LatencyRow(const char* what, const LatencySummary& s) {
  char line[256];
  std::snprintf(line, sizeof line, "  %-34s %9.3f %9.3f %9.3f %9.3f  (%llu)\n", what, Ms(s.p50_ns),
                Ms(s.p90_ns), Ms(s.p99_ns), Ms(s.max_ns), static_cast<unsigned long long>(s.count));
  return line;
}

std::string LatencyHeader(const std::string& title) {
  char line[256];
  std::snprintf(line, sizeof line, "%-36s %9s %9s %9s %9s  (count)\n", title.c_str(), "p50", "p90",
                "p99", "max");
  return line;
}

}  // namespace

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ReportJson(const BenchReport& r) {
  Json j;
  j.BeginObject()
      .Uint("report_version", kReportVersion)
      .Str("command", r.command)
      .Str("date", r.date)
      .Str("mode", r.mode);
  const Machine& m = r.machine;
  j.BeginObjectIn("machine")
      .Str("cpu_model", m.cpu_model)
      .Uint("cores", m.cores)
      .Uint("mem_total_bytes", m.mem_total_bytes)
      .Str("kernel", m.kernel)
      .Str("kvm", m.kvm)
      .Bool("under_hypervisor", m.under_hypervisor);
  if (!m.kvm_reason.empty()) j.Str("kvm_reason", m.kvm_reason);
  if (!m.kvm_nx_huge_pages.empty()) j.Str("kvm_nx_huge_pages", m.kvm_nx_huge_pages);
  j.EndObject();
  j.BeginObjectIn("target")
      .Str("daemon", r.self_daemon ? "self" : "socket")
      .Str("socket", r.socket)
      .Str("template", r.template_name)
      .Str("guest", r.guest)
      .Uint("template_mem_bytes", r.template_mem_bytes)
      .Num("template_boot_ms", Ms(r.template_boot_ns));
  if (r.template_vcpus != 0) j.Uint("vcpus", r.template_vcpus);
  j.EndObject();

  if (r.latency) {
    j.BeginObjectIn("latency").Str(
        "what",
        "one VM at a time, released before the next: GetVM call -> reply "
        "(get_vm_ms), reply -> agent.sock connected and first Ping answered "
        "(first_ping_ms), both (get_vm_to_first_ping_ms); the daemon's own "
        "GetVM time (daemon_get_vm_ms); ReleaseVM until the VMM exited "
        "(release_ms); for pool misses, the new sandbox's phases as the daemon "
        "reports them (sandbox_phases_ms: fork -> child runs, cgroup and template "
        "mapping, VM creation, state restore); milliseconds");
    LatencyRunJson(j, "pool_hit", r.latency->pool_hit);
    LatencyRunJson(j, "pool_miss", r.latency->pool_miss);
    j.EndObject();
  }
  if (r.throughput) {
    const ThroughputResult& t = *r.throughput;
    j.BeginObjectIn("throughput")
        .Str("what",
             "K client threads, each its own gRPC channel, looping GetVM, first Ping, "
             "ReleaseVM; vms_per_second = VMs handed out and pinged / wall time")
        .Uint("clients", t.clients)
        .Uint("pool_size", t.pool_size)
        .Uint("requested", t.requested)
        .Uint("done", t.done)
        .Uint("failures", t.failures)
        .Uint("pool_hits", t.pool_hits)
        .Num("wall_s", t.wall_s)
        .Num("vms_per_second", t.vms_per_second);
    if (!t.first_error.empty()) j.Str("first_error", t.first_error);
    Latency(j, "get_vm_to_first_ping_ms", t.total);
    Latency(j, "get_vm_ms", t.get_vm);
    Latency(j, "release_ms", t.release);
    j.EndObject();
  }
  if (r.soak) {
    const SoakResult& k = *r.soak;
    auto sample = [&j](const char* key, const DaemonResources& d) {
      j.BeginObjectIn(key)
          .Uint("fds", d.fds)
          .Uint("threads", d.threads)
          .Uint("rss_bytes", d.rss_bytes)
          .Uint("descendant_processes", d.descendants)
          .EndObject();
    };
    j.BeginObjectIn("soak")
        .Str("what",
             "GetVM + first Ping + ReleaseVM cycles by K clients against a pool; the daemon's "
             "open fds, threads, RSS and descendant processes (zygotes, sandboxes) sampled "
             "with the pool settled after a warm-up (warm) and after the run (after)")
        .Uint("daemon_pid", static_cast<uint64_t>(k.daemon_pid))
        .Str("daemon_found_by", k.daemon_where)
        .Uint("warmup_cycles", k.warmup_cycles)
        .Uint("clients", k.cycles.clients)
        .Uint("pool_size", k.cycles.pool_size)
        .Uint("cycles", k.cycles.done)
        .Uint("failures", k.cycles.failures)
        .Uint("pool_hits", k.cycles.pool_hits)
        .Num("wall_s", k.cycles.wall_s)
        .Num("vms_per_second", k.cycles.vms_per_second);
    if (!k.cycles.first_error.empty()) j.Str("first_error", k.cycles.first_error);
    sample("warm", k.warm);
    sample("after", k.after);
    Latency(j, "get_vm_to_first_ping_ms", k.cycles.total);
    j.EndObject();
  }
  if (r.density) {
    const DensityResult& d = *r.density;
    j.BeginObjectIn("density")
        .Str("what",
             "VMs cloned and kept alive; per point: live VMs, host memory per VM "
             "(MemAvailable drop since the baseline / live; summed smaps_rollup of the "
             "VMM processes / live; KVM kernel memory estimate per VM), GetVM -> first "
             "Ping of the VMs since the previous point; bytes, milliseconds")
        .Uint("count", d.count)
        .Uint("mem_budget_bytes", d.mem_budget)
        .Uint("step", d.step)
        .Uint("live", d.live)
        .Str("stop_reason", d.stop_reason)
        .Uint("baseline_mem_available_bytes", d.baseline_mem_available)
        .Uint("kvm_estimate_per_vcpu", d.kvm_estimate_per_vcpu);
    const HostLimits& l = d.limits;
    j.BeginObjectIn("limits")
        .Bool("root", l.root)
        .Uint("pid_max", l.pid_max)
        .Uint("threads_max", l.threads_max)
        .Uint("max_map_count", l.max_map_count)
        .Uint("nr_open", l.nr_open)
        .Uint("nofile_soft", l.nofile_soft)
        .Uint("nofile_hard", l.nofile_hard)
        .Uint("nproc_soft", l.nproc_soft)
        .Uint("nproc_hard", l.nproc_hard);
    j.BeginArray("actions");
    for (const auto& a : d.limit_actions) j.BeginObject().Str("action", a).EndObject();
    j.EndArray().EndObject();
    Latency(j, "get_vm_to_first_ping_ms", d.total);
    j.BeginArray("points");
    for (const auto& p : d.points) {
      j.BeginObject()
          .Uint("live", p.live)
          .Num("elapsed_s", p.elapsed_s)
          .Num("mem_available_delta_per_vm", p.mem_available_delta_per_vm)
          .Num("pss_per_vm", p.pss_per_vm)
          .Num("rss_per_vm", p.rss_per_vm)
          .Num("private_dirty_per_vm", p.private_dirty_per_vm)
          .Uint("kvm_estimate_per_vm", p.kvm_estimate_per_vm);
      Latency(j, "batch_get_vm_to_first_ping_ms", p.batch_total);
      j.EndObject();
    }
    j.EndArray();
    if (d.ksm_requested) {
      const DensityKsm& k = d.ksm;
      j.BeginObjectIn("ksm");
      if (!k.skipped.empty()) j.Str("skipped", k.skipped);
      j.Str("what",
            "ksmd on (pages_to_scan 20000, sleep 10 ms) until two full scans "
            "without more merging; settings put back afterwards; bytes")
          .Num("settle_s", k.settle_s)
          .Uint("pages_shared", k.after.pages_shared)
          .Uint("pages_sharing", k.after.pages_sharing)
          .Uint("pages_sharing_before", k.before.pages_sharing)
          .Uint("saved_bytes", k.saved_bytes)
          .Num("saved_bytes_per_vm", PerVm(k.saved_bytes, d.live))
          .Num("pss_per_vm_before", k.pss_per_vm_before)
          .Num("pss_per_vm_after", k.pss_per_vm_after)
          .Num("mem_available_delta_per_vm_before", k.mem_available_delta_per_vm_before)
          .Num("mem_available_delta_per_vm_after", k.mem_available_delta_per_vm_after)
          .EndObject();
    }
    j.EndObject();
  }
  if (r.working_set) {
    const WorkingSetResult& w = *r.working_set;
    j.BeginObjectIn("working_set")
        .Str("what",
             "per step: VMs cloned, each agent dirtying `pages` 4 KiB pages after "
             "hand-out (a value per VM: nothing to merge), then host memory per VM; "
             "bytes")
        .Uint("vms_per_step", w.vms_per_step)
        .Uint("gpa", w.gpa)
        .Uint("max_pages", w.max_pages);
    j.BeginArray("steps");
    for (const auto& s : w.steps) {
      j.BeginObject().Uint("pages", s.pages);
      if (!s.skipped.empty()) {
        j.Str("skipped", s.skipped).EndObject();
        continue;
      }
      j.Uint("vms", s.vms)
          .Uint("dirtied_bytes", s.pages * 4096)
          .Num("pss_per_vm", s.pss_per_vm)
          .Num("rss_per_vm", s.rss_per_vm)
          .Num("private_dirty_per_vm", s.private_dirty_per_vm)
          .Num("mem_available_delta_per_vm", s.mem_available_delta_per_vm)
          .Num("dirty_pages_call_ms_p50", s.dirty_ms_p50)
          .EndObject();
    }
    j.EndArray().EndObject();
  }
  if (r.compare) {
    const CompareResult& c = *r.compare;
    auto ratio = [](double a, double b) { return b > 0 && a > 0 ? a / b : 0.0; };
    j.BeginObjectIn("compare")
        .Str("what",
             "peers in this run, as ratios to our clones (peer / ours; 0: not measured): "
             "cold boot of the guest by our VMM without a template (VM creation -> agent "
             "Ready), Kata-style QEMU templating (spawn -> ready per clone, Pss per clone); "
             "ours: pool-miss GetVM -> first Ping p50, density Pss per VM at its last point; "
             "ms, bytes")
        .Num("ours_clone_ms", Ms(c.ours_clone_ns))
        .Num("ours_pss_per_vm", c.ours_pss_per_vm)
        .Num("ours_mem_available_delta_per_vm", c.ours_mem_available_per_vm)
        .Num("cold_boot_ms", Ms(c.cold_boot_ns))
        .Num("cold_boot_over_clone", ratio(double(c.cold_boot_ns), double(c.ours_clone_ns)));
    if (!c.cold_boot_skipped.empty()) j.Str("cold_boot_skipped", c.cold_boot_skipped);
    j.BeginObjectIn("qemu_templating");
    if (!c.qemu_skipped.empty()) {
      j.Str("skipped", c.qemu_skipped);
    } else {
      j.Str("accel", c.qemu_accel)
          .Str("readiness", c.qemu_readiness)
          .Str("qemu_version", c.qemu_version)
          .Uint("clones", c.qemu_clones)
          .Num("template_boot_ms", Ms(c.qemu_template_boot_ns))
          .Num("clone_ms_p50", Ms(c.qemu_clone_ns))
          .Num("clone_ms_max", Ms(c.qemu_clone_max_ns))
          .Num("pss_per_vm", c.qemu_pss_per_vm)
          .Num("private_dirty_per_vm", c.qemu_private_dirty_per_vm)
          .Num("mem_available_delta_per_vm", c.qemu_mem_available_per_vm)
          .Num("time_ratio", ratio(double(c.qemu_clone_ns), double(c.ours_clone_ns)))
          .Num("pss_ratio", ratio(c.qemu_pss_per_vm, c.ours_pss_per_vm));
    }
    j.EndObject().EndObject();
  }
  if (!r.error.empty()) j.Str("error", r.error);
  j.EndObject();
  return j.str();
}

std::string ReportText(const BenchReport& r) {
  std::string out;
  char line[512];
  const Machine& m = r.machine;
  std::snprintf(line, sizeof line,
                "kata-factory bench, %s\n"
                "  machine: %s, %llu CPUs, %.1f GiB, kernel %s, KVM %s%s\n"
                "  VMs from: %s, template '%s' (%s guest, %.0f MiB)",
                r.date.c_str(), m.cpu_model.c_str(), static_cast<unsigned long long>(m.cores),
                m.mem_total_bytes / 1073741824.0, m.kernel.c_str(), m.kvm.c_str(),
                m.under_hypervisor ? " (under a hypervisor)" : "",
                r.self_daemon ? "an in-process daemon" : ("the daemon on " + r.socket).c_str(),
                r.template_name.c_str(), r.guest.c_str(), MiB(r.template_mem_bytes));
  out += line;
  if (r.template_boot_ns) {
    std::snprintf(line, sizeof line, ", booted in %.1f ms", Ms(r.template_boot_ns));
    out += line;
  }
  out += "\n";
  if (!m.kvm_nx_huge_pages.empty() && m.kvm_nx_huge_pages != "never")
    out += "  kvm.nx_huge_pages " + m.kvm_nx_huge_pages +
           ": a kernel thread per new VM adds to every clone (kata-factory host --help)\n";

  if (r.latency) {
    out += "\n" + LatencyHeader("latency, one VM at a time (ms)");
    for (const auto* run : {&r.latency->pool_hit, &r.latency->pool_miss}) {
      const bool hit = run == &r.latency->pool_hit;
      if (!run->skipped.empty()) {
        out += std::string(hit ? " pool hits" : " pool misses") +
               ": not measured: " + run->skipped + "\n";
        continue;
      }
      std::snprintf(line, sizeof line, " %s (pool size %u; %llu of %llu were hits; %llu failed)\n",
                    hit ? "pool hits" : "pool misses", run->pool_size,
                    static_cast<unsigned long long>(run->pool_hits),
                    static_cast<unsigned long long>(run->count),
                    static_cast<unsigned long long>(run->failures));
      out += line;
      out += LatencyRow("GetVM -> first Ping answered", run->total);
      out += LatencyRow("GetVM call -> reply", run->get_vm);
      out += LatencyRow("reply -> first Ping (connect)", run->first_ping);
      out += LatencyRow("GetVM inside the daemon", run->daemon_get_vm);
      out += LatencyRow("ReleaseVM -> VMM exited", run->release);
      if (run->sandbox_create_vm.count != 0) {
        out += LatencyRow("  sandbox: fork -> child runs", run->sandbox_fork);
        out += LatencyRow("  sandbox: (cgroup,) map template", run->sandbox_map);
        out += LatencyRow("  sandbox: create VM", run->sandbox_create_vm);
        out += LatencyRow("  sandbox: restore state", run->sandbox_restore);
      }
    }
  }
  if (r.throughput) {
    const ThroughputResult& t = *r.throughput;
    std::snprintf(line, sizeof line,
                  "\nthroughput: %u clients, pool size %u: %.1f VMs/s (GetVM + first Ping + "
                  "ReleaseVM; %llu VMs in %.2f s, %llu failed)\n",
                  t.clients, t.pool_size, t.vms_per_second, static_cast<unsigned long long>(t.done),
                  t.wall_s, static_cast<unsigned long long>(t.failures));
    out += line;
    out += LatencyHeader("  per VM under load (ms)");
    out += LatencyRow("GetVM -> first Ping answered", t.total);
    out += LatencyRow("ReleaseVM -> VMM exited", t.release);
  }
  if (r.soak) {
    const SoakResult& k = *r.soak;
    std::snprintf(line, sizeof line,
                  "\nsoak: %llu cycles (after %llu warm-up), %u clients, pool size %u: %.1f VMs/s, "
                  "%llu failed\n  daemon pid %d (%s)\n",
                  static_cast<unsigned long long>(k.cycles.done),
                  static_cast<unsigned long long>(k.warmup_cycles), k.cycles.clients,
                  k.cycles.pool_size, k.cycles.vms_per_second,
                  static_cast<unsigned long long>(k.cycles.failures), k.daemon_pid,
                  k.daemon_where.c_str());
    out += line;
    auto row = [&](const char* what, uint64_t a, uint64_t b) {
      std::snprintf(line, sizeof line, "  %-22s %12llu %12llu %+12lld\n", what,
                    static_cast<unsigned long long>(a), static_cast<unsigned long long>(b),
                    static_cast<long long>(b) - static_cast<long long>(a));
      out += line;
    };
    std::snprintf(line, sizeof line, "  %-22s %12s %12s %12s\n", "daemon", "warm", "after",
                  "growth");
    out += line;
    row("open fds", k.warm.fds, k.after.fds);
    row("threads", k.warm.threads, k.after.threads);
    row("RSS KiB", k.warm.rss_bytes >> 10, k.after.rss_bytes >> 10);
    row("descendant processes", k.warm.descendants, k.after.descendants);
  }
  if (r.density) {
    const DensityResult& d = *r.density;
    std::snprintf(
        line, sizeof line, "\ndensity: %llu live VMs (asked %llu%s), stopped by: %s\n",
        static_cast<unsigned long long>(d.live), static_cast<unsigned long long>(d.count),
        d.mem_budget ? (", budget " + std::to_string(d.mem_budget >> 20) + " MiB").c_str() : "",
        d.stop_reason.c_str());
    out += line;
    std::snprintf(line, sizeof line,
                  "  limits: pid_max %llu, max_map_count %llu, open files %llu (hard %llu)%s\n",
                  static_cast<unsigned long long>(d.limits.pid_max),
                  static_cast<unsigned long long>(d.limits.max_map_count),
                  static_cast<unsigned long long>(d.limits.nofile_soft),
                  static_cast<unsigned long long>(d.limits.nofile_hard),
                  d.limits.root ? ", root" : "");
    out += line;
    for (const auto& a : d.limit_actions) out += "  " + a + "\n";
    out +=
        "  host memory per live VM (MiB):\n"
        "     live  MemAvail.delta      Pss      Rss  priv.dirty  KVM est.  GetVM->Ping p50/p99 "
        "ms\n";
    for (const auto& p : d.points) {
      std::snprintf(line, sizeof line, "  %7llu  %14.3f %8.3f %8.3f %11.3f %9.3f  %8.3f / %.3f\n",
                    static_cast<unsigned long long>(p.live), MiB(p.mem_available_delta_per_vm),
                    MiB(p.pss_per_vm), MiB(p.rss_per_vm), MiB(p.private_dirty_per_vm),
                    MiB(p.kvm_estimate_per_vm), Ms(p.batch_total.p50_ns), Ms(p.batch_total.p99_ns));
      out += line;
    }
    if (d.ksm_requested) {
      const DensityKsm& k = d.ksm;
      std::snprintf(line, sizeof line,
                    "  KSM (settled in %.1f s): pages_shared %llu, pages_sharing %llu, saved %.1f "
                    "MiB (%.3f MiB per VM); Pss per VM %.3f -> %.3f MiB, MemAvailable delta per "
                    "VM %.3f -> %.3f MiB\n",
                    k.settle_s, static_cast<unsigned long long>(k.after.pages_shared),
                    static_cast<unsigned long long>(k.after.pages_sharing), MiB(k.saved_bytes),
                    MiB(PerVm(k.saved_bytes, d.live)), MiB(k.pss_per_vm_before),
                    MiB(k.pss_per_vm_after), MiB(k.mem_available_delta_per_vm_before),
                    MiB(k.mem_available_delta_per_vm_after));
      out += line;
    }
  }
  if (r.working_set) {
    const WorkingSetResult& w = *r.working_set;
    std::snprintf(
        line, sizeof line,
        "\nworking set: %llu VMs per step, each dirtying N pages after hand-out (MiB per VM)\n"
        "    pages  dirtied MiB      Pss   priv.dirty      Rss  MemAvail.delta\n",
        static_cast<unsigned long long>(w.vms_per_step));
    out += line;
    for (const auto& s : w.steps) {
      if (!s.skipped.empty()) {
        std::snprintf(line, sizeof line, "  %7llu  not measured: %s\n",
                      static_cast<unsigned long long>(s.pages), s.skipped.c_str());
      } else {
        std::snprintf(line, sizeof line, "  %7llu  %11.3f %8.3f %12.3f %8.3f %15.3f\n",
                      static_cast<unsigned long long>(s.pages), MiB(s.pages * 4096.0),
                      MiB(s.pss_per_vm), MiB(s.private_dirty_per_vm), MiB(s.rss_per_vm),
                      MiB(s.mem_available_delta_per_vm));
      }
      out += line;
    }
  }
  if (r.compare) {
    const CompareResult& c = *r.compare;
    out += "\ncompare (peer / ours; ours: pool-miss GetVM -> first Ping p50 " +
           std::to_string(Ms(c.ours_clone_ns)) + " ms, Pss per VM " +
           std::to_string(MiB(c.ours_pss_per_vm)) + " MiB)\n";
    if (!c.cold_boot_skipped.empty()) {
      out += "  cold boot by our VMM: not measured: " + c.cold_boot_skipped + "\n";
    } else {
      std::snprintf(line, sizeof line, "  cold boot by our VMM (no template): %.1f ms, %.1fx a clone\n",
                    Ms(c.cold_boot_ns),
                    c.ours_clone_ns ? double(c.cold_boot_ns) / double(c.ours_clone_ns) : 0.0);
      out += line;
    }
    if (!c.qemu_skipped.empty()) {
      out += "  Kata-style QEMU templating: not measured: " + c.qemu_skipped + "\n";
    } else {
      std::snprintf(line, sizeof line,
                    "  Kata-style QEMU templating (%s, %s, %u clones): spawn -> ready p50 %.1f ms "
                    "(%.1fx ours), Pss %.2f MiB per clone (%.1fx ours)\n",
                    c.qemu_accel.c_str(), c.qemu_readiness.c_str(), c.qemu_clones,
                    Ms(c.qemu_clone_ns),
                    c.ours_clone_ns ? double(c.qemu_clone_ns) / double(c.ours_clone_ns) : 0.0,
                    MiB(c.qemu_pss_per_vm),
                    c.ours_pss_per_vm > 0 ? c.qemu_pss_per_vm / c.ours_pss_per_vm : 0.0);
      out += line;
    }
  }
  if (!r.error.empty()) out += "\nstopped early: " + r.error + "\n";
  return out;
}

}  // namespace kf::bench
