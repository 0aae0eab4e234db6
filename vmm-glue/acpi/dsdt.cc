// DefinitionBlock ("", "DSDT", 2, "KATAFA", "KFVMDSDT", 1) {
//   Scope (\_SB) {
//     Device (COM1) { _HID EISAID("PNP0501"), _UID 0,
//                     _CRS { IO (0x3f8, 8), Interrupt (edge, high) {4} } }
//     Device (V000) { _HID "LNRO0005", _UID 0,
//                     _CRS { Memory32Fixed (base, size), Interrupt {gsi} } }
//     ...
//   }
// }
// No _STA: a device without one is present, enabled and functioning
// (ACPI 6.3, 6.3.7), which is what a method returning 0xF would say.
#include "vmm-glue/acpi/dsdt.h"

#include <cstdio>

#include "vmm-glue/acpi/aml.h"

namespace kf::acpi {
namespace {

// Revision 2: 64-bit AML integers (revision 1 would truncate to 32 bits).
constexpr uint8_t kDsdtRevision = 2;

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

Result<Bytes> Com1Device() {
  aml::InterruptFlags isa{.consumer = true, .edge = true, .active_low = false, .shared = false};
  Bytes body;
  ASSIGN_OR_RETURN(Bytes hid, aml::EisaId("PNP0501"));
  ASSIGN_OR_RETURN(Bytes name_hid, aml::Name("_HID", hid));
  ASSIGN_OR_RETURN(Bytes name_uid, aml::Name("_UID", aml::Integer(0)));
  ASSIGN_OR_RETURN(Bytes crs, aml::ResourceTemplate({
                                  aml::IoPort(kCom1Port, kCom1Port, 1, 8),
                                  aml::ExtendedInterrupt(isa, kCom1Gsi),
                              }));
  ASSIGN_OR_RETURN(Bytes name_crs, aml::Name("_CRS", crs));
  Append(body, name_hid);
  Append(body, name_uid);
  Append(body, name_crs);
  return aml::Device("COM1", body);
}

Result<Bytes> VirtioMmio(size_t index, const VirtioMmioDevice& dev) {
  // Edge, active high: the VMM pulses the line (KVM_IRQ_LINE 1 then 0, or
  // an irqfd) instead of holding it until the guest acknowledges.
  // Exclusive: validation gives every device a GSI of its own.
  aml::InterruptFlags pulse{.consumer = true, .edge = true, .active_low = false, .shared = false};
  Bytes body;
  ASSIGN_OR_RETURN(Bytes hid, aml::String("LNRO0005"));
  ASSIGN_OR_RETURN(Bytes name_hid, aml::Name("_HID", hid));
  ASSIGN_OR_RETURN(Bytes name_uid, aml::Name("_UID", aml::Integer(index)));
  ASSIGN_OR_RETURN(Bytes crs,
                   aml::ResourceTemplate({
                       aml::Memory32Fixed(true, static_cast<uint32_t>(dev.base), dev.size),
                       aml::ExtendedInterrupt(pulse, dev.gsi),
                   }));
  ASSIGN_OR_RETURN(Bytes name_crs, aml::Name("_CRS", crs));
  Append(body, name_hid);
  Append(body, name_uid);
  Append(body, name_crs);
  char name[24];
  std::snprintf(name, sizeof name, "V%03zu", index);  // validation caps the count
  return aml::Device(name, body);
}

}  // namespace

Result<Bytes> BuildDsdt(const AcpiConfig& config) {
  Bytes devices;
  if (config.com1) {
    ASSIGN_OR_RETURN(Bytes com1, Com1Device());
    Append(devices, com1);
  }
  for (size_t i = 0; i < config.virtio_mmio.size(); ++i) {
    ASSIGN_OR_RETURN(Bytes dev, VirtioMmio(i, config.virtio_mmio[i]));
    Append(devices, dev);
  }
  ASSIGN_OR_RETURN(Bytes sb, aml::Scope("\\_SB_", devices));

  Bytes table;
  PutSdtHeader(table, "DSDT", kDsdtRevision, "KFVMDSDT");
  Append(table, sb);
  FinishSdt(table);
  return table;
}

}  // namespace kf::acpi
