#include "vmm-glue/bare_loader.h"
#include "vmm-glue/x86_segments.h"

#include <cstring>

#include "agent/bare/bare_abi.h"

namespace kf {

namespace {

constexpr uint64_t kPresent = 1ull << 0, kWritable = 1ull << 1, kUser = 1ull << 2,
                   kWriteThrough = 1ull << 3, kCacheDisable = 1ull << 4, kHuge = 1ull << 7;
constexpr uint64_t k2MiB = 2ull << 20;

// GDT selectors. Index 4/5 are the user data/code64 descriptors; 6-7 the TSS.
constexpr uint16_t kUserDataSelector = (4 << 3) | 3;
constexpr uint16_t kUserCodeSelector = (5 << 3) | 3;
constexpr uint16_t kTssSelector = 6 << 3;
constexpr uint64_t kGdt[] = {
    0,                      // null
    0x00af9a000000ffffull,  // kernel code64 (unused, kept for a sane table)
    0x00cf92000000ffffull,  // kernel data
    0x00cffa000000ffffull,  // user code32 (unused)
    0x00cff2000000ffffull,  // user data, DPL 3
    0x00affa000000ffffull,  // user code64, DPL 3
};
constexpr uint32_t kTssLimit = 0x67;

void WriteTssDescriptor(uint8_t* gdt) {
  const uint64_t base = KF_BARE_TSS_GPA;
  uint64_t low = kTssLimit & 0xffff;
  low |= (base & 0xffffff) << 16;
  low |= 0x89ull << 40;  // present, 64-bit available TSS
  low |= ((base >> 24) & 0xff) << 56;
  uint64_t high = base >> 32;
  std::memcpy(gdt + 6 * 8, &low, 8);
  std::memcpy(gdt + 7 * 8, &high, 8);
}

kvm_segment Segment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 3;
  s.db = code ? 0 : 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace

Status LoadBareImage(const GuestMemoryView& mem, std::span<const uint8_t> image,
                     const BareBootConfig& config) {
  const uint64_t size = mem.size();
  if (size < KF_BARE_MIN_MEM || size > KF_BARE_MAX_MEM || size % k2MiB != 0)
    return Error("bare guest memory must be a multiple of 2 MiB between 8 MiB and 3 GiB, not " +
                 std::to_string(size) + " bytes");
  if (image.empty() || image.size() > KF_BARE_IMAGE_MAX)
    return Error("bare image of " + std::to_string(image.size()) + " bytes (max 1 MiB)");
  if (config.init_size > size - KF_BARE_INIT_GPA)
    return Error("init size " + std::to_string(config.init_size >> 20) +
                 " MiB does not fit in " + std::to_string(size >> 20) +
                 " MiB of guest memory (4 MiB are reserved)");
  if ((config.flags & ~KF_BOOT_FLAGS_KNOWN) != 0)
    return Error("unknown bare boot flags " + std::to_string(config.flags));

  // Identity map [0, size) with 2 MiB user pages: PML4[0] -> PDPT -> 4 PDs.
  *mem.As<uint64_t>(KF_BARE_PML4_GPA) = KF_BARE_PDPT_GPA | kPresent | kWritable | kUser;
  for (uint64_t i = 0; i < KF_BARE_PD_PAGES; ++i)
    *mem.As<uint64_t>(KF_BARE_PDPT_GPA + i * 8) =
        (KF_BARE_PD_GPA + i * 4096) | kPresent | kWritable | kUser;
  for (uint64_t gpa = 0; gpa < size; gpa += k2MiB)
    *mem.As<uint64_t>(KF_BARE_PD_GPA + (gpa / k2MiB) * 8) =
        gpa | kPresent | kWritable | kUser | kHuge;
  // The vsock device's MMIO window: no memory slot behind it, so accesses
  // exit; uncached (PCD|PWT with PAT index 3 = UC), so none is combined.
  static_assert(KF_BARE_VSOCK_MMIO_GPA >= KF_BARE_MAX_MEM &&
                    KF_BARE_VSOCK_MMIO_GPA < (KF_BARE_PD_PAGES << 30),
                "the MMIO window lies above memory, inside the mapped 4 GiB");
  const uint64_t mmio_page = KF_BARE_VSOCK_MMIO_GPA & ~(k2MiB - 1);
  *mem.As<uint64_t>(KF_BARE_PD_GPA + (mmio_page / k2MiB) * 8) =
      mmio_page | kPresent | kWritable | kUser | kWriteThrough | kCacheDisable | kHuge;

  uint8_t* gdt = mem.At(KF_BARE_GDT_GPA, 8 * 8);
  std::memcpy(gdt, kGdt, sizeof kGdt);
  WriteTssDescriptor(gdt);
  // TSS: zero RSPs, I/O map base past the limit (IOPL=3 allows all ports).
  uint8_t* tss = mem.At(KF_BARE_TSS_GPA, kTssLimit + 1);
  uint16_t iomap_base = kTssLimit + 1;
  std::memcpy(tss + 0x66, &iomap_base, 2);

  std::memcpy(mem.At(KF_BARE_IMAGE_GPA, image.size()), image.data(), image.size());

  std::memset(mem.At(KF_BARE_BOOT_GPA, KF_BARE_BOOT_SIZE), 0, KF_BARE_BOOT_SIZE);
  auto* boot = mem.As<kf_boot_info>(KF_BARE_BOOT_GPA);
  boot->magic = KF_BARE_MAGIC;
  boot->abi_version = KF_BARE_ABI_VERSION;
  boot->flags = config.flags;
  boot->mem_size = size;
  boot->init_gpa = KF_BARE_INIT_GPA;
  boot->init_size = config.init_size;
  boot->seed = config.seed;
  boot->vsock_mmio_gpa = KF_BARE_VSOCK_MMIO_GPA;
  return Status::Ok();
}

Status SetupBareVcpu(Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& cpuid) {
  RETURN_IF_ERROR(vcpu.SetCpuid(cpuid));
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.cr0 = 0x80050033;  // PG | AM | WP | NE | ET | MP | PE
  sregs.cr3 = KF_BARE_PML4_GPA;
  sregs.cr4 = 0x620;       // OSXMMEXCPT | OSFXSR | PAE
  sregs.efer = 0x500;      // LMA | LME
  sregs.cs = Segment(kUserCodeSelector, 0xb, true);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
      Segment(kUserDataSelector, 0x3, false);
  sregs.tr = BusyTss64(KF_BARE_TSS_GPA, kTssLimit, kTssSelector);
  sregs.ldt = kvm_segment{};
  sregs.ldt.unusable = 1;
  sregs.gdt.base = KF_BARE_GDT_GPA;
  sregs.gdt.limit = 8 * 8 - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;  // any exception escalates to a triple fault: KVM_EXIT_SHUTDOWN
  RETURN_IF_ERROR(vcpu.SetSregs(sregs));

  kvm_regs regs{};
  regs.rip = KF_BARE_IMAGE_GPA;
  regs.rsp = KF_BARE_STACK_TOP;
  regs.rdi = KF_BARE_BOOT_GPA;
  regs.rflags = 0x3002;  // IOPL = 3, reserved bit 1
  return vcpu.SetRegs(regs);
}

}  // namespace kf
