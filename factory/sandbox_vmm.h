// The sandbox VMM: what a forked clone becomes. It maps the template memory
// copy-on-write, creates its own VM, restores the captured vCPU, VM and
// device state, opens its agent.sock, and runs until the requester closes
// the control socket.
#pragma once

#include <string>

#include "factory/jail/jail_options.h"
#include "factory/loaded_template.h"
#include "factory/sandbox_protocol.h"
#include "vmm-glue/kvm.h"

namespace kf {

struct SandboxOptions {
  bool mergeable = false;  // MADV_MERGEABLE on guest memory (KSM)
  // Where the clone's hybrid-vsock socket goes (RUN/<id>/agent.sock); the
  // directory must exist. Guest-initiated connections go to <path>_<port>.
  std::string agent_sock;
  // The confinement entered before the guest runs (factory/jail/). In a
  // Zygote::Clone request only jail.uid travels (the clone's own ids); the
  // rest is the zygote's, given when it was started.
  JailOptions jail;
  // A cgroup v2 directory (O_DIRECTORY fd) the sandbox moves into right
  // after the fork; -1: none. The requester's fd, sent to the zygote with
  // the request.
  int cgroup_fd = -1;
};

// Runs in the forked child; returns when the control socket closes (ok) or
// the guest or VMM fails (error). The caller _exit()s with the outcome.
Status RunSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                     const SandboxOptions& options, SandboxTimings timings);

}  // namespace kf
