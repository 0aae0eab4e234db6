// Layout of the blob (offsets from base_gpa, each table 8-byte aligned):
//   RSDP (36 bytes, first so that it is 16-byte aligned when base_gpa is)
//   XSDT -> FADT, MADT
//   FADT -> DSDT (X_DSDT only)
//   MADT
//   DSDT
// The DSDT and MADT do not depend on where they land, so they are built
// first; their sizes fix the offsets the pointer tables need.
#include "vmm-glue/acpi/tables.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "vmm-glue/acpi/dsdt.h"
#include "vmm-glue/acpi/sdt.h"

namespace kf::acpi {
namespace {

constexpr uint64_t k4GiB = uint64_t{1} << 32;
constexpr uint32_t kIoapicPins = 24;      // KVM's in-kernel IOAPIC
constexpr uint64_t kApicWindow = 0x1000;  // LAPIC and IOAPIC MMIO pages
constexpr uint32_t kMaxCpus = 254;        // 8-bit xAPIC IDs; 0xFF is broadcast
constexpr uint32_t kTimerIsaIrq = 0;      // the PIT
constexpr uint32_t kTimerGsi = 2;         // ...wired to IOAPIC pin 2 on PCs

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

struct Window {
  uint64_t base, size;
  std::string what;
};

Status Validate(const AcpiConfig& c, uint64_t base_gpa) {
  if (c.num_cpus == 0 || c.num_cpus > kMaxCpus)
    return Error("ACPI: num_cpus " + std::to_string(c.num_cpus) + " is not in 1.." +
                 std::to_string(kMaxCpus));
  if (c.lapic_addr > k4GiB - kApicWindow)
    return Error("ACPI: LAPIC address " + Hex(c.lapic_addr) + " is not below 4 GiB");
  if (c.ioapic_addr > k4GiB - kApicWindow)
    return Error("ACPI: IOAPIC address " + Hex(c.ioapic_addr) + " is not below 4 GiB");
  if (c.ioapic_id > 0xFF) return Error("ACPI: IOAPIC ID " + std::to_string(c.ioapic_id) + " > 255");
  if (base_gpa % 16 != 0)
    return Error("ACPI: base " + Hex(base_gpa) + " is not 16-byte aligned (RSDP scan)");

  // One owner per GSI: every Interrupt descriptor says Exclusive.
  std::vector<std::string> gsi_owner(kIoapicPins);
  gsi_owner[kTimerIsaIrq] = "the PIT (ISA IRQ 0)";
  gsi_owner[kTimerGsi] = "the PIT (IRQ 0 override)";
  if (c.com1) gsi_owner[kCom1Gsi] = "COM1";

  std::vector<Window> windows = {{c.lapic_addr, kApicWindow, "the LAPIC"},
                                 {c.ioapic_addr, kApicWindow, "the IOAPIC"}};
  for (size_t i = 0; i < c.virtio_mmio.size(); ++i) {
    const VirtioMmioDevice& d = c.virtio_mmio[i];
    std::string what = "virtio-mmio device " + std::to_string(i);
    if (d.size == 0) return Error("ACPI: " + what + " has an empty window");
    if (d.base >= k4GiB || d.base + d.size > k4GiB)
      return Error("ACPI: " + what + " window " + Hex(d.base) + "+" + Hex(d.size) +
                   " is not 32-bit addressable (Memory32Fixed)");
    if (d.gsi >= kIoapicPins)
      return Error("ACPI: " + what + " GSI " + std::to_string(d.gsi) + " is not an IOAPIC pin (< " +
                   std::to_string(kIoapicPins) + ")");
    if (!gsi_owner[d.gsi].empty())
      return Error("ACPI: " + what + " GSI " + std::to_string(d.gsi) + " is taken by " +
                   gsi_owner[d.gsi]);
    gsi_owner[d.gsi] = what;
    windows.push_back({d.base, d.size, what});
  }
  std::sort(windows.begin(), windows.end(),
            [](const Window& a, const Window& b) { return a.base < b.base; });
  for (size_t i = 1; i < windows.size(); ++i) {
    const Window& prev = windows[i - 1];
    if (prev.base + prev.size > windows[i].base)
      return Error("ACPI: " + windows[i].what + " at " + Hex(windows[i].base) + " overlaps " +
                   prev.what + " at " + Hex(prev.base) + "+" + Hex(prev.size));
  }
  return Status::Ok();
}

// MADT (ACPI 6.3, 5.2.12), revision 5.
Bytes BuildMadt(const AcpiConfig& c) {
  constexpr uint32_t kPcatCompat = 1;  // KVM's irqchip includes the dual 8259
  constexpr uint32_t kLapicEnabled = 1;
  constexpr uint16_t kActiveHigh = 0x1, kEdge = 0x1 << 2;  // MPS INTI flags
  Bytes t;
  PutSdtHeader(t, "APIC", 5, "KFVMAPIC");
  Put32(t, static_cast<uint32_t>(c.lapic_addr));
  Put32(t, kPcatCompat);
  // Processor Local APIC: UID i, APIC ID i (KVM's default LAPIC ID is the
  // vCPU id). The boot CPU comes first, as the spec recommends.
  for (uint32_t i = 0; i < c.num_cpus; ++i) {
    Put8(t, 0), Put8(t, 8), Put8(t, static_cast<uint8_t>(i)), Put8(t, static_cast<uint8_t>(i));
    Put32(t, kLapicEnabled);
  }
  // I/O APIC: all 24 pins from GSI 0.
  Put8(t, 1), Put8(t, 12), Put8(t, static_cast<uint8_t>(c.ioapic_id)), Put8(t, 0);
  Put32(t, static_cast<uint32_t>(c.ioapic_addr));
  Put32(t, 0);
  // Interrupt Source Override: ISA IRQ 0 (PIT) -> GSI 2, edge, active high,
  // as on every PC (and as KVM's PIT is wired).
  Put8(t, 2), Put8(t, 10), Put8(t, 0 /* ISA */), Put8(t, kTimerIsaIrq);
  Put32(t, kTimerGsi);
  Put16(t, kActiveHigh | kEdge);
  FinishSdt(t);
  return t;
}

// FADT (ACPI 6.3, 5.2.9), revision 6 minor 3: 276 bytes. HW-reduced, so
// every fixed-hardware block (PM1, PM timer, GPE, SCI, SMI) stays zero.
Bytes BuildFadt(const AcpiConfig& c, uint64_t dsdt_gpa) {
  // No fixed-feature power or sleep button: without these two flags Linux
  // would add LNXPWRBN/LNXSLPBN devices for buttons that do not exist.
  constexpr uint32_t kPwrButton = 1u << 4;
  constexpr uint32_t kSlpButton = 1u << 5;
  constexpr uint32_t kHwReducedAcpi = 1u << 20;
  // IA-PC boot architecture flags (5.2.9.3), read by Linux's acpi_parse_fadt:
  constexpr uint16_t kLegacyDevices = 1u << 0;  // a user-visible ISA device (COM1)
  // Bit 1 (8042) clear: our i8042 is only the reset line (devices/i8042.h),
  // so with no PNP0303 either, Linux's i8042 driver gives up unprobed.
  constexpr uint16_t kVgaNotPresent = 1u << 2;      // Linux: no VGA probing
  constexpr uint16_t kMsiNotSupported = 1u << 3;    // there is no PCI at all
  constexpr uint16_t kPcieAspmControls = 1u << 4;   // nor PCIe ASPM for the OS to touch
  constexpr uint16_t kCmosRtcNotPresent = 1u << 5;  // no ports 0x70/0x71: Linux skips rtc_cmos
  uint16_t boot_arch = kVgaNotPresent | kMsiNotSupported | kPcieAspmControls | kCmosRtcNotPresent;
  if (c.com1) boot_arch |= kLegacyDevices;

  Bytes t;
  PutSdtHeader(t, "FACP", 6, "KFVMFACP");
  t.resize(276, 0);
  auto at16 = [&](size_t off, uint16_t v) { t[off] = v & 0xFF, t[off + 1] = v >> 8; };
  at16(109, boot_arch);                                       // IAPC_BOOT_ARCH
  Patch32(t, 112, kHwReducedAcpi | kPwrButton | kSlpButton);  // Flags
  t[131] = 3;                                                 // FADT minor version
  // X_DSDT only: the 32-bit DSDT field must be zero when X_DSDT is used
  // (or ACPICA warns about a mismatch), and ours may sit anywhere.
  for (int i = 0; i < 8; ++i) t[140 + i] = static_cast<uint8_t>(dsdt_gpa >> (8 * i));
  const char vendor[] = "KATAFACT";  // Hypervisor Vendor Identity
  std::copy(vendor, vendor + 8, t.begin() + 268);
  FinishSdt(t);
  return t;
}

Bytes BuildXsdt(const std::vector<uint64_t>& entries) {
  Bytes t;
  PutSdtHeader(t, "XSDT", 1, "KFVMXSDT");
  for (uint64_t e : entries) Put64(t, e);
  FinishSdt(t);
  return t;
}

// RSDP (5.2.5.3), revision 2: 36 bytes, no RSDT (XSDT only).
Bytes BuildRsdp(uint64_t xsdt_gpa) {
  Bytes t;
  PutId(t, "RSD PTR ", 8);
  Put8(t, 0);  // checksum of bytes 0-19
  PutId(t, kOemId, 6);
  Put8(t, 2);
  Put32(t, 0);  // RsdtAddress: none; revision 2 readers use the XSDT
  Put32(t, 36);
  Put64(t, xsdt_gpa);
  Put8(t, 0);  // extended checksum of all 36 bytes
  Put8(t, 0), Put8(t, 0), Put8(t, 0);
  t[8] = ChecksumOf({t.data(), 20});
  t[32] = ChecksumOf(t);
  return t;
}

}  // namespace

Result<AcpiTables> BuildAcpiTables(const AcpiConfig& config, uint64_t base_gpa, uint64_t max_size) {
  RETURN_IF_ERROR(Validate(config, base_gpa));
  ASSIGN_OR_RETURN(Bytes dsdt, BuildDsdt(config));
  Bytes madt = BuildMadt(config);

  constexpr size_t kRsdpSize = 36, kFadtSize = 276, kXsdtSize = kSdtHeaderSize + 2 * 8;
  const size_t xsdt_off = AlignUp(kRsdpSize, 8);
  const size_t fadt_off = AlignUp(xsdt_off + kXsdtSize, 8);
  const size_t madt_off = AlignUp(fadt_off + kFadtSize, 8);
  const size_t dsdt_off = AlignUp(madt_off + madt.size(), 8);
  const size_t total = dsdt_off + dsdt.size();
  if (total > max_size)
    return Error("ACPI: tables need " + std::to_string(total) + " bytes, only " +
                 std::to_string(max_size) + " allowed");
  if (base_gpa > UINT64_MAX - total) return Error("ACPI: base " + Hex(base_gpa) + " wraps");

  Bytes fadt = BuildFadt(config, base_gpa + dsdt_off);
  Bytes xsdt = BuildXsdt({base_gpa + fadt_off, base_gpa + madt_off});
  Bytes rsdp = BuildRsdp(base_gpa + xsdt_off);

  AcpiTables out{.base_gpa = base_gpa, .rsdp_gpa = base_gpa, .bytes = Bytes(total, 0)};
  auto place = [&](size_t off, const Bytes& t) {
    std::copy(t.begin(), t.end(), out.bytes.begin() + off);
  };
  place(0, rsdp);
  place(xsdt_off, xsdt);
  place(fadt_off, fadt);
  place(madt_off, madt);
  place(dsdt_off, dsdt);
  return out;
}

}  // namespace kf::acpi
