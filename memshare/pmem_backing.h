// DAX regions (DESIGN.md "Template and clone", 4.): a host image file (the
// guest rootfs, e.g. scripts/build-guest's rootfs.ext4) mapped into the
// VMM's address space, to become a KVM memory slot at a fixed guest
// physical address that the virtio-pmem device (vmm-glue/pmem/) announces.
//
// Why a non-zero multiple of 2 MiB:
// - the guest's nd_pmem driver maps the region with memremap_pages() (the
//   struct pages that fsdax needs), and the kernel's memory hotplug works in
//   subsections of 2 MiB on x86-64: a range whose start or size is not
//   subsection aligned is refused (check_pfn_span(), -EINVAL);
// - fsdax serves faults with 2 MiB (PMD) mappings where the region is 2 MiB
//   aligned, and the region's size is the file's size: a tail that is not a
//   whole 2 MiB page would be lost to the guest, and mapping past the end
//   of the file would fault (SIGBUS) in the VMM;
// - KVM backs a guest 2 MiB page with a host huge page only when the host
//   address is congruent to the guest address modulo 2 MiB, so the mapping
//   is placed on a 2 MiB boundary too (the guest address is, see
//   pmem::VirtioPmem::Create).
#pragma once

#include <cstdint>
#include <string>

#include "memshare/guest_backing.h"
#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

inline constexpr uint64_t kPmemImageAlignment = 2ull << 20;

struct PmemBacking {
  // The open image (O_RDONLY or O_RDWR): for the device's fsync on flush.
  UniqueFd fd;
  // MAP_SHARED, 2 MiB aligned, the whole file: PROT_READ when read_only
  // (the memory slot must then be KVM_MEM_READONLY: guest stores become
  // MMIO exits), else PROT_READ | PROT_WRITE (guest stores reach the file).
  Mapping mapping;
  uint64_t size = 0;  // == mapping.size()
  bool read_only = false;
};

// Opens `path`, checks that it is a regular file whose size is a non-zero
// multiple of 2 MiB, and maps it. Errors name the path and the rule broken.
Result<PmemBacking> MapPmemImage(const std::string& path, bool read_only);

}  // namespace kf
