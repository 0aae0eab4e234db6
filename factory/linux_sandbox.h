// The sandbox VMM of a Linux clone (what RunSandboxVmm becomes for a
// template of guest kind "linux"): maps the template memory copy-on-write,
// restores the kernel where the template stopped, and runs it on a vCPU
// thread while a device thread serves agent.sock, console.sock and the
// control socket. Beside agent.sock (same directory) it creates
// console.sock and console.log.
#pragma once

#include <string>

#include "factory/loaded_template.h"
#include "factory/sandbox_protocol.h"
#include "factory/sandbox_vmm.h"
#include "vmm-glue/kvm.h"

namespace kf {

// RUN/<id>/agent.sock -> RUN/<id>/<name> (console.sock, console.log); empty
// when agent_sock is.
std::string BesideAgentSock(const std::string& agent_sock, const char* name);

Status RunLinuxSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                          const SandboxOptions& options, SandboxTimings timings);

}  // namespace kf
