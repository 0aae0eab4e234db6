// Loader for bare guests: a flat image that runs at CPL3 in long mode with
// no kernel (DESIGN.md "Guest kinds", ENVIRONMENT.md section 3). Builds the
// identity-mapped page tables (user-accessible 2 MiB pages, plus the
// uncached page that holds the vsock device's MMIO window), the GDT and TSS,
// the boot info page, and the vCPU registers: CS/SS at DPL 3 and
// RFLAGS.IOPL = 3, so port I/O exits to the VMM instead of faulting.
#pragma once

#include <cstdint>
#include <span>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/vcpu.h"

namespace kf {

struct BareBootConfig {
  uint64_t init_size = 0;  // bytes the guest initialises at boot
  uint64_t seed = 0;       // template RNG seed
  uint32_t flags = 0;      // KF_BOOT_FLAG_* (KF_BOOT_FLAG_HOSTILE: the test mode)
};

// Writes page tables, GDT, TSS, boot info and the image into guest memory,
// which must be zeroed and at least KF_BARE_MIN_MEM bytes.
Status LoadBareImage(const GuestMemoryView& mem, std::span<const uint8_t> image,
                     const BareBootConfig& config);

// Sets CPUID, special and general registers to enter the image at CPL3.
Status SetupBareVcpu(Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid);

}  // namespace kf
