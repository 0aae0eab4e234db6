// ACPI tables for a Linux guest on x86: RSDP -> XSDT -> {FADT -> DSDT, MADT}.
//
// Why ACPI at all: Debian's cloud kernel has neither
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES nor CONFIG_X86_MPPARSE, so virtio-mmio
// devices can only be announced in a DSDT and the LAPIC/IOAPIC only in a
// MADT (what Firecracker does on x86). The FADT is HW-reduced: no SCI, no
// PM timer, no fixed-feature hardware, so the VMM emulates none of it.
//
// The result is one position-dependent blob (every pointer inside is an
// absolute guest physical address) with the RSDP first: placed at 0xe0000
// it is where Linux scans for it (16-byte boundaries in 0xe0000-0xfffff);
// boot_params.acpi_rsdp_addr = rsdp_gpa finds it without scanning.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::acpi {

struct VirtioMmioDevice {
  uint64_t base;  // the window must lie below 4 GiB (Memory32Fixed)
  uint32_t size;
  uint32_t gsi;  // an IOAPIC pin: < 24, not 0 or 2 (the timer), unshared
};

struct AcpiConfig {
  uint32_t num_cpus = 1;  // LAPIC IDs and ACPI processor UIDs 0..num_cpus-1
  uint64_t lapic_addr = 0xfee00000;
  uint64_t ioapic_addr = 0xfec00000;
  // 0: what KVM's in-kernel IOAPIC reports in its ID register after reset
  // (kvm_ioapic_reset), so the MADT and the hardware agree and Linux has no
  // reason to renumber it. Sharing the number with CPU 0's LAPIC ID is fine
  // on xAPIC: unique IDs across LAPICs and IOAPICs were a rule of the old
  // serial APIC bus, and x86-64 Linux only checks IOAPICs against each
  // other. (QEMU and Firecracker use 0 as well.)
  uint32_t ioapic_id = 0;
  bool com1 = true;  // PNP0501 at port 0x3f8, IRQ 4, in the DSDT
  // Each a DSDT Device V000, V001...: _HID "LNRO0005", _UID n, _CRS
  // Memory32Fixed + Interrupt (edge, active high, exclusive: the VMM pulses
  // the line).
  std::vector<VirtioMmioDevice> virtio_mmio;
};

struct AcpiTables {
  uint64_t base_gpa;  // copy `bytes` to guest physical base_gpa
  uint64_t rsdp_gpa;  // == base_gpa: the RSDP comes first
  std::vector<uint8_t> bytes;
};

// Refuses (Error) a configuration Linux would misread: num_cpus 0 or > 254,
// a GSI >= 24, 0, 2 or used twice (COM1 holds 4), a virtio-mmio window
// that is empty, above 4 GiB, or overlaps another window, the LAPIC or the
// IOAPIC; a LAPIC/IOAPIC address above 4 GiB or an IOAPIC ID > 255; a
// base_gpa not 16-byte aligned; a blob larger than max_size.
Result<AcpiTables> BuildAcpiTables(const AcpiConfig& config, uint64_t base_gpa, uint64_t max_size);

}  // namespace kf::acpi
