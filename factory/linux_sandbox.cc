#include "factory/linux_sandbox.h"

#include "factory/clock.h"
#include "factory/jail/jail.h"
#include "factory/linux_machine.h"
#include "factory/sandbox_control.h"
#include "memshare/guest_backing.h"

namespace kf {

std::string BesideAgentSock(const std::string& agent_sock, const char* name) {
  if (agent_sock.empty()) return "";
  const size_t slash = agent_sock.rfind('/');
  return (slash == std::string::npos ? std::string() : agent_sock.substr(0, slash + 1)) + name;
}

Status RunLinuxSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                          const SandboxOptions& options, SandboxTimings timings) {
  const TemplateState& st = tmpl.state;
  PrivateMapOptions map_options;
  map_options.mergeable = options.mergeable;
  ASSIGN_OR_RETURN(Mapping memory, MapPrivate(tmpl.memory.get(), st.mem_size, map_options));
  timings.mapped_ns = MonotonicNs();
  GuestMemoryView view(memory.data(), memory.size());

  LinuxMachineOptions mo;
  mo.agent_sock = options.agent_sock;
  mo.console_sock = BesideAgentSock(options.agent_sock, "console.sock");
  mo.console_log = BesideAgentSock(options.agent_sock, "console.log");
  if (tmpl.rootfs.has_value()) mo.rootfs = &*tmpl.rootfs;
  ASSIGN_OR_RETURN(auto machine, LinuxMachine::Create(kvm, view, mo));
  timings.vm_created_ns = MonotonicNs();
  RETURN_IF_ERROR(machine->Restore(st));
  timings.restored_ns = MonotonicNs();

  Status control_error = Status::Ok();
  LinuxMachine* m = machine.get();
  machine->SetExtraFd(control_fd, [&, m]() {
    auto done = ServeSandboxControl(control_fd, timings, m->started_ns());
    if (!done.ok()) {
      control_error = done.error();
      return true;
    }
    return *done;
  });
  // Restored and listening: from here on only the calls of a running VMM
  // (Start only adds threads, which the filter allows).
  RETURN_IF_ERROR(EnterJail(options.jail));
  RETURN_IF_ERROR(machine->Start());
  SendListening(control_fd, timings);
  ASSIGN_OR_RETURN(LinuxStop why, machine->Join());
  RETURN_IF_ERROR(control_error);
  if (why == LinuxStop::kShutdown)
    return Error("guest shut down (triple fault; " + machine->DescribeCrash() + ")");
  if (why == LinuxStop::kReset) return Error("guest reset itself (reboot or panic)");
  return Status::Ok();
}

}  // namespace kf
