// ACPI tables for Linux guests (vmm-glue/acpi): the AML encoder's corner
// cases byte by byte, then the whole blob read the way Linux reads it (scan
// for the RSDP, follow XSDT -> FADT -> DSDT and XSDT -> MADT), then the
// refused configurations. Last, when iasl (acpica-tools) is installed, an
// independent decoder: it must disassemble our DSDT, MADT and FADT without
// complaint and show what we meant to encode.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string>

#include "vmm-glue/acpi/aml.h"
#include "vmm-glue/acpi/tables.h"

namespace {

using kf::acpi::AcpiConfig;
using kf::acpi::AcpiTables;
using kf::acpi::BuildAcpiTables;
using kf::acpi::Bytes;
using kf::acpi::VirtioMmioDevice;
namespace aml = kf::acpi::aml;

constexpr uint64_t kBiosArea = 0xe0000, kBiosAreaEnd = 0x100000;

uint64_t Le(std::span<const uint8_t> b, size_t off, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | b[off + i];
  return v;
}

uint8_t Sum(std::span<const uint8_t> b) {
  uint8_t s = 0;
  for (uint8_t x : b) s = static_cast<uint8_t>(s + x);
  return s;
}

bool Contains(std::span<const uint8_t> hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

size_t Count(std::span<const uint8_t> hay, const Bytes& needle) {
  size_t n = 0;
  for (auto it = hay.begin();
       (it = std::search(it, hay.end(), needle.begin(), needle.end())) != hay.end(); ++it)
    ++n;
  return n;
}

Bytes Str(std::string_view s) { return Bytes(s.begin(), s.end()); }

// The table at guest physical `gpa`, its length read from its header.
std::span<const uint8_t> TableAt(const AcpiTables& t, uint64_t gpa) {
  EXPECT_GE(gpa, t.base_gpa);
  EXPECT_LE(gpa + 36, t.base_gpa + t.bytes.size());
  std::span<const uint8_t> all(t.bytes);
  size_t off = gpa - t.base_gpa;
  uint32_t len = static_cast<uint32_t>(Le(all, off + 4, 4));
  EXPECT_LE(off + len, all.size());
  return all.subspan(off, len);
}

std::string Sig(std::span<const uint8_t> table) {
  return std::string(table.begin(), table.begin() + 4);
}

// What Linux's acpi_find_root_pointer does over 0xe0000-0xfffff: every
// 16-byte boundary, "RSD PTR ", the 20-byte checksum, and for revision >= 2
// the extended checksum over the RSDP's length.
std::optional<uint64_t> ScanForRsdp(std::span<const uint8_t> bios_area) {
  for (size_t off = 0; off + 36 <= bios_area.size(); off += 16) {
    if (std::memcmp(&bios_area[off], "RSD PTR ", 8) != 0) continue;
    if (Sum(bios_area.subspan(off, 20)) != 0) continue;
    if (bios_area[off + 15] >= 2 && Sum(bios_area.subspan(off, Le(bios_area, off + 20, 4))) != 0)
      continue;
    return kBiosArea + off;
  }
  return std::nullopt;
}

struct Walked {
  std::span<const uint8_t> rsdp, xsdt, fadt, madt, dsdt;
};

// RSDP -> XSDT -> {FACP -> DSDT, APIC}, by signature as ACPICA does.
Walked Walk(const AcpiTables& t) {
  Walked w;
  w.rsdp = std::span<const uint8_t>(t.bytes).subspan(t.rsdp_gpa - t.base_gpa, 36);
  w.xsdt = TableAt(t, Le(w.rsdp, 24, 8));
  for (size_t off = 36; off + 8 <= w.xsdt.size(); off += 8) {
    auto table = TableAt(t, Le(w.xsdt, off, 8));
    if (Sig(table) == "FACP") w.fadt = table;
    if (Sig(table) == "APIC") w.madt = table;
  }
  if (!w.fadt.empty()) w.dsdt = TableAt(t, Le(w.fadt, 140, 8));
  return w;
}

AcpiConfig TwoDevices() {
  AcpiConfig c;
  c.num_cpus = 2;
  c.virtio_mmio = {{0xd0000000, 0x1000, 5}, {0xd0001000, 0x200, 6}};
  return c;
}

AcpiTables Build(const AcpiConfig& c) {
  auto r = BuildAcpiTables(c, kBiosArea, kBiosAreaEnd - kBiosArea);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? *r : AcpiTables{};
}

// ---- the AML encoder ----

TEST(AmlTest, PkgLengthUsesTheShortestEncodingThatCountsItself) {
  auto enc = [](size_t n) { return aml::PkgLength(n).value(); };
  EXPECT_EQ(enc(0), (Bytes{0x01}));
  EXPECT_EQ(enc(62), (Bytes{0x3F}));                               // 63 in one byte
  EXPECT_EQ(enc(63), (Bytes{0x41, 0x04}));                         // 65 = 0x041
  EXPECT_EQ(enc(4093), (Bytes{0x4F, 0xFF}));                       // 4095, the 2-byte maximum
  EXPECT_EQ(enc(4094), (Bytes{0x81, 0x00, 0x01}));                 // 4097 = 0x01001
  EXPECT_EQ(enc((1 << 20) - 4), (Bytes{0x8F, 0xFF, 0xFF}));        // 2^20 - 1, the 3-byte maximum
  EXPECT_EQ(enc((1 << 20) - 3), (Bytes{0xC1, 0x00, 0x00, 0x01}));  // 2^20 + 1 = 0x0100001
  EXPECT_EQ(enc((1 << 28) - 5), (Bytes{0xCF, 0xFF, 0xFF, 0xFF}));
  EXPECT_FALSE(aml::PkgLength((1 << 28) - 4).ok());
}

TEST(AmlTest, NameStringsFollowTheNamePathRules) {
  auto enc = [](std::string_view s) { return aml::NameString(s).value(); };
  EXPECT_EQ(enc("_HID"), Str("_HID"));
  EXPECT_EQ(enc("\\_SB_"), Str("\\_SB_"));
  EXPECT_EQ(enc("\\_SB"), Str("\\_SB_"));  // padded with '_'
  EXPECT_EQ(enc("\\_SB_.V000"), Str("\\\x2E_SB_V000"));
  EXPECT_EQ(enc("A.B.C"), Str("\x2F\x03"
                              "A___B___C___"));
  EXPECT_EQ(enc("^COM1"), Str("^COM1"));
  EXPECT_EQ(enc("\\"), (Bytes{'\\', 0x00}));
  for (const char* bad : {"", "1ABC", "abcd", "ABCDE", "A..B", "A.", ".A", "\\^A", "A-B"})
    EXPECT_FALSE(aml::NameString(bad).ok()) << bad;
}

TEST(AmlTest, IntegersUseTheShortestPrefix) {
  EXPECT_EQ(aml::Integer(0), (Bytes{0x00}));
  EXPECT_EQ(aml::Integer(1), (Bytes{0x01}));
  EXPECT_EQ(aml::Integer(0xF), (Bytes{0x0A, 0x0F}));
  EXPECT_EQ(aml::Integer(0x1234), (Bytes{0x0B, 0x34, 0x12}));
  EXPECT_EQ(aml::Integer(0xd0000000), (Bytes{0x0C, 0x00, 0x00, 0x00, 0xd0}));
  EXPECT_EQ(aml::Integer(0x100000000), (Bytes{0x0E, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlTest, StringsAndEisaIds) {
  EXPECT_EQ(aml::String("LNRO0005").value(),
            (Bytes{0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00}));
  EXPECT_FALSE(aml::String(std::string_view("a\0b", 3)).ok());
  EXPECT_FALSE(aml::String("\xC3\xA9").ok());
  // The value every PC firmware's COM port carries: 0x0105D041.
  EXPECT_EQ(aml::EisaId("PNP0501").value(), (Bytes{0x0C, 0x41, 0xD0, 0x05, 0x01}));
  EXPECT_EQ(aml::EisaId("PNP0A03").value(), (Bytes{0x0C, 0x41, 0xD0, 0x0A, 0x03}));
  for (const char* bad : {"PNP050", "pnp0501", "PNP05G1", "PN10501"})
    EXPECT_FALSE(aml::EisaId(bad).ok()) << bad;
}

TEST(AmlTest, ResourceTemplateIsABufferEndingInAnEndTag) {
  auto rt = aml::ResourceTemplate({aml::Memory32Fixed(true, 0xd0000000, 0x1000),
                                   aml::IoPort(0x3f8, 0x3f8, 1, 8), aml::ExtendedInterrupt({}, 5)})
                .value();
  Bytes want = {0x11, 0x22, 0x0A, 0x1F,                          // Buffer, PkgLength 34, size 31
                0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0,  // Memory32Fixed RW
                0x00, 0x10, 0x00, 0x00,                          //   length 0x1000
                0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,  // IO Decode16
                0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00,  // consumer, edge
                0x79, 0x00};                                           // End Tag
  EXPECT_EQ(rt, want);
}

TEST(AmlTest, DeviceAndScopeWrapTheirBodies) {
  Bytes body = aml::Name("_UID", aml::Integer(0)).value();
  EXPECT_EQ(body, Str(std::string("\x08_UID\x00", 6)));
  Bytes dev = aml::Device("V000", body).value();
  Bytes want = {0x5B, 0x82, 0x0B, 'V', '0', '0', '0'};  // 11 = 1 + 4 + 6
  want.insert(want.end(), body.begin(), body.end());
  EXPECT_EQ(dev, want);
  Bytes scope = aml::Scope("\\_SB_", dev).value();
  EXPECT_EQ(scope[0], 0x10);
  EXPECT_EQ(scope[1], 1 + 5 + dev.size());
  EXPECT_FALSE(aml::Device("bad", body).ok());
}

// ---- the tables, as Linux reads them ----

TEST(AcpiTablesTest, RsdpIsFoundByScanningTheBiosArea) {
  AcpiTables t = Build(TwoDevices());
  ASSERT_EQ(t.base_gpa, kBiosArea);
  EXPECT_EQ(t.rsdp_gpa, kBiosArea);
  Bytes bios(kBiosAreaEnd - kBiosArea, 0);
  std::copy(t.bytes.begin(), t.bytes.end(), bios.begin());
  EXPECT_EQ(ScanForRsdp(bios), t.rsdp_gpa);

  // Also when the blob sits further up the area (still 16-byte aligned).
  auto r = BuildAcpiTables(TwoDevices(), 0xf0010, 0x10000);
  ASSERT_TRUE(r.ok()) << r.error().message();
  std::fill(bios.begin(), bios.end(), 0);
  std::copy(r->bytes.begin(), r->bytes.end(), bios.begin() + (0xf0010 - kBiosArea));
  EXPECT_EQ(ScanForRsdp(bios), 0xf0010u);
}

TEST(AcpiTablesTest, EveryTableIsChecksummedAndCarriesOurIds) {
  AcpiTables t = Build(TwoDevices());
  Walked w = Walk(t);
  EXPECT_EQ(Sum(w.rsdp.subspan(0, 20)), 0);
  EXPECT_EQ(Sum(w.rsdp), 0);
  EXPECT_EQ(w.rsdp[15], 2);  // revision 2: the XSDT is used
  EXPECT_EQ(Le(w.rsdp, 20, 4), 36u);
  EXPECT_EQ(std::string(w.rsdp.begin() + 9, w.rsdp.begin() + 15), "KATAFA");
  std::map<std::string, std::span<const uint8_t>> tables = {
      {"XSDT", w.xsdt}, {"FACP", w.fadt}, {"APIC", w.madt}, {"DSDT", w.dsdt}};
  for (auto& [sig, table] : tables) {
    ASSERT_GE(table.size(), 36u) << sig;
    EXPECT_EQ(Sig(table), sig);
    EXPECT_EQ(Sum(table), 0) << sig;
    EXPECT_EQ(std::string(table.begin() + 10, table.begin() + 16), "KATAFA") << sig;
    EXPECT_EQ(std::string(table.begin() + 28, table.begin() + 32), "KFAC") << sig;
  }
}

TEST(AcpiTablesTest, TablesAreEightByteAlignedAndInsideTheBlob) {
  AcpiTables t = Build(TwoDevices());
  Walked w = Walk(t);
  size_t end = 0;
  for (auto table : {w.xsdt, w.fadt, w.madt, w.dsdt}) {
    size_t off = table.data() - t.bytes.data();
    EXPECT_EQ(off % 8, 0u);
    end = std::max(end, off + table.size());
  }
  EXPECT_EQ(end, t.bytes.size());
}

TEST(AcpiTablesTest, XsdtListsFadtAndMadtAndFadtPointsAtDsdt) {
  AcpiTables t = Build(TwoDevices());
  Walked w = Walk(t);
  ASSERT_EQ(w.xsdt.size(), 36u + 2 * 8);
  EXPECT_EQ(Sig(TableAt(t, Le(w.xsdt, 36, 8))), "FACP");
  EXPECT_EQ(Sig(TableAt(t, Le(w.xsdt, 44, 8))), "APIC");

  ASSERT_EQ(w.fadt.size(), 276u);
  EXPECT_EQ(w.fadt[8], 6);                         // revision 6
  EXPECT_EQ(Le(w.fadt, 36, 4), 0u);                // no FACS
  EXPECT_EQ(Le(w.fadt, 40, 4), 0u);                // X_DSDT only
  EXPECT_EQ(Le(w.fadt, 46, 2), 0u);                // no SCI
  EXPECT_EQ(Le(w.fadt, 76, 4), 0u);                // no PM timer
  EXPECT_NE(Le(w.fadt, 112, 4) & (1u << 20), 0u);  // HW_REDUCED_ACPI
  uint64_t iapc = Le(w.fadt, 109, 2);
  EXPECT_EQ(iapc & (1u << 1), 0u);  // no 8042
  EXPECT_NE(iapc & (1u << 2), 0u);  // no VGA
  EXPECT_NE(iapc & (1u << 5), 0u);  // no CMOS RTC
  ASSERT_FALSE(w.dsdt.empty());
  EXPECT_EQ(Sig(w.dsdt), "DSDT");
}

TEST(AcpiTablesTest, MadtHasOneLapicPerCpuAnIoapicAndTheTimerOverride) {
  for (uint32_t cpus : {1u, 4u, 254u}) {
    AcpiConfig c = TwoDevices();
    c.num_cpus = cpus;
    AcpiTables t = Build(c);
    auto madt = Walk(t).madt;
    ASSERT_FALSE(madt.empty());
    EXPECT_EQ(Le(madt, 36, 4), 0xfee00000u);
    EXPECT_EQ(Le(madt, 40, 4), 1u);  // PCAT_COMPAT
    std::map<int, int> count;
    uint32_t next_id = 0;
    for (size_t off = 44; off < madt.size(); off += madt[off + 1]) {
      ASSERT_GE(madt[off + 1], 2);
      ++count[madt[off]];
      if (madt[off] == 0) {  // Processor Local APIC: UID, APIC ID, enabled
        EXPECT_EQ(madt[off + 2], next_id);
        EXPECT_EQ(madt[off + 3], next_id++);
        EXPECT_EQ(Le(madt, off + 4, 4), 1u);
      } else if (madt[off] == 1) {  // I/O APIC
        EXPECT_EQ(madt[off + 2], 0);
        EXPECT_EQ(Le(madt, off + 4, 4), 0xfec00000u);
        EXPECT_EQ(Le(madt, off + 8, 4), 0u);
      } else if (madt[off] == 2) {              // Interrupt Source Override
        EXPECT_EQ(madt[off + 2], 0);            // ISA
        EXPECT_EQ(madt[off + 3], 0);            // IRQ 0
        EXPECT_EQ(Le(madt, off + 4, 4), 2u);    // GSI 2
        EXPECT_EQ(Le(madt, off + 8, 2), 0x5u);  // edge, active high
      }
    }
    EXPECT_EQ(count[0], static_cast<int>(cpus));
    EXPECT_EQ(count[1], 1);
    EXPECT_EQ(count[2], 1);
    EXPECT_EQ(count.size(), 3u);
  }
}

TEST(AcpiTablesTest, DsdtHasADevicePerVirtioMmioWindow) {
  AcpiConfig c = TwoDevices();
  c.virtio_mmio.push_back({0xfeb00000, 0x1000, 23});
  AcpiTables t = Build(c);
  auto dsdt = Walk(t).dsdt;
  EXPECT_EQ(Count(dsdt, Str(std::string("\x0DLNRO0005\0", 10))), 3u);
  for (size_t i = 0; i < c.virtio_mmio.size(); ++i) {
    const VirtioMmioDevice& d = c.virtio_mmio[i];
    char n[24];
    std::snprintf(n, sizeof n, "V%03zu", i);
    EXPECT_TRUE(Contains(dsdt, Str(n))) << n;
    Bytes mem = {0x86, 0x09, 0x00, 0x01};
    for (int b = 0; b < 4; ++b) mem.push_back(static_cast<uint8_t>(d.base >> (8 * b)));
    for (int b = 0; b < 4; ++b) mem.push_back(static_cast<uint8_t>(d.size >> (8 * b)));
    EXPECT_TRUE(Contains(dsdt, mem)) << n;
    Bytes irq = {0x89, 0x06, 0x00, 0x03, 0x01, static_cast<uint8_t>(d.gsi), 0, 0, 0};
    EXPECT_TRUE(Contains(dsdt, irq)) << n;
    EXPECT_TRUE(Contains(dsdt, aml::Name("_UID", aml::Integer(i)).value())) << n;
  }
  // COM1: EISAID PNP0501, IO 0x3f8 x 8, IRQ 4.
  EXPECT_TRUE(Contains(dsdt, Bytes{0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01}));
  EXPECT_TRUE(Contains(dsdt, Bytes{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08}));
  EXPECT_TRUE(Contains(dsdt, Bytes{0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0, 0, 0}));

  c.com1 = false;
  auto no_com = Walk(Build(c)).dsdt;
  EXPECT_FALSE(Contains(no_com, Str("COM1")));
}

TEST(AcpiTablesTest, ManyDevicesNeedMultiBytePkgLengths) {
  AcpiConfig c;
  for (uint32_t gsi = 5; gsi < 24; ++gsi)
    c.virtio_mmio.push_back({0xd0000000 + (gsi - 5) * 0x1000ull, 0x1000, gsi});
  AcpiTables t = Build(c);
  auto dsdt = Walk(t).dsdt;
  ASSERT_GT(dsdt.size(), 0x3Fu + 36);
  EXPECT_EQ(dsdt[36], 0x10);    // ScopeOp
  EXPECT_EQ(dsdt[37] >> 6, 1);  // 2-byte PkgLength
  size_t scope_len = (dsdt[37] & 0x0F) | (dsdt[38] << 4);
  EXPECT_EQ(36 + 1 + scope_len, dsdt.size());  // the Scope spans the rest of the table
  EXPECT_EQ(Count(dsdt, Str("LNRO0005")), 19u);
}

// ---- refused configurations ----

std::string BuildError(const AcpiConfig& c, uint64_t base = kBiosArea,
                       uint64_t max = kBiosAreaEnd - kBiosArea) {
  auto r = BuildAcpiTables(c, base, max);
  return r.ok() ? "" : r.error().message();
}

TEST(AcpiTablesTest, RefusesBadConfigurations) {
  AcpiConfig c = TwoDevices();
  EXPECT_EQ(BuildError(c), "");

  c.num_cpus = 0;
  EXPECT_NE(BuildError(c).find("num_cpus"), std::string::npos);
  c.num_cpus = 255;
  EXPECT_NE(BuildError(c).find("num_cpus"), std::string::npos);

  auto with_dev = [](VirtioMmioDevice extra) {
    AcpiConfig c = TwoDevices();
    c.virtio_mmio.push_back(extra);
    return BuildError(c);
  };
  EXPECT_NE(with_dev({0xd0002000, 0x1000, 24}).find("GSI 24"), std::string::npos);
  EXPECT_NE(with_dev({0xd0002000, 0x1000, 5}).find("taken by virtio-mmio device 0"),
            std::string::npos);
  EXPECT_NE(with_dev({0xd0002000, 0x1000, 4}).find("COM1"), std::string::npos);
  EXPECT_NE(with_dev({0xd0002000, 0x1000, 2}).find("PIT"), std::string::npos);
  EXPECT_NE(with_dev({0xd0002000, 0x1000, 0}).find("PIT"), std::string::npos);
  EXPECT_NE(with_dev({0xd0000800, 0x1000, 7}).find("overlaps"), std::string::npos);
  EXPECT_NE(with_dev({0xd0000000, 0x1000, 7}).find("overlaps"), std::string::npos);
  EXPECT_NE(with_dev({0xcffff000, 0x1001, 7}).find("overlaps"), std::string::npos);
  EXPECT_NE(with_dev({0xfec00800, 0x100, 7}).find("IOAPIC"), std::string::npos);
  EXPECT_NE(with_dev({0xfedff000, 0x2000, 7}).find("LAPIC"), std::string::npos);
  EXPECT_NE(with_dev({0x100000000, 0x1000, 7}).find("32-bit"), std::string::npos);
  EXPECT_NE(with_dev({0xfffff000, 0x1001, 7}).find("32-bit"), std::string::npos);
  EXPECT_NE(with_dev({0xd0002000, 0, 7}).find("empty"), std::string::npos);
  EXPECT_EQ(with_dev({0xfffff000, 0x1000, 7}), "");  // up to the last byte below 4 GiB

  AcpiConfig com_free = TwoDevices();
  com_free.com1 = false;
  com_free.virtio_mmio.push_back({0xd0002000, 0x1000, 4});
  EXPECT_EQ(BuildError(com_free), "");  // IRQ 4 is free without COM1

  c = TwoDevices();
  c.lapic_addr = 0x1'0000'0000;
  EXPECT_NE(BuildError(c).find("LAPIC"), std::string::npos);
  c = TwoDevices();
  c.ioapic_addr = ~0ull;
  EXPECT_NE(BuildError(c).find("IOAPIC"), std::string::npos);
  c = TwoDevices();
  c.ioapic_id = 256;
  EXPECT_NE(BuildError(c).find("IOAPIC ID"), std::string::npos);

  c = TwoDevices();
  EXPECT_NE(BuildError(c, 0xe0008).find("16-byte"), std::string::npos);
  size_t size = Build(c).bytes.size();
  EXPECT_EQ(BuildError(c, kBiosArea, size), "");
  EXPECT_NE(BuildError(c, kBiosArea, size - 1).find("bytes"), std::string::npos);
}

// ---- an independent decoder ----

struct Iasl {
  int status;
  std::string output;  // iasl's stdout and stderr
  std::string dsl;     // the disassembly
};

class IaslTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v iasl >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "iasl not installed (Debian package acpica-tools; scripts/setup.sh)";
    std::string tmpl = (std::filesystem::temp_directory_path() / "kf-acpi-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Iasl Disassemble(std::span<const uint8_t> table, const std::string& name) {
    std::filesystem::path dat = dir_ / (name + ".dat");
    std::ofstream(dat, std::ios::binary)
        .write(reinterpret_cast<const char*>(table.data()),
               static_cast<std::streamsize>(table.size()));
    std::string cmd = "cd '" + dir_.string() + "' && iasl -d " + name + ".dat 2>&1";
    Iasl r{};
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return {-1, "popen failed", ""};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::ifstream dsl(dir_ / (name + ".dsl"));
    std::stringstream ss;
    ss << dsl.rdbuf();
    r.dsl = ss.str();
    return r;
  }

  // No complaint anywhere: iasl flags bad checksums, lengths and unknown
  // opcodes in its output or as comments in the disassembly.
  static void ExpectClean(const Iasl& r) {
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_FALSE(r.dsl.empty()) << r.output;
    for (const char* bad :
         {"Error", "error", "Warning", "Invalid", "Incorrect", "Unknown", "****", "mismatch"}) {
      EXPECT_EQ(r.output.find(bad), std::string::npos) << bad << " in:\n" << r.output;
      EXPECT_EQ(r.dsl.find(bad), std::string::npos) << bad << " in:\n" << r.dsl;
    }
  }

  std::filesystem::path dir_;
};

// iasl's layout (indentation, line breaks) is not ours to pin: compare with
// every run of whitespace collapsed to one space.
std::string Squeeze(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool space = c == ' ' || c == '\n' || c == '\t';
    if (!space)
      out.push_back(c);
    else if (!out.empty() && out.back() != ' ')
      out.push_back(' ');
  }
  return out;
}

TEST_F(IaslTest, DisassemblesTheDsdt) {
  AcpiTables t = Build(TwoDevices());
  Iasl r = Disassemble(Walk(t).dsdt, "dsdt");
  ExpectClean(r);
  std::string dsl = Squeeze(r.dsl);
  auto has = [&](const std::string& want) {
    EXPECT_NE(dsl.find(want), std::string::npos) << want << " not in:\n" << r.dsl;
  };
  has("Scope (\\_SB) {");
  has("Device (COM1) { Name (_HID, EisaId (\"PNP0501\")");
  has("IO (Decode16, 0x03F8, // Range Minimum 0x03F8, // Range Maximum 0x01, // Alignment "
      "0x08, // Length )");
  has("Device (V000) { Name (_HID, \"LNRO0005\") // _HID: Hardware ID Name (_UID, Zero)");
  has("Device (V001) { Name (_HID, \"LNRO0005\") // _HID: Hardware ID Name (_UID, One)");
  has("Memory32Fixed (ReadWrite, 0xD0000000, // Address Base 0x00001000, // Address Length )");
  has("Memory32Fixed (ReadWrite, 0xD0001000, // Address Base 0x00000200, // Address Length )");
  const std::string irq = "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { ";
  has(irq + "0x00000004, }");
  has(irq + "0x00000005, }");
  has(irq + "0x00000006, }");
}

TEST_F(IaslTest, DisassemblesTheMadt) {
  AcpiConfig c = TwoDevices();
  c.num_cpus = 3;
  Iasl r = Disassemble(Walk(Build(c)).madt, "apic");
  ExpectClean(r);
  EXPECT_NE(r.dsl.find("Multiple APIC Description Table (MADT)"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("Local Apic Address : FEE00000"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("PC-AT Compatibility : 1"), std::string::npos) << r.dsl;
  size_t lapics = 0;
  for (size_t at = 0; (at = r.dsl.find("[Processor Local APIC]", at)) != std::string::npos; ++at)
    ++lapics;
  EXPECT_EQ(lapics, 3u) << r.dsl;
  EXPECT_NE(r.dsl.find("[I/O APIC]"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("Address : FEC00000"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("[Interrupt Source Override]"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("Interrupt : 00000002"), std::string::npos) << r.dsl;
}

TEST_F(IaslTest, DisassemblesTheFadt) {
  AcpiTables t = Build(TwoDevices());
  Walked w = Walk(t);
  Iasl r = Disassemble(w.fadt, "facp");
  ExpectClean(r);
  char dsdt[64];
  std::snprintf(dsdt, sizeof dsdt, "DSDT Address : %016llX",
                static_cast<unsigned long long>(Le(w.fadt, 140, 8)));
  EXPECT_NE(r.dsl.find(dsdt), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("Hardware Reduced (V5) : 1"), std::string::npos) << r.dsl;
  EXPECT_NE(r.dsl.find("VGA Not Present (V4) : 1"), std::string::npos) << r.dsl;
}

TEST_F(IaslTest, DisassemblesTheXsdt) {
  AcpiTables t = Build(TwoDevices());
  Walked w = Walk(t);
  Iasl r = Disassemble(w.xsdt, "xsdt");
  ExpectClean(r);
  for (size_t off : {36, 44}) {
    char want[64];
    std::snprintf(want, sizeof want, ": %016llX",
                  static_cast<unsigned long long>(Le(w.xsdt, off, 8)));
    EXPECT_NE(r.dsl.find(want), std::string::npos) << want << " not in:\n" << r.dsl;
  }
}

// The negative control: the words ExpectClean looks for are what iasl says
// about a table that is wrong.
TEST_F(IaslTest, NoticesACorruptedChecksum) {
  AcpiTables t = Build(TwoDevices());
  auto dsdt = Walk(t).dsdt;
  Bytes bad(dsdt.begin(), dsdt.end());
  bad[9] ^= 1;
  Iasl r = Disassemble(bad, "bad");
  EXPECT_NE(r.dsl.find("Incorrect checksum"), std::string::npos) << r.output << r.dsl;
}

}  // namespace
