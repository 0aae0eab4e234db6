// The machine a bench ran on, for its report: CPU model and cores, memory,
// kernel, and which KVM (the same description `kata-factory host` and
// templates use: factory/template_host.h).
#pragma once

#include <cstdint>
#include <string>

namespace kf::bench {

struct Machine {
  std::string cpu_model;
  uint64_t cores = 0;            // online CPUs
  uint64_t mem_total_bytes = 0;  // MemTotal
  std::string kernel;            // uname -r
  // "pvm", "vmx" (kvm-intel), "svm" (kvm-amd), "kvm" (neither flag seen),
  // or "none" (kvm_reason says why).
  std::string kvm;
  std::string kvm_reason;
  bool under_hypervisor = false;  // /proc/cpuinfo "hypervisor": a VM (nested, cloud)
  // The kvm module's nx_huge_pages ("" when not loaded): anything but
  // "never" costs each new VM a kernel thread (vmm-glue/nx_huge_pages.h).
  std::string kvm_nx_huge_pages;
};

Machine DescribeMachine();

}  // namespace kf::bench
