#include "factory/sandbox_vmm.h"

#include <sys/socket.h>

#include <cstddef>
#include <cstring>

#include "agent/bare/bare_abi.h"
#include "factory/bare_ports.h"
#include "factory/bare_template.h"
#include "factory/clock.h"
#include "factory/jail/jail.h"
#include "factory/linux_sandbox.h"
#include "factory/sandbox_control.h"
#include "memshare/guest_backing.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/run_loop.h"
#include "vmm-glue/vm.h"

namespace kf {


Status RunSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                     const SandboxOptions& options, SandboxTimings timings) {
  const TemplateState& st = tmpl.state;
  if (st.guest_kind == kGuestKindLinux)
    return RunLinuxSandboxVmm(kvm, tmpl, control_fd, options, timings);
  if (!st.vsock.has_value()) return Error("template has no vsock device state");
  PrivateMapOptions map_options;
  map_options.mergeable = options.mergeable;
  ASSIGN_OR_RETURN(Mapping memory, MapPrivate(tmpl.memory.get(), st.mem_size, map_options));
  timings.mapped_ns = MonotonicNs();

  ASSIGN_OR_RETURN(Vm vm, Vm::Create(kvm, st.vm_config));
  RETURN_IF_ERROR(vm.SetMemorySlot(0, 0, st.mem_size, memory.data()));
  if (st.vcpus.size() != 1) return Error("bare templates have exactly one vCPU");
  ASSIGN_OR_RETURN(Vcpu vcpu, vm.CreateVcpu(0));
  timings.vm_created_ns = MonotonicNs();
  RETURN_IF_ERROR(vcpu.RestoreState(st.vcpus[0]));
  RETURN_IF_ERROR(vm.RestoreState(st.vm));

  GuestMemoryView view(memory.data(), memory.size());
  vsock::HybridVsockOptions vsock_options;
  vsock_options.uds_path = options.agent_sock;
  vsock_options.poll_on_wait = true;
  ASSIGN_OR_RETURN(auto vsock,
                   vsock::HybridVsock::Create(view, KF_BARE_VSOCK_MMIO_GPA, vsock_options));
  // Drops the template's connections and queues TRANSPORT_RESET for the
  // agent, which it handles before any new connection can reach it.
  RETURN_IF_ERROR(vsock->Restore(*st.vsock));
  timings.restored_ns = MonotonicNs();

  BareGuestPorts* ports_ptr = nullptr;
  BareGuestPorts::Hooks hooks;
  hooks.extra_fd = control_fd;
  hooks.on_extra_fd = [&]() {
    return ServeSandboxControl(control_fd, timings, ports_ptr->first_wait_ns());
  };
  BareGuestPorts ports(vsock.get(), std::move(hooks));
  ports_ptr = &ports;
  IoBus bus;
  RETURN_IF_ERROR(bus.AddPio(KF_PORT_SIGNAL, 8, &ports, "bare-ports"));
  RETURN_IF_ERROR(bus.AddMmio(KF_BARE_VSOCK_MMIO_GPA, vsock::kMmioWindowSize, vsock->mmio(),
                              "virtio-vsock"));

  // Restored and listening: from here on only the calls of a running VMM.
  RETURN_IF_ERROR(EnterJail(options.jail));
  SendListening(control_fd, timings);

  ASSIGN_OR_RETURN(StopReason why, RunVcpu(vcpu, bus));
  if (ports.failure() != nullptr) return *ports.failure();
  if (ports.panicked()) return Error("guest panicked (" + DescribeBarePanic(view) + ")");
  if (why == StopReason::kShutdown) return Error("guest shut down (triple fault; " + vcpu.DescribeForCrash() + ")");
  return Status::Ok();
}

}  // namespace kf
