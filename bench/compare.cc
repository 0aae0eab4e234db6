#include "bench/compare.h"

#include <unistd.h>

#include <cstdio>
#include <vector>

#include "bench/peers/qemu_templating.h"
#include "bench/stats.h"
#include "vmm-glue/kvm.h"

namespace kf::bench {

Status RunCompare(BenchReport* r, const CompareOptions& o) {
  CompareResult c;
  if (r->latency && r->latency->pool_miss.skipped.empty())
    c.ours_clone_ns = r->latency->pool_miss.total.p50_ns;
  if (r->density && !r->density->points.empty()) {
    c.ours_pss_per_vm = r->density->points.back().pss_per_vm;
    c.ours_mem_available_per_vm = r->density->points.back().mem_available_delta_per_vm;
  }
  c.cold_boot_ns = r->template_boot_ns;
  if (c.cold_boot_ns == 0)
    c.cold_boot_skipped = "the template was not booted by this run (--socket): use --self";

  if (r->guest != "linux") {
    c.qemu_skipped = "QEMU cannot boot the " + r->guest +
                     " guest (a freestanding CPL3 agent, no kernel): the peer needs --guest linux";
  } else if (o.guest_dir.empty()) {
    c.qemu_skipped = "no guest directory for QEMU (--guest-dir)";
  } else {
    peers::QemuPeerOptions po;
    po.guest_dir = o.guest_dir;
    po.mem_mib = static_cast<uint32_t>(r->template_mem_bytes >> 20);
    po.clones = o.qemu_clones;
    po.qemu_binary = o.qemu_binary;
    // The same accelerator our VMM used; TCG only where there is no KVM
    // (then the ratio is not like for like, and the report says so).
    po.accel = Kvm::UnavailableReason().empty() ? "kvm" : "tcg";
    if (o.progress)
      po.log = [](const std::string& line) { std::fprintf(stderr, "qemu peer: %s\n", line.c_str()); };
    auto peer = peers::MeasureQemuTemplating(po);
    if (!peer.ok()) {
      c.qemu_skipped = "the QEMU peer failed: " + peer.error().message();
    } else {
      c.qemu_accel = peer->accel;
      c.qemu_readiness = peers::ReadinessName(peer->readiness);
      c.qemu_version = peer->qemu_version;
      c.qemu_clones = static_cast<uint32_t>(peer->clones.size());
      c.qemu_template_boot_ns = peer->template_boot_ns;
      std::vector<uint64_t> ready;
      for (const auto& s : peer->clones) ready.push_back(s.ready_ns);
      const LatencySummary clones = Summarize(ready);
      c.qemu_clone_ns = clones.p50_ns;
      c.qemu_clone_max_ns = clones.max_ns;
      c.qemu_pss_per_vm = peer->MeanPss();
      c.qemu_private_dirty_per_vm = peer->MeanPrivateDirty();
      c.qemu_mem_available_per_vm = peer->MemAvailableDeltaPerClone();
    }
  }
  r->compare = c;
  return Status::Ok();
}

}  // namespace kf::bench
