#include "factory/clone_batch.h"

#include <algorithm>
#include <cmath>

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
  const uint64_t mem_size = tmpl.state.mem_size;
  ASSIGN_OR_RETURN(Zygote z, Zygote::Spawn(std::move(tmpl)));
  batch.zygote_ = std::make_unique<Zygote>(std::move(z));
  // Measured after the zygote holds the template, so the delta is the clones'.
  ASSIGN_OR_RETURN(uint64_t avail_before, ReadMemAvailable());
  const uint64_t wall_start = MonotonicNs();
  SandboxOptions sandbox_options;
  sandbox_options.mergeable = o.mergeable;
  for (int i = 0; i < o.count; ++i) {
    const uint64_t t0 = MonotonicNs();
    auto clone = batch.zygote_->Clone(sandbox_options);
    if (!clone.ok()) return clone.error().Context("clone " + std::to_string(i));
    SandboxClient client(clone->control.get());
    auto ping = client.Ping(0x1234 + i);
    const uint64_t t1 = MonotonicNs();
    if (!ping.ok()) return ping.error().Context("clone " + std::to_string(i) + " first ping");
    CloneRecord r;
    r.index = i;
    r.pid = clone->pid;
    r.clone_to_ping_ns = t1 - t0;
    r.fork_to_ping_ns = t1 - clone->fork_ns;
    auto timings = client.Timings();
    if (timings.ok()) r.timings = *timings;
    if (o.set_identity) {
      ASSIGN_OR_RETURN(Identity id, FreshIdentity("clone-" + std::to_string(i)));
      RETURN_IF_ERROR(client.SetIdentity(id));
    }
    batch.clones_.push_back(std::move(*clone));
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
  s.kvm_estimate_per_clone = EstimateKvmVmBytes(mem_size, 1);
  return batch;
}

Status CloneBatch::Release() {
  Status first;
  for (auto& c : clones_) {
    Status s = ReleaseClone(c);
    if (!s.ok() && first.ok()) first = s;
  }
  clones_.clear();
  zygote_.reset();
  return first;
}

}  // namespace kf
