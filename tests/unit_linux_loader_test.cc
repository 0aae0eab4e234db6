// Unit tests of the Linux loader (vmm-glue/linux): synthetic bzImages and
// ELF vmlinux files, good and hostile; the low-memory layout it writes
// (boot_params, e820, command line, initrd, GDT, page tables) and the vCPU
// state that goes with it; and, when scripts/nested-kvm has cached one,
// Debian's real cloud kernel.
#include <gtest/gtest.h>
#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if __has_include(<asm/bootparam.h>)
#include <asm/bootparam.h>
#define KF_HAVE_BOOTPARAM_H 1
#endif

#include "vmm-glue/linux/boot_params.h"
#include "vmm-glue/linux/linux_loader.h"

namespace kf {
namespace {

using namespace linux_boot;

constexpr uint64_t kMiB = 1ull << 20;

// Anonymous memory: untouched pages cost nothing, so "1 GiB of RAM" is cheap.
class GuestBuffer {
 public:
  explicit GuestBuffer(uint64_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<uint8_t*>(p);
  }
  ~GuestBuffer() { munmap(base_, size_); }
  GuestBuffer(const GuestBuffer&) = delete;
  GuestBuffer& operator=(const GuestBuffer&) = delete;
  GuestMemoryView view() const { return GuestMemoryView(base_, size_); }
  uint8_t* at(uint64_t gpa) const { return base_ + gpa; }
  template <typename T>
  T get(uint64_t gpa) const {
    T v;
    std::memcpy(&v, base_ + gpa, sizeof v);
    return v;
  }

 private:
  uint8_t* base_;
  uint64_t size_;
};

template <typename T>
void PutAt(std::vector<uint8_t>& b, uint64_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

template <typename T>
T BootParam(const GuestBuffer& g, uint64_t off) {
  return g.get<T>(kLinuxBootParamsGpa + off);
}

SetupHeader LoadedHeader(const GuestBuffer& g) {
  SetupHeader h;
  std::memcpy(&h, g.at(kLinuxBootParamsGpa + kSetupHeaderOffset), sizeof h);
  return h;
}

// ------------------------------------------------------------- synthetic kernels

struct BzSpec {
  uint16_t version = 0x020f;
  uint16_t xloadflags = 0x7f;
  uint8_t setup_sects = 0x1f;
  uint8_t jump_disp = 0x6a;  // header ends at 0x26c
  uint64_t pm_size = 0x40000;
  uint8_t relocatable = 1;
  uint32_t kernel_alignment = 0x200000;
  uint64_t pref_address = 0x1000000;
  uint32_t init_size = 0x800000;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t cmdline_size = 0x7ff;
};

uint8_t PmByte(uint64_t i) { return static_cast<uint8_t>(i * 7 + 3); }

std::vector<uint8_t> MakeBzImage(const BzSpec& s) {
  const uint64_t sects = s.setup_sects == 0 ? 4 : s.setup_sects;
  const uint64_t setup = (sects + 1) * 512;
  std::vector<uint8_t> f(setup + s.pm_size, 0);
  f[0x1f1] = s.setup_sects;
  PutAt<uint16_t>(f, 0x1fe, 0xaa55);
  f[0x200] = 0xeb;
  f[0x201] = s.jump_disp;
  std::memcpy(f.data() + 0x202, "HdrS", 4);
  PutAt<uint16_t>(f, 0x206, s.version);
  f[0x211] = 0x01;  // LOADED_HIGH
  PutAt<uint16_t>(f, 0x224, 0x5be0);  // a stale heap_end_ptr, as in Debian's file
  PutAt<uint32_t>(f, 0x22c, s.initrd_addr_max);
  PutAt<uint32_t>(f, 0x230, s.kernel_alignment);
  f[0x234] = s.relocatable;
  f[0x235] = 21;
  PutAt<uint16_t>(f, 0x236, s.xloadflags);
  PutAt<uint32_t>(f, 0x238, s.cmdline_size);
  PutAt<uint64_t>(f, 0x250, 0xdeadbeef);  // a hostile setup_data pointer
  PutAt<uint64_t>(f, 0x258, s.pref_address);
  PutAt<uint32_t>(f, 0x260, s.init_size);
  PutAt<uint32_t>(f, 0x268, 0x12345);  // kernel_info_offset (2.15)
  for (uint64_t i = 0; i < s.pm_size; ++i) f[setup + i] = PmByte(i);
  return f;
}

struct ElfSeg {
  uint32_t type = PT_LOAD;
  uint32_t flags = PF_R;
  uint64_t vaddr = 0, paddr = 0, filesz = 0, memsz = 0;
  uint64_t offset = ~0ull;  // ~0: placed by MakeElf
};

struct ElfSpec {
  uint16_t machine = EM_X86_64;
  uint16_t type = ET_EXEC;
  uint8_t klass = ELFCLASS64;
  uint64_t entry = 0xffffffff81000000ull;
  std::vector<ElfSeg> segs = {
      {PT_LOAD, PF_R | PF_X, 0xffffffff81000000ull, 0x1000000, 0x3000, 0x3000},
      {PT_NOTE, PF_R, 0xffffffff81003000ull, 0x1003000, 0x40, 0x40},
      {PT_LOAD, PF_R | PF_W, 0xffffffff81200000ull, 0x1200000, 0x1800, 0x5000},
  };
};

uint8_t SegByte(size_t seg, uint64_t i) { return static_cast<uint8_t>(seg * 31 + i * 13 + 1); }

std::vector<uint8_t> MakeElf(const ElfSpec& s) {
  const uint64_t phoff = sizeof(Elf64_Ehdr);
  uint64_t off = (phoff + s.segs.size() * sizeof(Elf64_Phdr) + 0xfff) & ~0xfffull;
  std::vector<Elf64_Phdr> phdrs;
  std::vector<std::pair<uint64_t, uint64_t>> data;  // offset, size per segment
  for (const ElfSeg& seg : s.segs) {
    Elf64_Phdr ph{};
    ph.p_type = seg.type;
    ph.p_flags = seg.flags;
    ph.p_vaddr = seg.vaddr;
    ph.p_paddr = seg.paddr;
    ph.p_filesz = seg.filesz;
    ph.p_memsz = seg.memsz;
    ph.p_align = 0x1000;
    ph.p_offset = seg.offset == ~0ull ? off : seg.offset;
    if (seg.offset == ~0ull) off += (seg.filesz + 0xfff) & ~0xfffull;
    phdrs.push_back(ph);
  }
  std::vector<uint8_t> f(off, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = s.klass;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = s.type;
  eh.e_machine = s.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = s.entry;
  eh.e_phoff = phoff;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<uint16_t>(phdrs.size());
  std::memcpy(f.data(), &eh, sizeof eh);
  for (size_t i = 0; i < phdrs.size(); ++i) {
    std::memcpy(f.data() + phoff + i * sizeof(Elf64_Phdr), &phdrs[i], sizeof(Elf64_Phdr));
    const Elf64_Phdr& ph = phdrs[i];
    if (ph.p_offset <= f.size() && ph.p_filesz <= f.size() - ph.p_offset)
      for (uint64_t j = 0; j < ph.p_filesz; ++j) f[ph.p_offset + j] = SegByte(i, j);
  }
  return f;
}

LinuxBootConfig Config(const std::vector<uint8_t>& kernel, uint64_t mem_size,
                       std::string cmdline = "console=ttyS0 panic=-1") {
  LinuxBootConfig c;
  c.kernel = kernel;
  c.cmdline = std::move(cmdline);
  c.mem_size = mem_size;
  return c;
}

std::string ErrorOf(const Result<LinuxBootInfo>& r) {
  return r.ok() ? std::string("(loaded fine)") : r.error().message();
}

#define EXPECT_REFUSED(result, text)                                     \
  do {                                                                   \
    auto&& r_ = (result);                                                \
    ASSERT_FALSE(r_.ok());                                               \
    EXPECT_NE(r_.error().message().find(text), std::string::npos)        \
        << "error was: " << r_.error().message();                        \
  } while (0)

// Walks the loader's page tables: the physical address `va` maps to, or ~0.
uint64_t Translate(const GuestBuffer& g, uint64_t va) {
  const uint64_t pml4e = g.get<uint64_t>(kLinuxPml4Gpa + ((va >> 39) & 511) * 8);
  if (!(pml4e & 1)) return ~0ull;
  const uint64_t pdpte = g.get<uint64_t>((pml4e & ~0xfffull) + ((va >> 30) & 511) * 8);
  if (!(pdpte & 1) || (pdpte & 0x80)) return ~0ull;
  const uint64_t pde = g.get<uint64_t>((pdpte & ~0xfffull) + ((va >> 21) & 511) * 8);
  if (!(pde & 1) || !(pde & 0x80) || !(pde & 2)) return ~0ull;
  return (pde & ~0x1fffffull) + (va & 0x1fffff);
}

void ExpectE820Sane(const GuestBuffer& g, const LinuxBootInfo& info, uint64_t mem_size) {
  const uint8_t n = BootParam<uint8_t>(g, kBpE820Entries);
  ASSERT_EQ(n, info.e820.size());
  ASSERT_EQ(n, 3u);
  uint64_t prev_end = 0;
  uint64_t ram = 0;
  for (uint8_t i = 0; i < n; ++i) {
    const uint64_t off = kBpE820Table + i * kBpE820EntrySize;
    const uint64_t addr = BootParam<uint64_t>(g, off);
    const uint64_t size = BootParam<uint64_t>(g, off + 8);
    const uint32_t type = BootParam<uint32_t>(g, off + 16);
    EXPECT_EQ(addr, info.e820[i].addr);
    EXPECT_EQ(size, info.e820[i].size);
    EXPECT_EQ(type, info.e820[i].type);
    EXPECT_GT(size, 0u);
    EXPECT_GE(addr, prev_end) << "entry " << int(i) << " unsorted or overlapping";
    prev_end = addr + size;
    if (type == kE820Ram) ram += size;
  }
  EXPECT_EQ(info.e820[0].addr, 0u);
  EXPECT_EQ(info.e820[0].size, 0x9fc00u);
  EXPECT_EQ(info.e820[0].type, kE820Ram);
  EXPECT_EQ(info.e820[1].addr, 0x9fc00u);
  EXPECT_EQ(info.e820[1].size, 0x100000u - 0x9fc00u);
  EXPECT_EQ(info.e820[1].type, kE820Reserved);
  EXPECT_EQ(info.e820[2].addr, 0x100000u);
  EXPECT_EQ(info.e820[2].type, kE820Ram);
  EXPECT_EQ(prev_end, mem_size);
  EXPECT_EQ(ram, mem_size - (0x100000 - 0x9fc00));
  // The entries past the table are zero.
  EXPECT_EQ(BootParam<uint64_t>(g, kBpE820Table + 3 * kBpE820EntrySize + 8), 0u);
}

// ------------------------------------------------------------------- bzImage

TEST(LinuxLoaderBzImage, LoadsAndFillsBootParams) {
  const uint64_t mem = 64 * kMiB;
  GuestBuffer g(mem);
  std::memset(g.at(0), 0xa5, 2 * kMiB);  // the loader must not rely on zeroed memory
  BzSpec spec;
  const auto kernel = MakeBzImage(spec);
  std::vector<uint8_t> initrd(10000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i ^ 0x5a);
  LinuxBootConfig cfg = Config(kernel, mem);
  cfg.initrd = initrd;
  cfg.rsdp_gpa = 0xe0000;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  const LinuxBootInfo& info = *r;

  EXPECT_TRUE(info.bzimage);
  EXPECT_EQ(info.entry_gpa, kLinuxBzImageLoadGpa + 0x200);
  EXPECT_EQ(info.entry_gpa, 0x100200u);
  EXPECT_EQ(info.boot_params_gpa, kLinuxBootParamsGpa);
  // max(load + pm size, runtime start (16 MiB) + init_size)
  EXPECT_EQ(info.kernel_end, 0x1000000u + spec.init_size);

  // The protected-mode part, byte for byte, at 1 MiB.
  for (uint64_t i = 0; i < spec.pm_size; i += 997)
    ASSERT_EQ(*g.at(kLinuxBzImageLoadGpa + i), PmByte(i)) << i;
  EXPECT_EQ(*g.at(kLinuxBzImageLoadGpa + spec.pm_size - 1), PmByte(spec.pm_size - 1));

  const SetupHeader h = LoadedHeader(g);
  EXPECT_EQ(+h.boot_flag, 0xaa55);
  EXPECT_EQ(+h.header, kHdrSMagic);
  EXPECT_EQ(+h.version, 0x020f);
  EXPECT_EQ(+h.setup_sects, spec.setup_sects);
  EXPECT_EQ(+h.type_of_loader, 0xff);
  EXPECT_EQ(+h.loadflags & (kLoadedHigh | kCanUseHeap), kLoadedHigh | kCanUseHeap);
  EXPECT_EQ(+h.heap_end_ptr, 0xfe00);
  EXPECT_EQ(+h.cmd_line_ptr, kLinuxCmdlineGpa);
  EXPECT_EQ(+h.ramdisk_image, info.initrd_gpa);
  EXPECT_EQ(+h.ramdisk_size, initrd.size());
  EXPECT_EQ(+h.setup_data, 0u);  // the file's bogus pointer is not passed on
  EXPECT_EQ(+h.init_size, spec.init_size);
  EXPECT_EQ(+h.pref_address, spec.pref_address);
  EXPECT_EQ(+h.kernel_alignment, spec.kernel_alignment);
  EXPECT_EQ(+h.xloadflags, spec.xloadflags);
  EXPECT_EQ(+h.cmdline_size, spec.cmdline_size);
  EXPECT_EQ(+h.kernel_info_offset, 0x12345u);  // copied up to the header's end (0x26c)
  EXPECT_EQ(BootParam<uint64_t>(g, kBpAcpiRsdpAddr), 0xe0000u);
  EXPECT_EQ(BootParam<uint32_t>(g, kBpExtRamdiskImage), 0u);
  EXPECT_EQ(BootParam<uint32_t>(g, kBpExtRamdiskSize), 0u);
  EXPECT_EQ(BootParam<uint32_t>(g, kBpExtCmdLinePtr), 0u);
  EXPECT_EQ(BootParam<uint8_t>(g, kBpSentinel), 0u);
  EXPECT_EQ(BootParam<uint64_t>(g, 0), 0u);  // screen_info etc. zeroed, not 0xa5
  EXPECT_EQ(BootParam<uint8_t>(g, 0xfff), 0u);
  ExpectE820Sane(g, info, mem);

  // Command line, NUL-terminated.
  EXPECT_STREQ(reinterpret_cast<const char*>(g.at(kLinuxCmdlineGpa)), "console=ttyS0 panic=-1");

  // initrd: page aligned, as high as possible below the limit, above the kernel.
  EXPECT_EQ(info.initrd_size, initrd.size());
  EXPECT_EQ(info.initrd_gpa % 4096, 0u);
  EXPECT_GE(info.initrd_gpa, info.kernel_end);
  EXPECT_LE(info.initrd_gpa + info.initrd_size, mem);
  EXPECT_GT(info.initrd_gpa + info.initrd_size, mem - 4096);
  EXPECT_EQ(std::memcmp(g.at(info.initrd_gpa), initrd.data(), initrd.size()), 0);
}

TEST(LinuxLoaderBzImage, InitrdStaysBelowInitrdAddrMax) {
  const uint64_t mem = 128 * kMiB;
  GuestBuffer g(mem);
  BzSpec spec;
  spec.initrd_addr_max = 0x2ffffff;  // 48 MiB - 1
  const auto kernel = MakeBzImage(spec);
  std::vector<uint8_t> initrd(3 * 4096 + 5, 0x11);
  LinuxBootConfig cfg = Config(kernel, mem);
  cfg.initrd = initrd;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->initrd_gpa % 4096, 0u);
  EXPECT_LE(r->initrd_gpa + r->initrd_size, 0x3000000u);
  EXPECT_EQ(r->initrd_gpa, (0x3000000u - initrd.size()) & ~0xfffull);
  EXPECT_GE(r->initrd_gpa, r->kernel_end);
}

TEST(LinuxLoaderBzImage, RefusesAnInitrdThatDoesNotFit) {
  const uint64_t mem = 32 * kMiB;
  GuestBuffer g(mem);
  const auto kernel = MakeBzImage(BzSpec{});  // needs RAM up to 24 MiB
  std::vector<uint8_t> initrd(9 * kMiB, 0x11);
  LinuxBootConfig cfg = Config(kernel, mem);
  cfg.initrd = initrd;
  EXPECT_REFUSED(LoadLinux(g.view(), cfg), "initrd of 9437184 bytes does not fit");
  initrd.resize(8 * kMiB);  // exactly the room left
  cfg.initrd = initrd;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->initrd_gpa, 24 * kMiB);
}

TEST(LinuxLoaderBzImage, SetupSectsZeroMeansFour) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.setup_sects = 0;
  const auto kernel = MakeBzImage(spec);
  ASSERT_EQ(kernel.size(), 5 * 512 + spec.pm_size);
  auto r = LoadLinux(g.view(), Config(kernel, 64 * kMiB));
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(*g.at(0x100000), PmByte(0));
  EXPECT_EQ(*g.at(0x100000 + 1234), PmByte(1234));
}

TEST(LinuxLoaderBzImage, RefusesTooOldProtocol) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.version = 0x0206;
  const auto kernel = MakeBzImage(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(kernel, 64 * kMiB)),
                 "bzImage: boot protocol 2.06 is older than 2.12");
  spec.version = 0x020b;
  const auto k2 = MakeBzImage(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k2, 64 * kMiB)), "boot protocol 2.11 is older");
}

TEST(LinuxLoaderBzImage, RefusesAKernelWithoutA64BitEntry) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.xloadflags = 0x7e;
  const auto kernel = MakeBzImage(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(kernel, 64 * kMiB)),
                 "bzImage: no 64-bit entry point (XLF_KERNEL_64 not set");
}

TEST(LinuxLoaderBzImage, RefusesTruncatedFiles) {
  GuestBuffer g(64 * kMiB);
  auto kernel = MakeBzImage(BzSpec{});
  // Cut inside the setup header: "HdrS" is there, the 2.12 fields are not.
  std::vector<uint8_t> cut(kernel.begin(), kernel.begin() + 0x230);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(cut, 64 * kMiB)),
                 "bzImage: file of 560 bytes is too short");
  // Cut right after the setup code: no protected-mode kernel at all.
  const uint64_t setup = (0x1f + 1) * 512;
  std::vector<uint8_t> no_pm(kernel.begin(), kernel.begin() + setup);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(no_pm, 64 * kMiB)), "past the end");
  // A protected-mode part that stops before the 64-bit entry at 0x200.
  std::vector<uint8_t> short_pm(kernel.begin(), kernel.begin() + setup + 0x100);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(short_pm, 64 * kMiB)),
                 "does not reach its 64-bit entry");
  // Not a kernel at all.
  std::vector<uint8_t> junk(4096, 0x90);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(junk, 64 * kMiB)),
                 "neither an ELF64 vmlinux nor a bzImage");
  std::vector<uint8_t> empty;
  EXPECT_REFUSED(LoadLinux(g.view(), Config(empty, 64 * kMiB)), "neither");
}

TEST(LinuxLoaderBzImage, RefusesSetupSectsPastTheEnd) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.pm_size = 0x1000;
  auto kernel = MakeBzImage(spec);
  kernel[0x1f1] = 200;  // 201 * 512 = 0x19200 > file size
  EXPECT_REFUSED(LoadLinux(g.view(), Config(kernel, 64 * kMiB)),
                 "bzImage: setup_sects 200 puts the protected-mode kernel at offset 0x19200, "
                 "past the end of the");
}

TEST(LinuxLoaderBzImage, RefusesAHeaderShorterThanProtocol212) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.jump_disp = 0x40;  // header "ends" at 0x242
  const auto kernel = MakeBzImage(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(kernel, 64 * kMiB)),
                 "setup header ends at 0x242");
}

TEST(LinuxLoaderBzImage, RefusesHostileLayoutFields) {
  GuestBuffer g(64 * kMiB);
  {
    BzSpec spec;
    spec.kernel_alignment = 0x300000;
    const auto k = MakeBzImage(spec);
    EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "kernel_alignment 0x300000");
  }
  {
    BzSpec spec;
    spec.init_size = 0xffffffff;
    const auto k = MakeBzImage(spec);
    EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "init_size 0xffffffff");
  }
  {
    BzSpec spec;
    spec.pref_address = ~0ull - 0x1000;
    const auto k = MakeBzImage(spec);
    EXPECT_FALSE(LoadLinux(g.view(), Config(k, 64 * kMiB)).ok());
  }
  {
    BzSpec spec;
    spec.relocatable = 0;
    spec.pref_address = 0x8000;
    const auto k = MakeBzImage(spec);
    EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "below 1 MiB");
  }
  {
    BzSpec spec;  // needs 24 MiB of RAM
    const auto k = MakeBzImage(spec);
    GuestBuffer small(16 * kMiB);
    EXPECT_REFUSED(LoadLinux(small.view(), Config(k, 16 * kMiB)), "more than the 0x1000000 bytes");
  }
}

TEST(LinuxLoaderBzImage, NonRelocatableKernelRunsAtPrefAddress) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.relocatable = 0;
  spec.pref_address = 0x2000000;
  const auto k = MakeBzImage(spec);
  auto r = LoadLinux(g.view(), Config(k, 64 * kMiB));
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->entry_gpa, 0x100200u);  // loaded at 1 MiB all the same
  EXPECT_EQ(r->kernel_end, 0x2000000u + spec.init_size);
}

TEST(LinuxLoaderBzImage, CommandLineLimits) {
  GuestBuffer g(64 * kMiB);
  BzSpec spec;
  spec.cmdline_size = 100;
  const auto k = MakeBzImage(spec);
  EXPECT_TRUE(LoadLinux(g.view(), Config(k, 64 * kMiB, std::string(100, 'x'))).ok());
  EXPECT_EQ(*g.at(kLinuxCmdlineGpa + 99), 'x');
  EXPECT_EQ(*g.at(kLinuxCmdlineGpa + 100), 0);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB, std::string(101, 'x'))),
                 "command line of 101 bytes is longer than the kernel's limit of 100");
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB, std::string("a\0b", 3))), "NUL");
  // A kernel that claims more than our 64 KiB area gets the area's limit.
  spec.cmdline_size = 0xffffffff;
  const auto big = MakeBzImage(spec);
  EXPECT_TRUE(LoadLinux(g.view(), Config(big, 64 * kMiB, std::string(0xffff, 'y'))).ok());
  EXPECT_REFUSED(LoadLinux(g.view(), Config(big, 64 * kMiB, std::string(0x10000, 'y'))),
                 "limit of 65535");
  // Empty command line: just the NUL.
  *g.at(kLinuxCmdlineGpa) = 'z';
  EXPECT_TRUE(LoadLinux(g.view(), Config(k, 64 * kMiB, "")).ok());
  EXPECT_EQ(*g.at(kLinuxCmdlineGpa), 0);
}

TEST(LinuxLoader, RefusesBadMemoryConfigs) {
  GuestBuffer g(64 * kMiB);
  const auto k = MakeBzImage(BzSpec{});
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB + 100)), "multiple of 4 KiB");
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 1 * kMiB)), "above 1 MiB");
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 0xc0001000)), "at most 3 GiB");
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 128 * kMiB)), "view of 67108864 bytes is smaller");
  LinuxBootConfig cfg = Config(k, 64 * kMiB);
  cfg.rsdp_gpa = 64 * kMiB - 8;
  EXPECT_REFUSED(LoadLinux(g.view(), cfg), "RSDP");
}

TEST(LinuxLoader, ARefusedKernelWritesNothing) {
  GuestBuffer g(64 * kMiB);
  std::memset(g.at(0), 0xa5, 2 * kMiB);
  BzSpec spec;
  spec.cmdline_size = 4;
  const auto k = MakeBzImage(spec);
  ASSERT_FALSE(LoadLinux(g.view(), Config(k, 64 * kMiB, "too long")).ok());
  for (uint64_t gpa : {kLinuxGdtGpa, kLinuxBootParamsGpa, kLinuxPml4Gpa, kLinuxCmdlineGpa,
                       kLinuxBzImageLoadGpa})
    EXPECT_EQ(*g.at(gpa), 0xa5) << std::hex << gpa;
}

// ----------------------------------------------------------------------- ELF

TEST(LinuxLoaderElf, LoadsSegmentsByPhysicalAddress) {
  const uint64_t mem = 64 * kMiB;
  GuestBuffer g(mem);
  std::memset(g.at(0x1000000), 0xa5, 0x300000);  // bss must come out zeroed
  ElfSpec spec;
  const auto k = MakeElf(spec);
  std::vector<uint8_t> initrd(5000, 0x77);
  LinuxBootConfig cfg = Config(k, mem, "root=/dev/pmem0");
  cfg.initrd = initrd;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  const LinuxBootInfo& info = *r;
  EXPECT_FALSE(info.bzimage);
  // e_entry 0xffffffff81000000 in the text segment -> its p_paddr.
  EXPECT_EQ(info.entry_gpa, 0x1000000u);
  EXPECT_EQ(info.kernel_end, 0x1205000u);
  // Segment 0 (text) and 2 (data + bss); the PT_NOTE is not loaded.
  EXPECT_EQ(*g.at(0x1000000), SegByte(0, 0));
  EXPECT_EQ(*g.at(0x1002fff), SegByte(0, 0x2fff));
  EXPECT_EQ(*g.at(0x1200000), SegByte(2, 0));
  EXPECT_EQ(*g.at(0x12017ff), SegByte(2, 0x17ff));
  for (uint64_t a = 0x1201800; a < 0x1205000; ++a) ASSERT_EQ(*g.at(a), 0) << std::hex << a;
  EXPECT_EQ(*g.at(0x1205000), 0xa5);  // nothing past memsz
  EXPECT_EQ(*g.at(0x1003000), 0xa5);  // PT_NOTE not loaded

  // The setup header a vmlinux lacks, filled in.
  const SetupHeader h = LoadedHeader(g);
  EXPECT_EQ(+h.boot_flag, 0xaa55);
  EXPECT_EQ(+h.header, kHdrSMagic);
  EXPECT_EQ(+h.version, 0x020f);
  EXPECT_EQ(+h.kernel_alignment, 0x1000000u);
  EXPECT_EQ(+h.cmdline_size, kLinuxElfCmdlineSize);
  EXPECT_EQ(+h.type_of_loader, 0xff);
  EXPECT_EQ(+h.cmd_line_ptr, kLinuxCmdlineGpa);
  EXPECT_EQ(+h.ramdisk_image, info.initrd_gpa);
  EXPECT_EQ(+h.ramdisk_size, 5000u);
  EXPECT_EQ(BootParam<uint64_t>(g, kBpAcpiRsdpAddr), 0u);
  ExpectE820Sane(g, info, mem);
  EXPECT_STREQ(reinterpret_cast<const char*>(g.at(kLinuxCmdlineGpa)), "root=/dev/pmem0");

  EXPECT_EQ(info.initrd_gpa % 4096, 0u);
  EXPECT_GE(info.initrd_gpa, info.kernel_end);
  EXPECT_LE(info.initrd_gpa + info.initrd_size, mem);
  EXPECT_EQ(*g.at(info.initrd_gpa + 4999), 0x77);
}

TEST(LinuxLoaderElf, PhysicalEntryAsInDebiansVmlinux) {
  GuestBuffer g(64 * kMiB);
  ElfSpec spec;
  spec.entry = 0x1000040;  // ENTRY(phys_startup_64): already physical
  const auto k = MakeElf(spec);
  auto r = LoadLinux(g.view(), Config(k, 64 * kMiB));
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->entry_gpa, 0x1000040u);
  spec.entry = 0xffffffff81000123ull;
  const auto k2 = MakeElf(spec);
  auto r2 = LoadLinux(g.view(), Config(k2, 64 * kMiB));
  ASSERT_TRUE(r2.ok()) << ErrorOf(r2);
  EXPECT_EQ(r2->entry_gpa, 0x1000123u);
}

TEST(LinuxLoaderElf, InitrdStaysBelow896MiB) {
  const uint64_t mem = 1024 * kMiB;
  GuestBuffer g(mem);
  const auto k = MakeElf(ElfSpec{});
  std::vector<uint8_t> initrd(70000, 0x33);
  LinuxBootConfig cfg = Config(k, mem);
  cfg.initrd = initrd;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->initrd_gpa % 4096, 0u);
  EXPECT_LE(r->initrd_gpa + r->initrd_size, kLinuxElfInitrdLimit);
  EXPECT_GT(r->initrd_gpa + r->initrd_size, kLinuxElfInitrdLimit - 4096);
  EXPECT_EQ(r->e820.back().addr + r->e820.back().size, mem);
}

TEST(LinuxLoaderElf, RefusesASegmentPastRam) {
  GuestBuffer g(64 * kMiB);
  ElfSpec spec;
  spec.segs[2].paddr = 64 * kMiB - 0x1000;  // memsz 0x5000
  const auto k = MakeElf(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "ELF: segment 2 ends past guest memory");
  spec.segs[2].paddr = ~0ull - 0x100;  // wraps
  const auto k2 = MakeElf(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k2, 64 * kMiB)), "ELF: segment 2 ends past guest memory");
}

TEST(LinuxLoaderElf, RefusesFileszLargerThanMemsz) {
  GuestBuffer g(64 * kMiB);
  ElfSpec spec;
  spec.segs[0].memsz = 0x2000;  // filesz 0x3000
  const auto k = MakeElf(spec);
  EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)),
                 "ELF: segment 0 has p_filesz 0x3000 larger than p_memsz 0x2000");
}

TEST(LinuxLoaderElf, RefusesTheWrongMachineOrType) {
  GuestBuffer g(64 * kMiB);
  ElfSpec spec;
  spec.machine = EM_AARCH64;
  EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)),
                 "ELF: machine 183 is not x86-64 (62)");
  spec = ElfSpec{};
  spec.type = ET_DYN;
  EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)), "is not ET_EXEC");
  spec = ElfSpec{};
  spec.klass = ELFCLASS32;
  EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)), "not ELFCLASS64");
}

TEST(LinuxLoaderElf, RefusesOtherHostileFiles) {
  GuestBuffer g(64 * kMiB);
  {
    ElfSpec spec;
    spec.segs[0].offset = 0x7fffffff;  // data far past the end of the file
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)),
                   "segment 0 reads past the end of the file");
  }
  {
    ElfSpec spec;
    spec.segs[0].offset = ~0ull - 0x10;  // offset + filesz wraps
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)),
                   "reads past the end of the file");
  }
  {
    ElfSpec spec;
    spec.segs[0].paddr = 0x7000;  // onto boot_params
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)), "below 1 MiB");
  }
  {
    ElfSpec spec;
    spec.entry = 0x5000000;  // in no segment
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)),
                   "entry point 0x5000000 lies in no executable PT_LOAD segment");
  }
  {
    ElfSpec spec;
    spec.entry = 0xffffffff81200010ull;  // in the data segment, not executable
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)), "no executable");
  }
  {
    ElfSpec spec;
    spec.segs = {{PT_NOTE, PF_R, 0, 0x1000000, 0x10, 0x10}};
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB)), "no PT_LOAD segment");
  }
  {
    auto k = MakeElf(ElfSpec{});
    k.resize(40);  // shorter than the ELF header
    EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "shorter than an ELF64 header");
  }
  {
    auto k = MakeElf(ElfSpec{});
    Elf64_Ehdr eh;
    std::memcpy(&eh, k.data(), sizeof eh);
    eh.e_phoff = k.size() - 10;  // program headers run off the end
    std::memcpy(k.data(), &eh, sizeof eh);
    EXPECT_REFUSED(LoadLinux(g.view(), Config(k, 64 * kMiB)), "program headers at");
  }
  {
    ElfSpec spec;
    EXPECT_REFUSED(LoadLinux(g.view(), Config(MakeElf(spec), 64 * kMiB, std::string(2048, 'c'))),
                   "limit of 2047");
  }
}

// Random corruption of the headers: every outcome is a clean Error or a
// load whose results stay inside guest memory (run under ASan to catch the
// rest).
TEST(LinuxLoader, CorruptedHeadersNeverEscapeGuestMemory) {
  const uint64_t mem = 64 * kMiB;
  GuestBuffer g(mem);
  BzSpec bz;
  bz.pm_size = 0x2000;
  bz.init_size = 0x100000;
  const auto good_bz = MakeBzImage(bz);
  const auto good_elf = MakeElf(ElfSpec{});
  std::vector<uint8_t> initrd(12345, 9);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int loaded = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const bool elf = iter % 2;
    std::vector<uint8_t> k = elf ? good_elf : good_bz;
    const uint64_t lo = elf ? 0 : 0x1f1;
    const uint64_t hi = elf ? sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr) : 0x270;
    const int flips = 1 + static_cast<int>(next() % 4);
    for (int f = 0; f < flips; ++f) k[lo + next() % (hi - lo)] = static_cast<uint8_t>(next());
    if (next() % 8 == 0) k.resize(next() % k.size());
    LinuxBootConfig cfg = Config(k, mem);
    if (iter % 3 == 0) cfg.initrd = initrd;
    auto r = LoadLinux(g.view(), cfg);
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message().empty());
      continue;
    }
    ++loaded;
    ASSERT_LT(r->entry_gpa, mem);
    ASSERT_LE(r->kernel_end, mem);
    ASSERT_LE(r->initrd_gpa + r->initrd_size, mem);
    if (r->initrd_size != 0) {
      ASSERT_GE(r->initrd_gpa, r->kernel_end);
    }
  }
  EXPECT_GT(loaded, 0);  // some corruptions are harmless
}

// ------------------------------------------------ GDT, page tables, registers

TEST(LinuxLoader, PageTablesIdentityMapEverythingTheKernelTouches) {
  const uint64_t mem = 256 * kMiB;
  GuestBuffer g(mem);
  const auto k = MakeBzImage(BzSpec{});
  std::vector<uint8_t> initrd(3 * kMiB, 1);
  LinuxBootConfig cfg = Config(k, mem);
  cfg.initrd = initrd;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  for (uint64_t a : std::initializer_list<uint64_t>{r->entry_gpa, kLinuxBzImageLoadGpa, r->kernel_end - 1, r->boot_params_gpa,
                     kLinuxBootParamsGpa + 0xfff, kLinuxCmdlineGpa, kLinuxGdtGpa, kLinuxStackTop - 8,
                     r->initrd_gpa, r->initrd_gpa + r->initrd_size - 1, mem - 1, 0xfee00000ull,
                     (4ull << 30) - 1})
    EXPECT_EQ(Translate(g, a), a) << std::hex << a;
  EXPECT_EQ(Translate(g, 4ull << 30), ~0ull);  // nothing beyond 4 GiB
  // Page-table pages themselves: PML4 -> PDPT -> 4 PDs.
  EXPECT_EQ(g.get<uint64_t>(kLinuxPml4Gpa) & ~0xfffull, kLinuxPdptGpa);
  for (uint64_t i = 0; i < 4; ++i)
    EXPECT_EQ(g.get<uint64_t>(kLinuxPdptGpa + i * 8) & ~0xfffull, kLinuxPdGpa + i * 4096);
  EXPECT_EQ(g.get<uint64_t>(kLinuxPdptGpa + 4 * 8), 0u);
}

struct Descriptor {
  uint64_t base;
  uint32_t limit;  // in bytes, granularity applied
  uint8_t type, s, dpl, present, l, db, g;
};

Descriptor Decode(const GuestBuffer& gb, uint16_t selector) {
  const uint64_t d = gb.get<uint64_t>(kLinuxGdtGpa + (selector & ~7));
  Descriptor r{};
  r.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
  r.limit = static_cast<uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
  r.type = (d >> 40) & 0xf;
  r.s = (d >> 44) & 1;
  r.dpl = (d >> 45) & 3;
  r.present = (d >> 47) & 1;
  r.l = (d >> 53) & 1;
  r.db = (d >> 54) & 1;
  r.g = (d >> 55) & 1;
  if (r.g) r.limit = (r.limit << 12) | 0xfff;
  if (!r.s) r.base |= gb.get<uint64_t>(kLinuxGdtGpa + (selector & ~7) + 8) << 32;
  return r;
}

void ExpectSegmentMatchesGdt(const GuestBuffer& g, const kvm_segment& seg, const char* name) {
  SCOPED_TRACE(name);
  const Descriptor d = Decode(g, seg.selector);
  EXPECT_EQ(seg.base, d.base);
  EXPECT_EQ(seg.limit, d.limit);
  EXPECT_EQ(seg.s, d.s);
  EXPECT_EQ(seg.dpl, d.dpl);
  EXPECT_EQ(seg.present, d.present);
  EXPECT_EQ(seg.l, d.l);
  EXPECT_EQ(seg.db, d.db);
  EXPECT_EQ(seg.g, d.g);
  // The TSS descriptor is "available" in the GDT, "busy" once in TR.
  EXPECT_EQ(seg.type, d.s ? d.type : (d.type | 2));
}

TEST(LinuxLoader, VcpuStateMatchesTheGdtAndTheBootProtocol) {
  GuestBuffer g(64 * kMiB);
  const auto k = MakeBzImage(BzSpec{});
  auto r = LoadLinux(g.view(), Config(k, 64 * kMiB));
  ASSERT_TRUE(r.ok()) << ErrorOf(r);

  kvm_sregs sregs{};
  sregs.apic_base = 0xfee00900;
  FillLinuxSregs(sregs);
  EXPECT_EQ(sregs.apic_base, 0xfee00900u);  // kept
  EXPECT_EQ(sregs.cr0 & 0x80000001u, 0x80000001u);  // PG | PE
  EXPECT_TRUE(sregs.cr0 & 0x20);                    // NE
  EXPECT_FALSE(sregs.cr0 & 0x60000000u);            // caches on (no CD/NW)
  EXPECT_EQ(sregs.cr4 & 0x20, 0x20u);               // PAE
  EXPECT_EQ(sregs.efer & 0x500, 0x500u);            // LME | LMA
  EXPECT_EQ(sregs.cr3, kLinuxPml4Gpa);
  EXPECT_EQ(sregs.cs.selector, 0x10);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.cs.db, 0);
  EXPECT_EQ(sregs.cs.type & 0x8, 0x8);  // code
  for (const kvm_segment* s : {&sregs.ds, &sregs.es, &sregs.ss, &sregs.fs, &sregs.gs}) {
    EXPECT_EQ(s->selector, 0x18);
    EXPECT_EQ(s->type & 0xa, 0x2);  // data, writable
  }
  EXPECT_EQ(sregs.gdt.base, kLinuxGdtGpa);
  EXPECT_EQ(sregs.gdt.limit, kLinuxGdtEntries * 8 - 1);
  EXPECT_EQ(sregs.idt.limit, 0);
  EXPECT_EQ(sregs.tr.type, 0xb);
  EXPECT_EQ(sregs.ldt.unusable, 1);
  ExpectSegmentMatchesGdt(g, sregs.cs, "cs");
  ExpectSegmentMatchesGdt(g, sregs.ds, "ds");
  ExpectSegmentMatchesGdt(g, sregs.ss, "ss");
  ExpectSegmentMatchesGdt(g, sregs.tr, "tr");
  EXPECT_EQ(g.get<uint64_t>(kLinuxGdtGpa), 0u);      // null
  EXPECT_EQ(g.get<uint64_t>(kLinuxGdtGpa + 8), 0u);  // unused

  const kvm_regs regs = LinuxEntryRegs(*r);
  EXPECT_EQ(regs.rip, 0x100200u);
  EXPECT_EQ(regs.rsi, kLinuxBootParamsGpa);
  EXPECT_EQ(regs.rflags, 2u);
  EXPECT_EQ(regs.rsp, kLinuxStackTop);
}

#ifdef KF_HAVE_BOOTPARAM_H
// The offsets we write, against the kernel's own UAPI header.
TEST(LinuxLoader, OffsetsAgreeWithAsmBootparamH) {
  EXPECT_EQ(offsetof(boot_params, acpi_rsdp_addr), kBpAcpiRsdpAddr);
  EXPECT_EQ(offsetof(boot_params, ext_ramdisk_image), kBpExtRamdiskImage);
  EXPECT_EQ(offsetof(boot_params, ext_ramdisk_size), kBpExtRamdiskSize);
  EXPECT_EQ(offsetof(boot_params, ext_cmd_line_ptr), kBpExtCmdLinePtr);
  EXPECT_EQ(offsetof(boot_params, e820_entries), kBpE820Entries);
  EXPECT_EQ(offsetof(boot_params, sentinel), kBpSentinel);
  EXPECT_EQ(offsetof(boot_params, hdr), kSetupHeaderOffset);
  EXPECT_EQ(offsetof(boot_params, e820_table), kBpE820Table);
  EXPECT_EQ(sizeof(boot_e820_entry), kBpE820EntrySize);
  EXPECT_EQ(std::size(boot_params{}.e820_table), kBpE820Max);
  EXPECT_EQ(sizeof(boot_params), kLinuxBootParamsSize);
  EXPECT_EQ(sizeof(setup_header), sizeof(SetupHeader));
#define KF_SAME(f) EXPECT_EQ(offsetof(setup_header, f), offsetof(SetupHeader, f)) << #f
  KF_SAME(setup_sects);
  KF_SAME(boot_flag);
  KF_SAME(header);
  KF_SAME(version);
  KF_SAME(type_of_loader);
  KF_SAME(loadflags);
  KF_SAME(ramdisk_image);
  KF_SAME(ramdisk_size);
  KF_SAME(heap_end_ptr);
  KF_SAME(cmd_line_ptr);
  KF_SAME(initrd_addr_max);
  KF_SAME(kernel_alignment);
  KF_SAME(relocatable_kernel);
  KF_SAME(xloadflags);
  KF_SAME(cmdline_size);
  KF_SAME(setup_data);
  KF_SAME(pref_address);
  KF_SAME(init_size);
  KF_SAME(kernel_info_offset);
#undef KF_SAME
  EXPECT_EQ(XLF_KERNEL_64, kXlfKernel64);
  EXPECT_EQ(LOADED_HIGH, kLoadedHigh);
  EXPECT_EQ(CAN_USE_HEAP, kCanUseHeap);
}
#endif

// ------------------------------------------------------- Debian's real kernel

// scripts/nested-kvm caches linux-image-*-cloud-amd64*.deb here.
std::filesystem::path FindCachedKernelDeb() {
  const char* root = std::getenv("KF_CACHE");
  std::filesystem::path dir;
  if (root && *root) {
    dir = std::filesystem::path(root) / "nested";
  } else {
    const char* home = std::getenv("HOME");
    dir = std::filesystem::path(home && *home ? home : "/root") / ".cache/kata-factory/nested";
  }
  std::error_code ec;
  std::vector<std::filesystem::path> debs;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("linux-image-") && name.find("cloud-amd64") != std::string::npos &&
        name.ends_with(".deb"))
      debs.push_back(e.path());
  }
  if (debs.empty()) return {};
  std::sort(debs.begin(), debs.end());
  return debs.back();
}

std::vector<uint8_t> ExtractVmlinuz(const std::filesystem::path& deb, std::string* why) {
  const std::string cmd = "dpkg-deb --fsys-tarfile '" + deb.string() +
                          "' | tar -xO --wildcards './boot/vmlinuz-*' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *why = "popen failed";
    return {};
  }
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.insert(out.end(), buf, buf + n);
  const int rc = pclose(p);
  if (rc != 0 || out.empty()) *why = "dpkg-deb | tar exited with " + std::to_string(rc);
  return out;
}

TEST(LinuxLoaderRealKernel, DebianCloudKernel) {
  const auto deb = FindCachedKernelDeb();
  if (deb.empty())
    GTEST_SKIP() << "no linux-image-*cloud-amd64*.deb cached under ~/.cache/kata-factory/nested "
                    "(scripts/nested-kvm downloads it)";
  std::string why;
  const auto kernel = ExtractVmlinuz(deb, &why);
  if (kernel.empty()) GTEST_SKIP() << "cannot extract boot/vmlinuz-* from " << deb << ": " << why;

  const uint64_t mem = 256 * kMiB;
  GuestBuffer g(mem);
  std::vector<uint8_t> initrd(1 * kMiB, 0x42);
  LinuxBootConfig cfg = Config(kernel, mem, "console=ttyS0 reboot=k panic=-1 quiet");
  cfg.initrd = initrd;
  cfg.rsdp_gpa = 0xe0000;
  auto r = LoadLinux(g.view(), cfg);
  ASSERT_TRUE(r.ok()) << deb.filename() << ": " << ErrorOf(r);
  const SetupHeader h = LoadedHeader(g);
  std::printf("    %s: protocol %u.%02u, %zu bytes, setup_sects %u, pref_address %#llx, "
              "init_size %#x, kernel_end %#llx, initrd at %#llx\n",
              deb.filename().c_str(), unsigned{h.version} >> 8, unsigned{h.version} & 0xffu,
              kernel.size(),
              h.setup_sects, static_cast<unsigned long long>(h.pref_address), h.init_size,
              static_cast<unsigned long long>(r->kernel_end),
              static_cast<unsigned long long>(r->initrd_gpa));
  EXPECT_TRUE(r->bzimage);
  EXPECT_GE(+h.version, 0x020c);
  EXPECT_TRUE(h.xloadflags & kXlfKernel64);
  EXPECT_EQ(r->entry_gpa, 0x100000u + 0x200);
  EXPECT_EQ(+h.type_of_loader, 0xff);
  EXPECT_EQ(+h.cmd_line_ptr, kLinuxCmdlineGpa);
  EXPECT_GE(r->kernel_end, h.pref_address + h.init_size);
  EXPECT_GE(r->initrd_gpa, r->kernel_end);
  EXPECT_EQ(r->initrd_gpa % 4096, 0u);
  EXPECT_LE(r->initrd_gpa + r->initrd_size, mem);
  // The protected-mode part is where the entry expects it.
  const uint64_t setup = (uint64_t{h.setup_sects ? h.setup_sects : 4u} + 1) * 512;
  EXPECT_EQ(std::memcmp(g.at(0x100000), kernel.data() + setup, kernel.size() - setup), 0);
  EXPECT_EQ(Translate(g, r->entry_gpa), r->entry_gpa);
  ExpectE820Sane(g, *r, mem);
}

}  // namespace
}  // namespace kf
