#include "factory/clone_report.h"

#include <cstdio>

#include "factory/cli/json.h"

namespace kf {

namespace {
double Ms(uint64_t ns) { return ns / 1e6; }
double MiB(uint64_t bytes) { return bytes / 1048576.0; }
}  // namespace

std::string CloneReportText(const std::string& dir, const CloneBatch& batch, bool per_clone) {
  std::string out;
  char line[512];
  if (per_clone) {
    for (const auto& r : batch.records()) {
      std::snprintf(line, sizeof line,
                    "clone %4d pid %7d  clone->ping %7.3f ms  fork->ping %7.3f ms  "
                    "rss %6.2f MiB  pss %6.2f MiB  dirty %6.2f MiB\n",
                    r.index, r.pid, Ms(r.clone_to_ping_ns), Ms(r.fork_to_ping_ns), MiB(r.rss),
                    MiB(r.pss), MiB(r.private_dirty));
      out += line;
    }
  }
  const CloneSummary& s = batch.summary();
  const double n = s.count > 0 ? s.count : 1;
  std::snprintf(line, sizeof line,
                "%d clones of %s in %.3f s (%.0f clones/s)\n"
                "  clone->first ping: p50 %.3f ms  p99 %.3f ms  max %.3f ms\n"
                "  fork->first ping:  p50 %.3f ms  p99 %.3f ms\n"
                "  host memory per clone: MemAvailable delta %.2f MiB, Pss %.2f MiB "
                "(Rss %.2f MiB, private dirty %.2f MiB), KVM kernel estimate %.2f MiB\n",
                s.count, dir.c_str(), s.wall_s, s.count / (s.wall_s > 0 ? s.wall_s : 1),
                Ms(s.p50_ns), Ms(s.p99_ns), Ms(s.max_ns), Ms(s.fork_p50_ns),
                Ms(s.fork_p99_ns), MiB(s.mem_available_delta) / n, MiB(s.pss_total) / n,
                MiB(s.rss_total) / n, MiB(s.private_dirty_total) / n,
                MiB(s.kvm_estimate_per_clone));
  out += line;
  if (s.rtt_count > 0) {
    std::snprintf(line, sizeof line, "  Ping round trip over agent.sock (%llu pings): p50 %.3f ms  p99 %.3f ms\n",
                  static_cast<unsigned long long>(s.rtt_count), Ms(s.rtt_p50_ns), Ms(s.rtt_p99_ns));
    out += line;
  }
  return out;
}

std::string CloneReportJson(const std::string& dir, const CloneBatch& batch) {
  const CloneSummary& s = batch.summary();
  const double n = s.count > 0 ? s.count : 1;
  cli::Json j;
  j.BeginObject().Str("template", dir).Uint("count", s.count).Num("wall_s", s.wall_s);
  j.BeginObjectIn("clone_to_ping_ms")
      .Num("p50", Ms(s.p50_ns)).Num("p99", Ms(s.p99_ns)).Num("max", Ms(s.max_ns)).EndObject();
  j.BeginObjectIn("fork_to_ping_ms")
      .Num("p50", Ms(s.fork_p50_ns)).Num("p99", Ms(s.fork_p99_ns)).EndObject();
  if (s.rtt_count > 0)
    j.BeginObjectIn("ping_rtt_ms").Uint("count", s.rtt_count)
        .Num("p50", Ms(s.rtt_p50_ns)).Num("p99", Ms(s.rtt_p99_ns)).EndObject();
  j.BeginObjectIn("memory_per_clone_bytes")
      .Num("mem_available_delta", s.mem_available_delta / n).Num("pss", s.pss_total / n)
      .Num("rss", s.rss_total / n).Num("private_dirty", s.private_dirty_total / n)
      .Uint("kvm_estimate", s.kvm_estimate_per_clone).EndObject();
  j.BeginArray("clones");
  for (const auto& r : batch.records()) {
    const SandboxTimings& t = r.timings;
    j.BeginObject().Uint("index", r.index).Uint("pid", r.pid)
        .Num("clone_to_ping_ms", Ms(r.clone_to_ping_ns)).Num("fork_to_ping_ms", Ms(r.fork_to_ping_ns))
        .Uint("rss", r.rss).Uint("pss", r.pss).Uint("private_dirty", r.private_dirty);
    if (t.fork_ns != 0) {
      const SandboxPhases p = PhasesOf(t);
      j.BeginObjectIn("phases_ms")
          .Num("fork_to_child", Ms(p.fork))
          .Num("map", Ms(p.map))
          .Num("create_vm", Ms(p.create_vm))
          .Num("restore", Ms(p.restore))
          .Num("resume_to_wait", Ms(p.resume_to_wait)).EndObject();
    }
    j.EndObject();
  }
  j.EndArray().EndObject();
  return j.str();
}

}  // namespace kf
