// Creating a template of the bare guest: boot it in this process, wait for
// its READY signal, stop it when it first waits for work (an instruction
// boundary after the pending `in` is completed), capture vCPU, VM and memory,
// and write the template directory.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "snapshot/template_state.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/kvm.h"
#include "vmm-glue/vm.h"

namespace kf {

struct BareTemplateOptions {
  uint64_t mem_bytes = 128ull << 20;
  uint64_t init_bytes = 64ull << 20;
  uint64_t seed = 0x6b66;
  VmConfig vm;
  int boot_timeout_s = 120;
  // Test mode (KF_BOOT_FLAG_HOSTILE): the guest scribbles garbage into its
  // virtqueues instead of serving the agent protocol. Captured at its first
  // idle wait after READY, with no agent probe.
  bool hostile = false;
};

struct BareBootResult {
  uint64_t boot_ns = 0;       // VM creation to READY
  uint64_t init_hash = 0;     // the agent's hash of the memory it initialised (from Ready)
};

// Why the guest panicked, from its boot info (agent/bare/bare_abi.h).
std::string DescribeBarePanic(const GuestMemoryView& mem);

// Boots, captures and writes the template to `out_dir` (which must not exist).
Result<BareBootResult> CreateBareTemplate(const Kvm& kvm, const BareTemplateOptions& options,
                                          std::span<const uint8_t> image,
                                          const std::string& out_dir);

}  // namespace kf
