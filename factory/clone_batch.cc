#include "factory/clone_batch.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "factory/clock.h"
#include "factory/sandbox_client.h"
#include "memshare/accounting.h"

namespace kf {

uint64_t Percentile(std::vector<uint64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * values.size()));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

Result<CloneBatch> CloneBatch::Run(LoadedTemplate tmpl, const CloneBatchOptions& o) {
  CloneBatch batch;
  if (o.run_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kf-run-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return Error::Sys("mkdtemp " + pattern);
    batch.run_dir_ = pattern;
    batch.own_run_dir_ = true;
  } else {
    if (::mkdir(o.run_dir.c_str(), 0700) < 0 && errno != EEXIST)
      return Error::Sys("mkdir " + o.run_dir);
    batch.run_dir_ = o.run_dir;
  }
  const uint64_t mem_size = tmpl.state.mem_size;
  ASSIGN_OR_RETURN(Zygote z, Zygote::Spawn(std::move(tmpl)));
  batch.zygote_ = std::make_unique<Zygote>(std::move(z));
  // Measured after the zygote holds the template, so the delta is the clones'.
  ASSIGN_OR_RETURN(uint64_t avail_before, ReadMemAvailable());
  const uint64_t wall_start = MonotonicNs();
  SandboxOptions sandbox_options;
  sandbox_options.mergeable = o.mergeable;
  std::vector<uint64_t> rtts;
  for (int i = 0; i < o.count; ++i) {
    const std::string id = "clone-" + std::to_string(i);
    const std::string dir = batch.run_dir_ + "/" + id;
    if (::mkdir(dir.c_str(), 0700) < 0) return Error::Sys("mkdir " + dir);
    batch.clone_dirs_.push_back(dir);
    sandbox_options.agent_sock = dir + "/agent.sock";
    const uint64_t t0 = MonotonicNs();
    auto clone = batch.zygote_->Clone(sandbox_options);
    if (!clone.ok()) return clone.error().Context(id);
    batch.clones_.push_back(std::move(*clone));
    const CloneHandle& handle = batch.clones_.back();
    auto agent = ConnectAgent(handle);
    if (!agent.ok()) return agent.error().Context(id + " agent");
    auto ping = agent->Ping(0x1234 + i);
    const uint64_t t1 = MonotonicNs();
    if (!ping.ok()) return ping.error().Context(id + " first ping");
    SandboxClient client(handle.control.get());
    CloneRecord r;
    r.index = i;
    r.pid = handle.pid;
    r.clone_to_ping_ns = t1 - t0;
    r.fork_to_ping_ns = t1 - handle.fork_ns;
    auto timings = client.Timings();
    if (timings.ok()) r.timings = *timings;
    if (o.set_identity) {
      ASSIGN_OR_RETURN(Identity identity, FreshIdentity(id));
      auto set = agent->SetIdentity(identity);
      if (!set.ok()) return set.error().Context(id);
    }
    for (int k = 0; k < o.pings; ++k) {
      const uint64_t p0 = MonotonicNs();
      auto again = agent->Ping(k);
      if (!again.ok()) return again.error().Context(id + " ping " + std::to_string(k));
      rtts.push_back(MonotonicNs() - p0);
    }
    batch.agents_.push_back(std::move(*agent));
    batch.records_.push_back(r);
    if (o.progress) o.progress(i + 1, o.count);
  }
  CloneSummary& s = batch.summary_;
  s.wall_s = double(MonotonicNs() - wall_start) / 1e9;
  s.count = o.count;
  ASSIGN_OR_RETURN(uint64_t avail_after, ReadMemAvailable());
  s.mem_available_delta = avail_before > avail_after ? avail_before - avail_after : 0;
  std::vector<uint64_t> lat, fork_lat;
  for (auto& r : batch.records_) {
    auto mem = ReadProcessMemory(r.pid);
    if (mem.ok()) {
      r.rss = mem->rss;
      r.pss = mem->pss;
      r.private_dirty = mem->private_dirty;
    }
    s.rss_total += r.rss;
    s.pss_total += r.pss;
    s.private_dirty_total += r.private_dirty;
    lat.push_back(r.clone_to_ping_ns);
    fork_lat.push_back(r.fork_to_ping_ns);
  }
  s.p50_ns = Percentile(lat, 50);
  s.p99_ns = Percentile(lat, 99);
  s.max_ns = Percentile(lat, 100);
  s.fork_p50_ns = Percentile(fork_lat, 50);
  s.fork_p99_ns = Percentile(fork_lat, 99);
  s.rtt_count = rtts.size();
  s.rtt_p50_ns = Percentile(rtts, 50);
  s.rtt_p99_ns = Percentile(rtts, 99);
  s.kvm_estimate_per_clone = EstimateKvmVmBytes(mem_size, 1);
  return batch;
}

Status CloneBatch::Release() {
  Status first;
  agents_.clear();
  for (auto& c : clones_) {
    Status s = ReleaseClone(c);
    if (!s.ok() && first.ok()) first = s;
  }
  clones_.clear();
  zygote_.reset();
  // A VMM unlinks its own agent.sock; one that was killed leaves it behind.
  std::error_code ec;
  for (const auto& dir : clone_dirs_) std::filesystem::remove_all(dir, ec);
  clone_dirs_.clear();
  if (own_run_dir_ && !run_dir_.empty()) std::filesystem::remove_all(run_dir_, ec);
  own_run_dir_ = false;
  return first;
}

}  // namespace kf
