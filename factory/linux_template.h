// Creating a template of a Linux guest: load the kernel and initramfs (and
// map the rootfs image), boot with ACPI tables announcing the virtio-mmio
// devices, wait until the
// agent (the initramfs's /init) answers on vsock port 1024, stop the vCPU
// at an instruction boundary, capture vCPU, irqchip, PIT, kvmclock and
// device state, and write the template directory.
#pragma once

#include <cstdint>
#include <string>

#include "vmm-glue/kvm.h"
#include "vmm-glue/result.h"

namespace kf {

struct LinuxTemplateOptions {
  std::string kernel_path;  // bzImage (vmlinuz) or ELF vmlinux
  std::string initrd_path;  // the initramfs whose /init is the agent
  std::string cmdline;      // empty: linux_layout::kDefaultCmdline
  // The rootfs image for virtio-pmem (ext4 or erofs, a multiple of 2 MiB),
  // mounted read-only with DAX by the agent at /rootfs; empty: none. The
  // template keeps a copy (rootfs.img) and appends kRootfsCmdline to the
  // command line.
  std::string rootfs_path;
  uint64_t mem_bytes = 256ull << 20;
  int boot_timeout_s = 300;
  // Where the guest console goes while the template boots; empty: a
  // boot-console.log inside the template directory.
  std::string console_log;
  // Progress lines ("waiting for the agent ...") go here when set.
  bool verbose = false;
};

struct LinuxBootResult {
  uint64_t boot_ns = 0;   // VM creation to the agent's Ready
  uint64_t probes = 0;    // connection attempts until the agent answered
  std::string kernel_release;
};

// Boots, captures and writes the template to `out_dir` (which must not exist).
Result<LinuxBootResult> CreateLinuxTemplate(const Kvm& kvm, const LinuxTemplateOptions& options,
                                            const std::string& out_dir);

}  // namespace kf
