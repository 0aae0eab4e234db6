// One KVM vCPU: its fd, the shared kvm_run page, KVM_RUN, and capture and
// restore of its full state.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm-glue/kvm.h"
#include "vmm-glue/vcpu_state.h"

namespace kf {

class Vcpu {
 public:
  Vcpu() = default;
  Vcpu(UniqueFd fd, kvm_run* run, size_t run_size,
       std::shared_ptr<const KvmHostInfo> host, int id);
  ~Vcpu();
  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&& other) noexcept;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  // One KVM_RUN. Returns false (not an error) when interrupted by a signal
  // or by immediate_exit; the exit reason is then in run()->exit_reason.
  Result<bool> Run();
  // Completes a pending PIO/MMIO exit without running guest code further, so
  // the vCPU sits at an instruction boundary: required before capturing
  // state (KVM API, "immediate_exit").
  Status CompletePendingExit();

  kvm_run* run() { return run_; }
  size_t run_size() const { return run_size_; }
  int fd() const { return fd_.get(); }
  int id() const { return id_; }

  Status SetCpuid(const std::vector<kvm_cpuid_entry2>& entries);
  // The boot CPU's LAPIC in "virtual wire" mode, as firmware leaves it: LINT0
  // takes ExtINT (the 8259's output), LINT1 NMI. Linux expects this before
  // it switches to the IOAPIC (needs the in-kernel irqchip).
  Status SetupLapicVirtualWire();
  Result<kvm_regs> GetRegs() const;
  Status SetRegs(const kvm_regs& regs);
  Result<kvm_sregs> GetSregs() const;
  Status SetSregs(const kvm_sregs& sregs);

  // MSRs from the host's index list that can be both read and written back;
  // probed once on the template's vCPU.
  Result<std::vector<uint32_t>> ProbeSavableMsrs();

  Result<VcpuState> CaptureState(const std::vector<uint32_t>& msr_indices,
                                 const std::vector<kvm_cpuid_entry2>& cpuid);
  Status RestoreState(const VcpuState& state);

  // "rip=... rsp=... cr2=... cr3=... cs=..." for a crash report (a triple
  // fault leaves the registers as they were when the last fault hit).
  std::string DescribeForCrash() const;

 private:
  Result<std::vector<MsrValue>> GetMsrs(const std::vector<uint32_t>& indices) const;
  Status SetMsrs(const std::vector<MsrValue>& msrs);

  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  std::shared_ptr<const KvmHostInfo> host_;
  int id_ = -1;
};

}  // namespace kf
