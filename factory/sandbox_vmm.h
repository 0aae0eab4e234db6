// The sandbox VMM: what a forked clone becomes. It maps the template memory
// copy-on-write, creates its own VM, restores the captured state, and serves
// its control socket until the requester closes it.
#pragma once

#include "factory/loaded_template.h"
#include "factory/sandbox_protocol.h"
#include "vmm-glue/kvm.h"

namespace kf {

struct SandboxOptions {
  bool mergeable = false;  // MADV_MERGEABLE on guest memory (KSM)
};

// Runs in the forked child; returns when the control socket closes (ok) or
// the guest or VMM fails (error). The caller _exit()s with the outcome.
Status RunSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                     const SandboxOptions& options, SandboxTimings timings);

}  // namespace kf
