// The DSDT body builder, split from tables.cc to keep each file to one
// table family. Internal to vmm-glue/acpi.
#pragma once

#include "vmm-glue/acpi/sdt.h"
#include "vmm-glue/acpi/tables.h"
#include "vmm-glue/result.h"

namespace kf::acpi {

inline constexpr uint16_t kCom1Port = 0x3f8;
inline constexpr uint32_t kCom1Gsi = 4;  // ISA IRQ 4, identity-mapped (no override)

// The complete DSDT (header included, checksummed). Expects a validated
// config (BuildAcpiTables checks it first).
Result<Bytes> BuildDsdt(const AcpiConfig& config);

}  // namespace kf::acpi
