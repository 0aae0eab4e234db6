// What a template is, in plain C++: everything needed to create a clone
// except guest memory (memory.img). The on-disk form is the TemplateState
// protobuf (proto/snapshot.proto) inside state.bin; see
// docs/SNAPSHOT_FORMAT.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/snapshot.pb.h"
#include "proto/vsock_state.pb.h"
#include "vmm-glue/result.h"
#include "vmm-glue/vcpu_state.h"
#include "vmm-glue/vm.h"
#include "vmm-glue/vm_state.h"

namespace kf {

// Bumped whenever a template written by this build could be misread by the
// previous one. Readers accept exactly this version: a template is cheap to
// re-create, a wrongly restored VM is not.
// 2: vsock device state; 3: Linux guests (linux_guest, serial state);
// 4: the pmem rootfs (linux_guest.rootfs_*, pmem; device at 0xd0001000).
inline constexpr uint32_t kTemplateFormatVersion = 4;

inline constexpr char kGuestKindBare[] = "bare";
inline constexpr char kGuestKindLinux[] = "linux";

inline constexpr uint64_t kTemplatePageSize = 4096;
// memory.img is guest memory followed by this footer (snapshot/memory_file.h).
inline constexpr uint64_t kMemoryFooterSize = 64;

// Limits a reader enforces, so a damaged file cannot make it allocate or
// loop without bound.
inline constexpr uint64_t kMaxMemSize = 1ull << 44;  // 16 TiB
inline constexpr size_t kMaxVcpus = 4096;
// Linux guests keep RAM below the 32-bit MMIO hole (factory/linux_layout.h).
inline constexpr uint64_t kLinuxMaxMemSize = 0xc0000000ull;
inline constexpr size_t kMaxMemoryRegions = 64;
inline constexpr size_t kMaxCpuidEntries = 4096;
inline constexpr size_t kMaxMsrs = 4096;
// The legacy XSAVE area; KVM_CAP_XSAVE2 may report more. Not
// sizeof(kvm_xsave): in C++ its __DECLARE_FLEX_ARRAY tail adds 4 bytes.
inline constexpr size_t kMinXsaveBytes = sizeof(kvm_xsave::region);
inline constexpr size_t kMaxXsaveBytes = 1 << 20;

// One slot of guest physical memory, backed by memory.img at file_offset.
struct MemoryRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint64_t file_offset = 0;
};

// Parameters of a bare guest (agent/bare/bare_abi.h); zero for linux guests.
struct BareGuestConfig {
  uint64_t init_bytes = 0;      // kf_boot_info.init_size
  uint64_t seed = 0;            // kf_boot_info.seed
  uint64_t image_checksum = 0;  // XXH3-64 of the bare image that was booted
};

// Parameters and device state of a Linux guest; empty for bare guests.
struct LinuxGuestConfig {
  std::string cmdline;
  uint64_t kernel_checksum = 0;  // XXH3-64 of the kernel file that was booted
  uint64_t initrd_checksum = 0;  // XXH3-64 of the initramfs
  std::optional<katafactory::snapshot::v1::SerialState> serial;
  // The pmem rootfs (kRootfsFileName in the template directory); absent
  // when the guest booted without one.
  uint64_t rootfs_size = 0;
  uint64_t rootfs_checksum = 0;  // XXH3-64 of the image
  std::optional<katafactory::snapshot::v1::PmemDeviceState> pmem;
};

// The host the template was taken on.
struct TemplateHost {
  std::string kernel_release;  // uname -r
  std::string cpu_model;       // /proc/cpuinfo "model name"
  bool is_pvm = false;
};

struct TemplateState {
  // Set by WriteTemplate; checked by ReadTemplateState.
  uint32_t format_version = kTemplateFormatVersion;
  uint64_t template_id = 0;       // random, set by WriteTemplate
  uint64_t memory_file_size = 0;  // set by WriteTemplate: mem_size + footer
  uint64_t memory_checksum = 0;   // set by WriteTemplate: XXH3-64 of memory

  std::string guest_kind;  // kGuestKindBare or kGuestKindLinux
  int64_t created_unix_ns = 0;
  uint64_t mem_size = 0;  // guest RAM bytes; the data extent of memory.img
  // Guest physical layout. WriteTemplate fills in one region {0, mem_size, 0}
  // when empty.
  std::vector<MemoryRegion> regions;
  VmConfig vm_config;
  BareGuestConfig bare;
  LinuxGuestConfig linux_guest;
  VmState vm;
  std::vector<VcpuState> vcpus;  // index = vCPU id
  TemplateHost host;
  // The virtio-vsock device (transport, queues, connections); required for
  // bare guests, which reach their agent only through it.
  std::optional<katafactory::snapshot::v1::VsockDeviceState> vsock;
};

// Checks what the typed structs cannot: guest kind, memory size and layout
// (page aligned, inside memory.img, no overlaps, sizes add up to mem_size),
// vCPU count, and the variable-size pieces of each vCPU (xsave, cpuid,
// MSRs). Used before writing and after reading.
Status ValidateTemplateState(const TemplateState& state);

}  // namespace kf
