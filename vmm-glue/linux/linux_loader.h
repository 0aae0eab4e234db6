// Direct boot of a stock x86-64 Linux kernel (the 64-bit boot protocol of
// Documentation/arch/x86/boot.rst, no firmware, no real-mode setup code):
// a bzImage (boot protocol >= 2.12 with XLF_KERNEL_64) or an uncompressed
// ELF64 vmlinux, an optional initrd, a command line, and the boot_params
// ("zero page") with an e820 map.
//
// Guest physical layout (guest RAM is [0, mem_size), mem_size <= 3 GiB: the
// MMIO hole starts at 0xc000'0000):
//
//   0x0000'0500  GDT: 0 null, 0x08 null, 0x10 __BOOT_CS (64-bit code),
//                0x18 __BOOT_DS (flat data), 0x20 64-bit TSS (two slots)
//   0x0000'0540  the TSS the TR register names (VMX refuses an unusable TR)
//   0x0000'7000  boot_params (4 KiB)
//   0x0000'8000  boot stack (RSP = 0x9000 at entry; the kernel sets its own
//                before it pushes anything)
//   0x0000'9000  PML4, 0xa000 PDPT, 0xb000-0xefff four PDs: 2 MiB pages
//                identity-mapping [0, 4 GiB), present + writable, kernel only
//   0x0002'0000  command line, NUL-terminated (at most 64 KiB, and no longer
//                than the kernel's cmdline_size)
//   0x0009'fc00  reserved in e820 up to 0x10'0000 (EBDA, VGA, option ROMs,
//                BIOS; the integrator puts the ACPI tables at 0xe'0000)
//   0x0010'0000  bzImage: the protected-mode part, entry at +0x200 (see
//                kLinuxBzImageLoadGpa); ELF: segments where p_paddr says
//                (which must lie at or above 1 MiB)
//   ...          initrd: page aligned, as high as the limit allows, above
//                the kernel's end
//
// e820: RAM [0, 0x9fc00), reserved [0x9fc00, 0x100000), RAM [0x100000,
// mem_size). Everything in the kernel file is untrusted: every offset and
// size is bounds-checked and a bad file is refused with an Error that names
// the field. The guest memory need not be zeroed: everything the loader
// writes it zeroes first.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/result.h"
#include "vmm-glue/vcpu.h"

namespace kf {

inline constexpr uint64_t kLinuxGdtGpa = 0x500;
inline constexpr uint64_t kLinuxGdtEntries = 6;  // null, null, CS, DS, TSS (2)
inline constexpr uint64_t kLinuxTssGpa = 0x540;
inline constexpr uint64_t kLinuxTssLimit = 0x67;  // a 104-byte 64-bit TSS
inline constexpr uint64_t kLinuxBootParamsGpa = 0x7000;
inline constexpr uint64_t kLinuxBootParamsSize = 0x1000;
inline constexpr uint64_t kLinuxStackTop = 0x9000;
inline constexpr uint64_t kLinuxPml4Gpa = 0x9000;
inline constexpr uint64_t kLinuxPdptGpa = 0xa000;
inline constexpr uint64_t kLinuxPdGpa = 0xb000;
inline constexpr uint64_t kLinuxPdPages = 4;  // 4 x 1 GiB of 2 MiB pages
inline constexpr uint64_t kLinuxIdentityMapped = kLinuxPdPages << 30;
inline constexpr uint64_t kLinuxCmdlineGpa = 0x20000;
inline constexpr uint64_t kLinuxCmdlineMax = 0x10000;  // bytes, NUL included
inline constexpr uint64_t kLinuxLowRamEnd = 0x9fc00;
inline constexpr uint64_t kLinuxHighRamStart = 0x100000;
inline constexpr uint64_t kLinuxMaxMem = 0xc0000000;  // the MMIO hole
// Where the protected-mode part of a bzImage goes. Always 1 MiB, never
// pref_address: the 64-bit entry decompresses to the runtime start
// (max(load address, pref_address) aligned to kernel_alignment, 16 MiB for
// Debian's kernels) whatever the load address, so loading at pref_address
// buys nothing; 1 MiB is where QEMU, kvmtool and Firecracker put it, works
// for non-relocatable kernels too (they run at pref_address regardless),
// keeps the entry point a constant (0x100200) that snapshots and tests can
// rely on, and lets no field of an untrusted header choose where we write.
inline constexpr uint64_t kLinuxBzImageLoadGpa = 0x100000;
// The initrd stays below this for an ELF vmlinux (no initrd_addr_max to
// read; 0x37ffffff is the historical default the boot protocol gives).
inline constexpr uint64_t kLinuxElfInitrdLimit = 0x38000000;
// The command line limit for an ELF vmlinux, which has no setup header:
// x86's COMMAND_LINE_SIZE is 2048 bytes with the NUL.
inline constexpr uint32_t kLinuxElfCmdlineSize = 2047;

// Selectors the 64-bit boot protocol requires (boot.rst, "64-bit Boot
// Protocol": __BOOT_CS = 0x10, __BOOT_DS = 0x18).
inline constexpr uint16_t kLinuxBootCs = 0x10;
inline constexpr uint16_t kLinuxBootDs = 0x18;
inline constexpr uint16_t kLinuxBootTss = 0x20;

// e820 types.
inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

static_assert(kLinuxGdtGpa + kLinuxGdtEntries * 8 <= kLinuxTssGpa);
static_assert(kLinuxTssGpa + kLinuxTssLimit + 1 <= kLinuxBootParamsGpa);
static_assert(kLinuxBootParamsGpa + kLinuxBootParamsSize <= kLinuxStackTop - 0x1000);
static_assert(kLinuxStackTop <= kLinuxPml4Gpa);
static_assert(kLinuxPml4Gpa + 0x1000 == kLinuxPdptGpa && kLinuxPdptGpa + 0x1000 == kLinuxPdGpa);
static_assert(kLinuxPdGpa + kLinuxPdPages * 0x1000 <= kLinuxCmdlineGpa);
static_assert(kLinuxCmdlineGpa + kLinuxCmdlineMax <= kLinuxLowRamEnd);
static_assert(kLinuxLowRamEnd < kLinuxHighRamStart);
static_assert(kLinuxBzImageLoadGpa >= kLinuxHighRamStart);
static_assert(kLinuxMaxMem <= kLinuxIdentityMapped,
              "all of RAM (kernel, boot_params, cmdline, initrd) is identity-mapped");
static_assert(kLinuxElfInitrdLimit <= kLinuxMaxMem);

struct E820Entry {
  uint64_t addr, size;
  uint32_t type;
};

struct LinuxBootConfig {
  std::span<const uint8_t> kernel;  // a bzImage or an ELF64 vmlinux
  std::span<const uint8_t> initrd;  // may be empty
  std::string cmdline;
  uint64_t rsdp_gpa = 0;  // boot_params.acpi_rsdp_addr when non-zero
  uint64_t mem_size = 0;  // guest RAM is [0, mem_size): a multiple of 4 KiB,
                          // at most kLinuxMaxMem
};

struct LinuxBootInfo {
  uint64_t entry_gpa = 0;        // 64-bit entry point (RIP)
  uint64_t boot_params_gpa = 0;  // RSI at entry
  // First byte past the memory the kernel needs: for a bzImage
  // max(load address + protected-mode size, runtime start + init_size), for
  // an ELF the end of its highest segment.
  uint64_t kernel_end = 0;
  uint64_t initrd_gpa = 0, initrd_size = 0;  // 0, 0 without an initrd
  std::vector<E820Entry> e820;               // as written to boot_params
  bool bzimage = false;
};

// Validates the kernel, writes GDT, TSS, page tables, boot_params, command
// line, kernel and initrd into `mem` (which must hold at least
// cfg.mem_size bytes).
Result<LinuxBootInfo> LoadLinux(GuestMemoryView mem, const LinuxBootConfig& cfg);

// Sets the special and general registers for the 64-bit entry: long mode
// with paging (CR0 = PE|ET|NE|PG, CR4 = PAE, EFER = LME|LMA, CR3 = the
// PML4), CS = 0x10 (L=1), DS/ES/SS/FS/GS = 0x18, TR = 0x20, the GDT above,
// an empty IDT (interrupts stay off: RFLAGS = 2); RIP = entry, RSI =
// boot_params, RSP = kLinuxStackTop. CPUID is the caller's business (set it
// before: the kernel reads it on its first instructions). Checks first that
// `mem` holds what LoadLinux wrote.
Status SetupLinuxVcpu(Vcpu& vcpu, GuestMemoryView mem, const LinuxBootInfo& info);

// The pieces SetupLinuxVcpu applies, for tests: `sregs` as KVM_GET_SREGS
// returned it (APIC base and the rest are kept), with the fields above set.
void FillLinuxSregs(kvm_sregs& sregs);
kvm_regs LinuxEntryRegs(const LinuxBootInfo& info);

}  // namespace kf
