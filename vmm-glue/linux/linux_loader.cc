#include "vmm-glue/linux/linux_loader.h"
#include "vmm-glue/x86_segments.h"

#include <elf.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "vmm-glue/linux/boot_params.h"

namespace kf {

namespace {

using namespace linux_boot;

constexpr uint64_t kPageSize = 0x1000;
constexpr uint64_t k2MiB = 2ull << 20;
constexpr uint64_t kPtePresent = 1ull << 0, kPteWritable = 1ull << 1, kPteHuge = 1ull << 7;

// GDT: 0 null, 1 null, 2 = __BOOT_CS, 3 = __BOOT_DS, 4-5 = the TSS.
constexpr uint64_t kGdtCode64 = 0x00af9b000000ffffull;  // G, L, P, S, type 0xb (exec/read, accessed)
constexpr uint64_t kGdtData = 0x00cf93000000ffffull;    // G, D/B, P, S, type 0x3 (read/write, accessed)
static_assert(kLinuxBootCs == 2 * 8 && kLinuxBootDs == 3 * 8 && kLinuxBootTss == 4 * 8);
static_assert(kLinuxGdtEntries == 6);

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string Protocol(uint16_t version) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%02u", version >> 8, version & 0xff);
  return buf;
}

template <typename T>
void Put(uint8_t* base, uint64_t offset, T value) {
  std::memcpy(base + offset, &value, sizeof value);
}

uint64_t AlignUp(uint64_t v, uint64_t align) { return (v + align - 1) & ~(align - 1); }
uint64_t AlignDown(uint64_t v, uint64_t align) { return v & ~(align - 1); }

// One copy from the kernel file into guest memory, then `zero` bytes of zeroes.
struct Chunk {
  uint64_t gpa;
  std::span<const uint8_t> bytes;
  uint64_t zero = 0;
};

// What parsing a kernel produced; nothing is written to guest memory yet.
struct KernelPlan {
  bool bzimage = false;
  std::vector<Chunk> chunks;
  uint64_t entry = 0;
  uint64_t kernel_end = 0;
  uint64_t initrd_limit = 0;  // exclusive
  uint32_t cmdline_size = 0;  // longest command line, NUL excluded
  SetupHeader hdr{};          // bzImage: as read; ELF: synthesised
  // bzImage: the file's whole setup header, [0x1f1, its end), clipped to
  // boot_params' header area: copied first, so fields newer than
  // SetupHeader reach the kernel too; then hdr's first hdr_bytes go on top.
  std::span<const uint8_t> raw_hdr;
  uint64_t hdr_bytes = 0;
};

Result<KernelPlan> ParseBzImage(std::span<const uint8_t> file, uint64_t mem_size) {
  KernelPlan plan;
  plan.bzimage = true;
  if (file.size() < kSetupHeaderEnd212)
    return Error("bzImage: file of " + std::to_string(file.size()) +
                 " bytes is too short for a boot protocol 2.12 setup header (" +
                 Hex(kSetupHeaderEnd212) + " bytes)");
  const uint64_t avail = std::min<uint64_t>(file.size() - kSetupHeaderOffset, sizeof(SetupHeader));
  std::memcpy(&plan.hdr, file.data() + kSetupHeaderOffset, avail);
  const SetupHeader& h = plan.hdr;
  if (h.header != kHdrSMagic) return Error("bzImage: no \"HdrS\" magic at 0x202");
  if (h.version < kMinProtocol)
    return Error("bzImage: boot protocol " + Protocol(h.version) + " is older than 2.12");
  // The header ends at 0x202 + the jump's displacement (boot.rst).
  const uint64_t hdr_end = 0x202 + uint64_t{file[0x201]};
  if (hdr_end < kSetupHeaderEnd212)
    return Error("bzImage: the setup header ends at " + Hex(hdr_end) +
                 ", before the protocol 2.12 fields end at " + Hex(kSetupHeaderEnd212));
  if (!(h.xloadflags & kXlfKernel64))
    return Error("bzImage: no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags " +
                 Hex(h.xloadflags) + ")");
  const uint64_t setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
  const uint64_t setup_size = (setup_sects + 1) * 512;
  if (setup_size >= file.size())
    return Error("bzImage: setup_sects " + std::to_string(setup_sects) +
                 " puts the protected-mode kernel at offset " + Hex(setup_size) +
                 ", past the end of the " + Hex(file.size()) + "-byte file");
  if (hdr_end > setup_size)
    return Error("bzImage: the setup header ends at " + Hex(hdr_end) +
                 ", past the setup code's " + Hex(setup_size) + " bytes");
  const uint64_t pm_size = file.size() - setup_size;
  if (pm_size <= 0x200)
    return Error("bzImage: the protected-mode kernel (" + std::to_string(pm_size) +
                 " bytes) does not reach its 64-bit entry at offset 0x200");
  plan.raw_hdr = file.subspan(kSetupHeaderOffset,
                              std::min(hdr_end, kSetupHeaderAreaEnd) - kSetupHeaderOffset);
  plan.hdr_bytes = std::min<uint64_t>(plan.raw_hdr.size(), sizeof(SetupHeader));

  // Where the kernel runs once decompressed (boot.rst, init_size): the
  // initrd has to stay clear of [runtime start, runtime start + init_size).
  const uint64_t load = kLinuxBzImageLoadGpa;
  uint64_t runtime_start;
  if (h.relocatable_kernel) {
    const uint64_t align = h.kernel_alignment;
    if (align == 0 || (align & (align - 1)) != 0 || align > (1ull << 30))
      return Error("bzImage: kernel_alignment " + Hex(align) + " is not a power of two <= 1 GiB");
    const uint64_t pref = h.pref_address;  // by value: SetupHeader is packed
    runtime_start = AlignUp(std::max(load, pref), align);
    if (runtime_start < h.pref_address)  // wrapped
      return Error("bzImage: pref_address " + Hex(h.pref_address) + " is out of range");
  } else {
    runtime_start = h.pref_address;
    if (runtime_start < kLinuxHighRamStart)
      return Error("bzImage: a non-relocatable kernel that runs at " + Hex(runtime_start) +
                   ", below 1 MiB");
  }
  if (runtime_start > mem_size || h.init_size > mem_size - runtime_start)
    return Error("bzImage: the kernel needs guest memory up to runtime start " +
                 Hex(runtime_start) + " + init_size " + Hex(h.init_size) +
                 ", more than the " + Hex(mem_size) + " bytes of RAM");
  if (pm_size > mem_size - load)
    return Error("bzImage: the " + Hex(pm_size) + "-byte kernel loaded at " + Hex(load) +
                 " ends past guest memory (" + Hex(mem_size) + ")");
  plan.kernel_end = std::max(load + pm_size, runtime_start + h.init_size);
  plan.chunks.push_back({load, file.subspan(setup_size), 0});
  plan.entry = load + 0x200;
  plan.initrd_limit = std::min(mem_size, uint64_t{h.initrd_addr_max} + 1);
  plan.cmdline_size = h.cmdline_size;
  return plan;
}

Result<KernelPlan> ParseElf(std::span<const uint8_t> file, uint64_t mem_size) {
  KernelPlan plan;
  Elf64_Ehdr eh;
  if (file.size() < sizeof eh)
    return Error("ELF: file of " + std::to_string(file.size()) +
                 " bytes is shorter than an ELF64 header");
  std::memcpy(&eh, file.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64)
    return Error("ELF: class " + std::to_string(eh.e_ident[EI_CLASS]) + " is not ELFCLASS64");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Error("ELF: not little-endian");
  if (eh.e_machine != EM_X86_64)
    return Error("ELF: machine " + std::to_string(eh.e_machine) + " is not x86-64 (" +
                 std::to_string(EM_X86_64) + ")");
  if (eh.e_type != ET_EXEC)
    return Error("ELF: type " + std::to_string(eh.e_type) + " is not ET_EXEC");
  if (eh.e_phentsize != sizeof(Elf64_Phdr))
    return Error("ELF: program header size " + std::to_string(eh.e_phentsize) + " is not " +
                 std::to_string(sizeof(Elf64_Phdr)));
  constexpr uint64_t kMaxPhdrs = 256;
  if (eh.e_phnum == 0 || eh.e_phnum > kMaxPhdrs)
    return Error("ELF: " + std::to_string(eh.e_phnum) + " program headers (1 to " +
                 std::to_string(kMaxPhdrs) + " accepted)");
  const uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff > file.size() || ph_bytes > file.size() - eh.e_phoff)
    return Error("ELF: program headers at " + Hex(eh.e_phoff) + " run past the end of the file");

  std::vector<Elf64_Phdr> loads;
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_LOAD) continue;
    const std::string seg = "ELF: segment " + std::to_string(i);
    if (ph.p_filesz > ph.p_memsz)
      return Error(seg + " has p_filesz " + Hex(ph.p_filesz) + " larger than p_memsz " +
                   Hex(ph.p_memsz));
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset)
      return Error(seg + " reads past the end of the file (offset " + Hex(ph.p_offset) +
                   ", " + Hex(ph.p_filesz) + " bytes)");
    if (ph.p_memsz == 0) continue;
    if (ph.p_paddr < kLinuxHighRamStart)
      return Error(seg + " at " + Hex(ph.p_paddr) +
                   " is below 1 MiB, where the loader's tables live");
    if (ph.p_paddr > mem_size || ph.p_memsz > mem_size - ph.p_paddr)
      return Error(seg + " ends past guest memory (" + Hex(ph.p_paddr) + " + " +
                   Hex(ph.p_memsz) + " > " + Hex(mem_size) + ")");
    loads.push_back(ph);
    plan.chunks.push_back({ph.p_paddr, file.subspan(ph.p_offset, ph.p_filesz),
                           ph.p_memsz - ph.p_filesz});
    plan.kernel_end = std::max(plan.kernel_end, ph.p_paddr + ph.p_memsz);
  }
  if (loads.empty()) return Error("ELF: no PT_LOAD segment");

  // e_entry is a virtual address of an executable segment (translated by
  // that segment's p_vaddr - p_paddr) or, as in Debian's vmlinux whose
  // linker script sets ENTRY(phys_startup_64), already a physical one.
  bool found = false;
  for (const Elf64_Phdr& ph : loads) {
    if ((ph.p_flags & PF_X) && eh.e_entry >= ph.p_vaddr && eh.e_entry - ph.p_vaddr < ph.p_memsz) {
      plan.entry = eh.e_entry - ph.p_vaddr + ph.p_paddr;
      found = true;
      break;
    }
  }
  for (size_t k = 0; !found && k < loads.size(); ++k) {
    const Elf64_Phdr& ph = loads[k];
    if ((ph.p_flags & PF_X) && eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz) {
      plan.entry = eh.e_entry;
      found = true;
    }
  }
  if (!found)
    return Error("ELF: entry point " + Hex(eh.e_entry) +
                 " lies in no executable PT_LOAD segment (by virtual or physical address)");

  SetupHeader& h = plan.hdr;
  h.boot_flag = kBootFlag;
  h.header = kHdrSMagic;
  h.version = kElfProtocol;
  h.kernel_alignment = 0x1000000;
  h.initrd_addr_max = static_cast<uint32_t>(kLinuxElfInitrdLimit - 1);
  h.cmdline_size = kLinuxElfCmdlineSize;
  plan.hdr_bytes = sizeof(SetupHeader);
  plan.initrd_limit = std::min(mem_size, kLinuxElfInitrdLimit);
  plan.cmdline_size = kLinuxElfCmdlineSize;
  return plan;
}

void WriteGdtAndTss(GuestMemoryView mem) {
  uint8_t* gdt = mem.At(kLinuxGdtGpa, kLinuxTssGpa + kLinuxTssLimit + 1 - kLinuxGdtGpa);
  std::memset(gdt, 0, kLinuxTssGpa + kLinuxTssLimit + 1 - kLinuxGdtGpa);
  Put<uint64_t>(gdt, kLinuxBootCs, kGdtCode64);
  Put<uint64_t>(gdt, kLinuxBootDs, kGdtData);
  // 64-bit available TSS (type 9; the TR register holds it as busy, 0xb).
  const uint64_t base = kLinuxTssGpa;
  uint64_t low = kLinuxTssLimit & 0xffff;
  low |= (base & 0xffffff) << 16;
  low |= 0x89ull << 40;
  low |= ((base >> 24) & 0xff) << 56;
  Put<uint64_t>(gdt, kLinuxBootTss, low);
  Put<uint64_t>(gdt, kLinuxBootTss + 8, base >> 32);
  // TSS: zero stacks, no I/O bitmap (its base past the limit).
  Put<uint16_t>(gdt, kLinuxTssGpa - kLinuxGdtGpa + 0x66, kLinuxTssLimit + 1);
}

void WritePageTables(GuestMemoryView mem) {
  const uint64_t len = kLinuxPdGpa + kLinuxPdPages * kPageSize - kLinuxPml4Gpa;
  uint8_t* pt = mem.At(kLinuxPml4Gpa, len);
  std::memset(pt, 0, len);
  Put<uint64_t>(pt, 0, kLinuxPdptGpa | kPtePresent | kPteWritable);
  for (uint64_t i = 0; i < kLinuxPdPages; ++i)
    Put<uint64_t>(pt, kLinuxPdptGpa - kLinuxPml4Gpa + i * 8,
                  (kLinuxPdGpa + i * kPageSize) | kPtePresent | kPteWritable);
  for (uint64_t gpa = 0; gpa < kLinuxIdentityMapped; gpa += k2MiB)
    Put<uint64_t>(pt, kLinuxPdGpa - kLinuxPml4Gpa + (gpa / k2MiB) * 8,
                  gpa | kPtePresent | kPteWritable | kPteHuge);
}

}  // namespace

Result<LinuxBootInfo> LoadLinux(GuestMemoryView mem, const LinuxBootConfig& cfg) {
  const uint64_t mem_size = cfg.mem_size;
  if (mem_size % kPageSize != 0 || mem_size <= kLinuxBzImageLoadGpa || mem_size > kLinuxMaxMem)
    return Error("Linux guest memory must be a multiple of 4 KiB above 1 MiB and at most 3 GiB, "
                 "not " + std::to_string(mem_size) + " bytes");
  if (mem.base() == nullptr || mem.size() < mem_size)
    return Error("guest memory view of " + std::to_string(mem.size()) + " bytes is smaller than " +
                 std::to_string(mem_size) + " bytes of RAM");
  const std::span<const uint8_t> k = cfg.kernel;

  // Parse and check everything before writing anything.
  Result<KernelPlan> parsed = Error("");
  if (k.size() >= SELFMAG && std::memcmp(k.data(), ELFMAG, SELFMAG) == 0) {
    parsed = ParseElf(k, mem_size);
  } else if (k.size() >= 0x206 && std::memcmp(k.data() + 0x202, "HdrS", 4) == 0) {
    parsed = ParseBzImage(k, mem_size);
  } else {
    return Error("kernel of " + std::to_string(k.size()) +
                 " bytes is neither an ELF64 vmlinux nor a bzImage (no \"HdrS\" at 0x202)");
  }
  if (!parsed.ok()) return parsed.error();
  KernelPlan& plan = *parsed;

  const uint64_t cmdline_max = std::min<uint64_t>(plan.cmdline_size, kLinuxCmdlineMax - 1);
  if (cfg.cmdline.size() > cmdline_max)
    return Error("command line of " + std::to_string(cfg.cmdline.size()) +
                 " bytes is longer than the kernel's limit of " + std::to_string(cmdline_max));
  if (cfg.cmdline.find('\0') != std::string::npos)
    return Error("command line contains a NUL byte");
  if (cfg.rsdp_gpa != 0 && (cfg.rsdp_gpa > mem_size || mem_size - cfg.rsdp_gpa < 36))
    return Error("RSDP at " + Hex(cfg.rsdp_gpa) + " lies outside guest memory");

  LinuxBootInfo info;
  info.bzimage = plan.bzimage;
  info.entry_gpa = plan.entry;
  info.boot_params_gpa = kLinuxBootParamsGpa;
  info.kernel_end = plan.kernel_end;
  if (!cfg.initrd.empty()) {
    const uint64_t size = cfg.initrd.size();
    const uint64_t low = AlignUp(plan.kernel_end, kPageSize);
    const uint64_t limit = plan.initrd_limit;
    if (size > limit || AlignDown(limit - size, kPageSize) < low)
      return Error("initrd of " + std::to_string(size) + " bytes does not fit between the " +
                   "kernel's end " + Hex(low) + " and " + Hex(limit));
    info.initrd_gpa = AlignDown(limit - size, kPageSize);
    info.initrd_size = size;
  }
  info.e820 = {
      {0, kLinuxLowRamEnd, kE820Ram},
      {kLinuxLowRamEnd, kLinuxHighRamStart - kLinuxLowRamEnd, kE820Reserved},
      {kLinuxHighRamStart, mem_size - kLinuxHighRamStart, kE820Ram},
  };

  // Write.
  WriteGdtAndTss(mem);
  WritePageTables(mem);

  uint8_t* cmdline = mem.At(kLinuxCmdlineGpa, cfg.cmdline.size() + 1);
  std::memcpy(cmdline, cfg.cmdline.data(), cfg.cmdline.size());
  cmdline[cfg.cmdline.size()] = 0;

  for (const Chunk& c : plan.chunks) {
    uint8_t* dst = mem.At(c.gpa, c.bytes.size() + c.zero);
    if (!c.bytes.empty()) std::memcpy(dst, c.bytes.data(), c.bytes.size());
    std::memset(dst + c.bytes.size(), 0, c.zero);
  }
  if (info.initrd_size != 0)
    std::memcpy(mem.At(info.initrd_gpa, info.initrd_size), cfg.initrd.data(), info.initrd_size);

  uint8_t* bp = mem.At(kLinuxBootParamsGpa, kLinuxBootParamsSize);
  std::memset(bp, 0, kLinuxBootParamsSize);  // sentinel (0x1ef) included
  SetupHeader& h = plan.hdr;
  h.type_of_loader = kLoaderUndefined;
  h.ext_loader_ver = h.ext_loader_type = 0;
  h.loadflags |= kLoadedHigh | kCanUseHeap;
  h.heap_end_ptr = kHeapEndPtr;
  h.cmd_line_ptr = static_cast<uint32_t>(kLinuxCmdlineGpa);
  h.ramdisk_image = static_cast<uint32_t>(info.initrd_gpa);
  h.ramdisk_size = static_cast<uint32_t>(info.initrd_size);
  h.setup_data = 0;  // we pass none
  // Only the bytes the kernel's header has (the rest of boot_params stays 0),
  // but every field we set lies within the 2.12 header, which it has.
  static_assert(offsetof(SetupHeader, setup_data) + sizeof(uint64_t) + kSetupHeaderOffset <=
                kSetupHeaderEnd212);
  if (!plan.raw_hdr.empty())
    std::memcpy(bp + kSetupHeaderOffset, plan.raw_hdr.data(), plan.raw_hdr.size());
  std::memcpy(bp + kSetupHeaderOffset, &h, plan.hdr_bytes);
  if (cfg.rsdp_gpa != 0) Put<uint64_t>(bp, kBpAcpiRsdpAddr, cfg.rsdp_gpa);
  Put<uint8_t>(bp, kBpE820Entries, static_cast<uint8_t>(info.e820.size()));
  for (size_t i = 0; i < info.e820.size(); ++i) {
    const uint64_t off = kBpE820Table + i * kBpE820EntrySize;
    Put<uint64_t>(bp, off, info.e820[i].addr);
    Put<uint64_t>(bp, off + 8, info.e820[i].size);
    Put<uint32_t>(bp, off + 16, info.e820[i].type);
  }
  return info;
}

void FillLinuxSregs(kvm_sregs& sregs) {
  sregs.cr0 = 0x80000031;  // PG | NE | ET | PE
  sregs.cr3 = kLinuxPml4Gpa;
  sregs.cr4 = 0x20;        // PAE
  sregs.efer = 0x500;      // LMA | LME

  kvm_segment code{};
  code.base = 0;
  code.limit = 0xffffffff;
  code.selector = kLinuxBootCs;
  code.type = 0xb;  // execute/read, accessed
  code.present = 1;
  code.dpl = 0;
  code.db = 0;
  code.s = 1;
  code.l = 1;
  code.g = 1;
  sregs.cs = code;

  kvm_segment data = code;
  data.selector = kLinuxBootDs;
  data.type = 0x3;  // read/write, accessed
  data.db = 1;
  data.l = 0;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;

  sregs.tr = BusyTss64(kLinuxTssGpa, kLinuxTssLimit, kLinuxBootTss);
  sregs.ldt = kvm_segment{};
  sregs.ldt.type = 0x2;
  sregs.ldt.unusable = 1;

  sregs.gdt.base = kLinuxGdtGpa;
  sregs.gdt.limit = kLinuxGdtEntries * 8 - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
}

kvm_regs LinuxEntryRegs(const LinuxBootInfo& info) {
  kvm_regs regs{};
  regs.rip = info.entry_gpa;
  regs.rsi = info.boot_params_gpa;
  regs.rsp = kLinuxStackTop;
  regs.rflags = 0x2;  // reserved bit 1; IF = 0
  return regs;
}

Status SetupLinuxVcpu(Vcpu& vcpu, GuestMemoryView mem, const LinuxBootInfo& info) {
  if (info.boot_params_gpa != kLinuxBootParamsGpa)
    return Error("boot_params at " + Hex(info.boot_params_gpa) + ", not where LoadLinux puts them");
  const uint8_t* magic = mem.At(kLinuxBootParamsGpa + 0x202, 4);
  const uint8_t* pml4 = mem.At(kLinuxPml4Gpa, 8);
  if (magic == nullptr || std::memcmp(magic, "HdrS", 4) != 0 || pml4 == nullptr ||
      !(pml4[0] & kPtePresent))
    return Error("guest memory holds no loaded Linux boot_params or page tables");
  if (!mem.Contains(info.entry_gpa, 1))
    return Error("entry point " + Hex(info.entry_gpa) + " lies outside guest memory");
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  FillLinuxSregs(sregs);
  RETURN_IF_ERROR(vcpu.SetSregs(sregs));
  return vcpu.SetRegs(LinuxEntryRegs(info));
}

}  // namespace kf
