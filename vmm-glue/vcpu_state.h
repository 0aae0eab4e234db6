// The full architectural state of one x86 vCPU as KVM exposes it, in the
// order it must be restored (see Vcpu::RestoreState). Kernel ABI structs are
// kept as they are: KVM's ABI is stable, and snapshot/ validates their sizes.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kf {

struct MsrValue {
  uint32_t index = 0;
  uint64_t value = 0;
};

struct VcpuState {
  std::vector<kvm_cpuid_entry2> cpuid;    // set first: KVM checks EFER etc. against it
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<uint8_t> xsave;             // KVM_GET_XSAVE(2) area, or empty
  std::optional<kvm_fpu> fpu;             // only when the host has no XSAVE
  std::optional<kvm_xcrs> xcrs;
  std::vector<MsrValue> msrs;
  std::optional<kvm_lapic_state> lapic;
  std::optional<kvm_vcpu_events> events;
  std::optional<kvm_debugregs> debugregs;
  std::optional<kvm_mp_state> mp_state;
  std::optional<uint32_t> tsc_khz;
  std::vector<std::string> unsupported;  // "what: why", pieces the host refused
};

}  // namespace kf
