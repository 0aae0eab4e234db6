// `kata-factory bench --compare` (issue #6 item 2): the peers measured in
// the same run, on the same guest and machine, as ratios to our clones:
//   - cold boot by our own VMM, no template: the template's boot (VM
//     creation to the agent's Ready) that --self measured anyway;
//   - Kata's VM templating with QEMU (bench/peers/qemu_templating.h), for
//     the Linux guest only: QEMU cannot boot the bare guest (no firmware
//     path to a CPL3 agent), which the report says.
// Our side comes from the modes that ran: the pool-miss latency (GetVM ->
// first Ping, p50) and the density run's per-VM memory at its last point.
#pragma once

#include <cstdint>
#include <string>

#include "bench/report.h"
#include "vmm-glue/result.h"

namespace kf::bench {

struct CompareOptions {
  std::string guest_dir;  // the Linux guest's images, for QEMU
  uint32_t qemu_clones = 5;
  std::string qemu_binary = "qemu-system-x86_64";
  bool progress = true;  // QEMU's progress lines on stderr
};

// Fills report->compare from what report already holds and, for a Linux
// guest, a QEMU templating run. A peer that cannot run is recorded as
// skipped with the reason, not an error.
Status RunCompare(BenchReport* report, const CompareOptions& options);

}  // namespace kf::bench
