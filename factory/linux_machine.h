// A running Linux guest: one VM with the in-kernel irqchip and PIT, one
// vCPU, and its devices (virtio-vsock and, with a rootfs, virtio-pmem behind
// virtio-mmio, the 8250 console, the i8042 reset line). Used both to boot a template and to run a clone.
//
// Threads. Unlike the bare guest, Linux halts inside KVM (HLT with an
// in-kernel LAPIC never exits to us), so host events cannot wait for a guest
// exit: a vCPU thread runs KVM_RUN and serves MMIO/PIO exits, and a device
// thread polls the host side (agent.sock clients, console.sock, an extra fd
// such as the sandbox's control socket). One mutex covers all device state;
// interrupts go to the in-kernel IOAPIC with KVM_IRQ_LINE from either thread.
//
// Stopping (for a snapshot, or when the sandbox is released): RequestStop()
// sets kvm_run.immediate_exit and kicks the vCPU thread with a signal, so
// KVM_RUN returns at an instruction boundary with no exit pending.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "factory/linux_console.h"
#include "memshare/pmem_backing.h"
#include "snapshot/template_state.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/kvm.h"
#include "vmm-glue/linux/linux_loader.h"
#include "vmm-glue/pmem/pmem_device.h"
#include "vmm-glue/run_loop.h"
#include "vmm-glue/vcpu.h"
#include "vmm-glue/vm.h"
#include "vmm-glue/vmm_thread.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

namespace kf {

class Serial8250;
class I8042;

struct LinuxMachineOptions {
  std::string agent_sock;    // hybrid vsock listener; empty = none
  std::string console_log;   // guest console appended here; empty = none
  std::string console_sock;  // interactive console; empty = none
  // The read-only rootfs image, as a virtio-pmem device whose region is a
  // KVM_MEM_READONLY slot at linux_layout::kPmemGpa; null = none. Not
  // owned: must outlive the machine.
  const PmemBacking* rootfs = nullptr;
};

// Why the machine stopped.
enum class LinuxStop {
  kRequested,  // RequestStop(): the vCPU sits at an instruction boundary
  kReset,      // the guest asked for a reset (i8042 0xFE: `reboot`, panic=-1)
  kShutdown,   // triple fault
};

class LinuxMachine {
 public:
  // Creates the VM, its memory slot over `mem` and the devices.
  static Result<std::unique_ptr<LinuxMachine>> Create(const Kvm& kvm, GuestMemoryView mem,
                                                      const LinuxMachineOptions& options);
  ~LinuxMachine();
  LinuxMachine(const LinuxMachine&) = delete;
  LinuxMachine& operator=(const LinuxMachine&) = delete;

  // Fresh boot: registers for the kernel's 64-bit entry (the loader has
  // filled guest memory), CPUID, LAPIC in virtual-wire mode.
  Status PrepareBoot(const Kvm& kvm, GuestMemoryView mem, const LinuxBootInfo& info);
  // Clone: vCPU, irqchip, PIT, clock, vsock, pmem and serial state from the
  // template (whose memory `mem` already maps). The machine must have a
  // rootfs exactly when the template has one.
  Status Restore(const TemplateState& state);

  // Polled by the device thread; on_readable returning true stops the
  // machine. Set before Start().
  void SetExtraFd(int fd, std::function<bool()> on_readable);

  Status Start();
  // Thread-safe; idempotent.
  void RequestStop();
  // Waits for both threads. An Error when the VMM failed (a KVM exit we
  // cannot serve, a host-side device error).
  Result<LinuxStop> Join();

  // With the machine joined: the template's vCPU, VM and device state.
  Status Capture(TemplateState* state);

  // Runs `f` with the device lock held (e.g. to add a vsock client).
  template <typename F>
  auto WithDevices(F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    return f(*vsock_);
  }

  // False once the machine stopped or was asked to.
  bool running() const { return !stop_; }
  const Vm& vm() const { return vm_; }
  uint64_t started_ns() const { return started_ns_; }
  // The vCPU's registers for an error report (after Join).
  std::string DescribeCrash() const { return vcpu_.DescribeForCrash(); }

 private:
  LinuxMachine() = default;
  void VcpuThread();
  void DeviceThread();
  void Fail(Error e);
  // An edge on `gsi` (virtio-mmio used-buffer notifications; the DSDT
  // declares them edge-triggered). A KVM error fails the machine.
  void PulseGsi(uint32_t gsi);

  GuestMemoryView mem_;
  Vm vm_;
  Vcpu vcpu_;
  IoBus bus_;
  std::mutex mu_;  // every device below
  std::unique_ptr<vsock::HybridVsock> vsock_;
  std::unique_ptr<pmem::VirtioPmem> pmem_;  // null without a rootfs
  std::unique_ptr<Serial8250> serial_;
  std::unique_ptr<I8042> i8042_;
  std::unique_ptr<LinuxConsole> console_;
  std::vector<std::unique_ptr<IoDevice>> locked_;  // bus adapters taking mu_

  int extra_fd_ = -1;
  std::function<bool()> on_extra_;
  UniqueFd wake_;  // eventfd: the device thread's stop signal
  VmmThread vcpu_thread_, device_thread_;  // small stacks: see vmm_thread.h
  volatile bool stop_ = false;  // read by RunVcpu after EINTR
  std::atomic<bool> reset_{false};
  std::mutex fail_mu_;
  std::optional<Error> failure_;
  Result<StopReason> vcpu_result_ = Error("not run");
  uint64_t started_ns_ = 0;
  std::vector<kvm_cpuid_entry2> cpuid_;  // what PrepareBoot gave the vCPU
};

}  // namespace kf
