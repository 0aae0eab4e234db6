// Where a Linux guest's devices live. Part of the template format: a clone
// restores a kernel that found its devices at these addresses and lines, so
// changing any of them means bumping kTemplateFormatVersion.
#pragma once

#include <cstdint>

namespace kf::linux_layout {

// ACPI tables (RSDP first) in the legacy BIOS area, which the kernel scans
// for "RSD PTR " and which the loader's e820 map reserves.
inline constexpr uint64_t kAcpiGpa = 0xe0000;
inline constexpr uint64_t kAcpiMaxSize = 0x20000;

// RAM stays below the 32-bit MMIO hole (one memory slot, one region).
inline constexpr uint64_t kMaxMemSize = 0xc0000000ull;
inline constexpr uint64_t kMinMemSize = 64ull << 20;

// virtio-mmio windows, announced in the DSDT (LNRO0005), interrupts through
// the in-kernel IOAPIC, pulsed (edge) on each used-buffer notification.
inline constexpr uint64_t kVsockMmioGpa = 0xd0000000ull;
inline constexpr uint32_t kVsockGsi = 5;
// virtio-pmem (the read-only rootfs, DAX), when the template has one.
inline constexpr uint64_t kPmemMmioGpa = 0xd0001000ull;
inline constexpr uint32_t kPmemGsi = 6;
// Its region: past RAM and the 32-bit MMIO hole, 2 MiB aligned
// (memshare/pmem_backing.h says why), in its own read-only memory slot.
inline constexpr uint64_t kPmemGpa = 0x100000000ull;
inline constexpr uint32_t kPmemSlot = 1;
// The agent mounts this device at /rootfs (agent/linux/pid1.h).
inline constexpr char kRootfsCmdline[] = "kf_agent.rootfs=/dev/pmem0";

// The 8250 console (COM1) and the i8042 reset line.
inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint32_t kCom1Gsi = 4;

// The default kernel command line; the template records the one it booted.
inline constexpr char kDefaultCmdline[] =
    "console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nomux i8042.nopnp "
    "i8042.dumbkbd tsc=reliable no_timer_check rdinit=/init";

}  // namespace kf::linux_layout
