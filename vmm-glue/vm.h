// A KVM virtual machine: its fd, memory slots, in-kernel irqchip and PIT,
// and the VM-wide state (irqchip, PIT, kvmclock) for snapshots.
//
// A Vm belongs to the process (mm) that created it: KVM refuses ioctls from
// another process, so a zygote never creates one; each forked clone does.
#pragma once

#include <cstdint>
#include <memory>

#include "vmm-glue/kvm.h"
#include "vmm-glue/vcpu.h"
#include "vmm-glue/vm_state.h"

namespace kf {

struct VmConfig {
  // In-kernel LAPIC/IOAPIC/PIC. Cheap; gives guests a real local APIC.
  bool irqchip = true;
  // In-kernel PIT. Costs one kernel thread per VM ("kvm-pit/<pid>"), which
  // counts against pid_max at thousands of VMs: off for bare guests.
  bool pit = false;
};

class Vm {
 public:
  static Result<Vm> Create(const Kvm& kvm, const VmConfig& config);

  // Maps [gpa, gpa+size) of guest physical memory to host memory at hva.
  Status SetMemorySlot(uint32_t slot, uint64_t gpa, uint64_t size, void* hva,
                       bool read_only = false);
  Result<Vcpu> CreateVcpu(int id);
  // KVM_IRQ_LINE on the in-kernel irqchip (PIC and IOAPIC pin `gsi`).
  // Thread-safe: devices raise lines from whichever thread serves them.
  Status SetIrqLine(uint32_t gsi, bool level) const;
  // Masks every line of the in-kernel 8259 pair. For guests that never
  // program it (Linux with a HW-reduced ACPI FADT uses only the IOAPIC):
  // KVM routes GSIs 0-15 to the 8259 too, and an unprogrammed 8259 with
  // vector base 0 would turn device interrupts into exceptions 0-15 through
  // the BSP's ExtINT LINT0.
  Status MaskLegacyPic() const;

  // VM-wide state. Pieces the host does not support are recorded in
  // VmState::unsupported with the reason, never silently dropped.
  Result<VmState> CaptureState() const;
  Status RestoreState(const VmState& state);

  int fd() const { return fd_.get(); }
  const KvmHostInfo& host() const { return *host_; }
  const VmConfig& config() const { return config_; }

 private:
  UniqueFd fd_;
  std::shared_ptr<const KvmHostInfo> host_;
  VmConfig config_;
};

}  // namespace kf
