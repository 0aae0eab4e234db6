// KVM's NX huge page mitigation (the kvm.nx_huge_pages module parameter,
// against the iTLB multihit erratum) and what it costs a fork server.
//
// Unless the parameter is "never", KVM_CREATE_VM starts a kernel thread per
// VM (kvm-nx-lpage-recovery; Linux 6.13+ starts it at the first KVM_RUN
// instead) and the VM's teardown stops it. Both wait for the scheduler, not
// the CPU: inside L1 KVM_CREATE_VM took 11.8 ms of wall time for 1.7 ms of
// CPU, and 1.8 ms once the parameter was "never" (docs/BENCHMARKS.md). On a
// CPU the erratum does not affect, or wherever the mitigation is off ("N"),
// "never" changes no protection: it only stops the thread and makes the
// setting stick until the kvm module is reloaded. The kernel accepts it only
// while no VM exists on the host.
#pragma once

#include <string>

#include "vmm-glue/result.h"

namespace kf {

struct NxHugePages {
  bool present = false;        // the kvm module's parameter file exists
  std::string value;           // as the kernel shows it: "N", "Y" or "never"
  std::string itlb_multihit;   // the CPU's line in sysfs vulnerabilities; "" if absent

  // KVM starts a recovery thread for each VM.
  bool ThreadPerVm() const { return present && value != "never"; }
  // "" when "never" may be set without changing any protection: the
  // mitigation is off now and the CPU is not affected. Otherwise why not
  // (including "already never").
  std::string WhyNotTunable() const;
};

// Reads /sys/module/kvm/parameters/nx_huge_pages and
// /sys/devices/system/cpu/vulnerabilities/itlb_multihit under `sysfs`.
NxHugePages ReadNxHugePages(const std::string& sysfs = "/sys");

// Sets kvm.nx_huge_pages to "never" when WhyNotTunable() is empty and says
// what it did ("kvm.nx_huge_pages N -> never"); an error says why it could
// not (not tunable, not root, VMs already exist: EBUSY).
Result<std::string> SetNxHugePagesNever(const std::string& sysfs = "/sys");

}  // namespace kf
