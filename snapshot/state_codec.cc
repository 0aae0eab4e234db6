#include "snapshot/state_codec.h"

#include <cstring>
#include <optional>
#include <string>
#include <type_traits>

namespace kf {
namespace {

// Kernel ABI structs travel as their raw bytes (see snapshot.proto).
template <typename T>
void PutStruct(const T& value, std::string* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  out->assign(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
void PutOptional(const std::optional<T>& value, std::string* out) {
  if (value) PutStruct(*value, out);
}

template <typename T>
Status GetStruct(const std::string& in, const std::string& what, T* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (in.size() != sizeof(T)) {
    return Error(what + ": " + std::to_string(in.size()) + " bytes, expected " +
                 std::to_string(sizeof(T)));
  }
  std::memcpy(out, in.data(), sizeof(T));
  return Status::Ok();
}

// Empty bytes mean "absent".
template <typename T>
Status GetOptional(const std::string& in, const std::string& what, std::optional<T>* out) {
  out->reset();
  if (in.empty()) return Status::Ok();
  T value{};
  RETURN_IF_ERROR(GetStruct(in, what, &value));
  *out = value;
  return Status::Ok();
}

Status GetCpuid(const std::string& in, const std::string& what,
                std::vector<kvm_cpuid_entry2>* out) {
  constexpr size_t kEntry = sizeof(kvm_cpuid_entry2);
  if (in.size() % kEntry != 0) {
    return Error(what + ": " + std::to_string(in.size()) + " bytes, not a multiple of " +
                 std::to_string(kEntry));
  }
  if (in.size() / kEntry > kMaxCpuidEntries) {
    return Error(what + ": " + std::to_string(in.size() / kEntry) + " entries, at most " +
                 std::to_string(kMaxCpuidEntries));
  }
  out->resize(in.size() / kEntry);
  if (!in.empty()) std::memcpy(out->data(), in.data(), in.size());
  return Status::Ok();
}

Status GetXsave(const std::string& in, const std::string& what, std::vector<uint8_t>* out) {
  if (!in.empty() && (in.size() < kMinXsaveBytes || in.size() > kMaxXsaveBytes)) {
    return Error(what + ": " + std::to_string(in.size()) + " bytes, expected " +
                 std::to_string(kMinXsaveBytes) + " to " + std::to_string(kMaxXsaveBytes));
  }
  out->assign(in.begin(), in.end());
  return Status::Ok();
}

// The chip id inside the struct must match the field it came from, or a
// restore would load the IOAPIC state into a PIC.
Status GetIrqchip(const std::string& in, const std::string& what, uint32_t chip_id,
                  std::optional<kvm_irqchip>* out) {
  RETURN_IF_ERROR(GetOptional(in, what, out));
  if (*out && (*out)->chip_id != chip_id) {
    return Error(what + ": chip_id " + std::to_string((*out)->chip_id) + ", expected " +
                 std::to_string(chip_id));
  }
  return Status::Ok();
}

}  // namespace

void EncodeVcpuState(const VcpuState& in, snapshot_pb::VcpuState* out) {
  out->Clear();
  out->mutable_cpuid()->assign(reinterpret_cast<const char*>(in.cpuid.data()),
                               in.cpuid.size() * sizeof(kvm_cpuid_entry2));
  PutStruct(in.regs, out->mutable_regs());
  PutStruct(in.sregs, out->mutable_sregs());
  out->mutable_xsave()->assign(in.xsave.begin(), in.xsave.end());
  PutOptional(in.fpu, out->mutable_fpu());
  PutOptional(in.xcrs, out->mutable_xcrs());
  for (const MsrValue& msr : in.msrs) {
    snapshot_pb::Msr* m = out->add_msrs();
    m->set_index(msr.index);
    m->set_value(msr.value);
  }
  PutOptional(in.lapic, out->mutable_lapic());
  PutOptional(in.events, out->mutable_events());
  PutOptional(in.debugregs, out->mutable_debugregs());
  PutOptional(in.mp_state, out->mutable_mp_state());
  if (in.tsc_khz) out->set_tsc_khz(*in.tsc_khz);
  for (const std::string& s : in.unsupported) out->add_unsupported(s);
}

Result<VcpuState> DecodeVcpuState(const snapshot_pb::VcpuState& in, size_t vcpu_id) {
  const std::string v = "vcpu " + std::to_string(vcpu_id) + " ";
  VcpuState out;
  RETURN_IF_ERROR(GetCpuid(in.cpuid(), v + "cpuid", &out.cpuid));
  RETURN_IF_ERROR(GetStruct(in.regs(), v + "regs", &out.regs));
  RETURN_IF_ERROR(GetStruct(in.sregs(), v + "sregs", &out.sregs));
  RETURN_IF_ERROR(GetXsave(in.xsave(), v + "xsave", &out.xsave));
  RETURN_IF_ERROR(GetOptional(in.fpu(), v + "fpu", &out.fpu));
  RETURN_IF_ERROR(GetOptional(in.xcrs(), v + "xcrs", &out.xcrs));
  if (static_cast<size_t>(in.msrs_size()) > kMaxMsrs) {
    return Error(v + "msrs: " + std::to_string(in.msrs_size()) + " entries, at most " +
                 std::to_string(kMaxMsrs));
  }
  out.msrs.reserve(in.msrs_size());
  for (const snapshot_pb::Msr& m : in.msrs()) out.msrs.push_back({m.index(), m.value()});
  RETURN_IF_ERROR(GetOptional(in.lapic(), v + "lapic", &out.lapic));
  RETURN_IF_ERROR(GetOptional(in.events(), v + "events", &out.events));
  RETURN_IF_ERROR(GetOptional(in.debugregs(), v + "debugregs", &out.debugregs));
  RETURN_IF_ERROR(GetOptional(in.mp_state(), v + "mp_state", &out.mp_state));
  if (in.has_tsc_khz()) out.tsc_khz = in.tsc_khz();
  out.unsupported.assign(in.unsupported().begin(), in.unsupported().end());
  return out;
}

void EncodeVmState(const VmState& in, snapshot_pb::VmState* out) {
  out->Clear();
  PutOptional(in.pic_master, out->mutable_pic_master());
  PutOptional(in.pic_slave, out->mutable_pic_slave());
  PutOptional(in.ioapic, out->mutable_ioapic());
  PutOptional(in.pit, out->mutable_pit());
  PutOptional(in.clock, out->mutable_clock());
  for (const std::string& s : in.unsupported) out->add_unsupported(s);
}

Result<VmState> DecodeVmState(const snapshot_pb::VmState& in) {
  VmState out;
  RETURN_IF_ERROR(
      GetIrqchip(in.pic_master(), "vm pic_master", KVM_IRQCHIP_PIC_MASTER, &out.pic_master));
  RETURN_IF_ERROR(
      GetIrqchip(in.pic_slave(), "vm pic_slave", KVM_IRQCHIP_PIC_SLAVE, &out.pic_slave));
  RETURN_IF_ERROR(GetIrqchip(in.ioapic(), "vm ioapic", KVM_IRQCHIP_IOAPIC, &out.ioapic));
  RETURN_IF_ERROR(GetOptional(in.pit(), "vm pit", &out.pit));
  RETURN_IF_ERROR(GetOptional(in.clock(), "vm clock", &out.clock));
  out.unsupported.assign(in.unsupported().begin(), in.unsupported().end());
  return out;
}

void EncodeTemplateState(const TemplateState& in, snapshot_pb::TemplateState* out) {
  out->Clear();
  out->set_format_version(in.format_version);
  out->set_template_id(in.template_id);
  out->set_guest_kind(in.guest_kind);
  out->set_created_unix_ns(in.created_unix_ns);

  snapshot_pb::MemoryLayout* mem = out->mutable_memory();
  mem->set_total_size(in.mem_size);
  for (const MemoryRegion& r : in.regions) {
    snapshot_pb::MemoryRegion* pr = mem->add_regions();
    pr->set_gpa(r.gpa);
    pr->set_size(r.size);
    pr->set_file_offset(r.file_offset);
  }
  mem->set_file_size(in.memory_file_size);
  mem->set_checksum_xxh3(in.memory_checksum);

  out->mutable_vm_config()->set_irqchip(in.vm_config.irqchip);
  out->mutable_vm_config()->set_pit(in.vm_config.pit);
  out->mutable_bare()->set_init_bytes(in.bare.init_bytes);
  out->mutable_bare()->set_seed(in.bare.seed);
  out->mutable_bare()->set_image_checksum(in.bare.image_checksum);

  if (in.guest_kind == kGuestKindLinux) {
    snapshot_pb::LinuxGuestConfig* lg = out->mutable_linux_guest();
    lg->set_cmdline(in.linux_guest.cmdline);
    lg->set_kernel_checksum(in.linux_guest.kernel_checksum);
    lg->set_initrd_checksum(in.linux_guest.initrd_checksum);
    if (in.linux_guest.serial.has_value()) *lg->mutable_serial() = *in.linux_guest.serial;
    lg->set_rootfs_size(in.linux_guest.rootfs_size);
    lg->set_rootfs_checksum(in.linux_guest.rootfs_checksum);
    if (in.linux_guest.pmem.has_value()) *lg->mutable_pmem() = *in.linux_guest.pmem;
  }

  EncodeVmState(in.vm, out->mutable_vm());
  for (const VcpuState& vcpu : in.vcpus) EncodeVcpuState(vcpu, out->add_vcpus());

  out->mutable_host()->set_kernel_release(in.host.kernel_release);
  out->mutable_host()->set_cpu_model(in.host.cpu_model);
  out->mutable_host()->set_is_pvm(in.host.is_pvm);
  if (in.vsock.has_value()) *out->mutable_vsock() = *in.vsock;
}

Result<TemplateState> DecodeTemplateState(const snapshot_pb::TemplateState& in) {
  TemplateState out;
  out.format_version = in.format_version();
  out.template_id = in.template_id();
  out.guest_kind = in.guest_kind();
  out.created_unix_ns = in.created_unix_ns();

  const snapshot_pb::MemoryLayout& mem = in.memory();
  out.mem_size = mem.total_size();
  // Bounded before copying so a damaged count cannot allocate much.
  if (static_cast<size_t>(mem.regions_size()) > kMaxMemoryRegions) {
    return Error("memory layout has " + std::to_string(mem.regions_size()) + " regions, at most " +
                 std::to_string(kMaxMemoryRegions));
  }
  for (const snapshot_pb::MemoryRegion& r : mem.regions()) {
    out.regions.push_back({r.gpa(), r.size(), r.file_offset()});
  }
  out.memory_file_size = mem.file_size();
  out.memory_checksum = mem.checksum_xxh3();

  out.vm_config.irqchip = in.vm_config().irqchip();
  out.vm_config.pit = in.vm_config().pit();
  out.bare = {in.bare().init_bytes(), in.bare().seed(), in.bare().image_checksum()};

  if (in.has_linux_guest()) {
    const snapshot_pb::LinuxGuestConfig& lg = in.linux_guest();
    out.linux_guest.cmdline = lg.cmdline();
    out.linux_guest.kernel_checksum = lg.kernel_checksum();
    out.linux_guest.initrd_checksum = lg.initrd_checksum();
    // Checked by the UART model when a clone restores it.
    if (lg.has_serial()) out.linux_guest.serial = lg.serial();
    out.linux_guest.rootfs_size = lg.rootfs_size();
    out.linux_guest.rootfs_checksum = lg.rootfs_checksum();
    // Checked by VirtioPmem::Restore against the mapped image.
    if (lg.has_pmem()) out.linux_guest.pmem = lg.pmem();
  }

  ASSIGN_OR_RETURN(out.vm, DecodeVmState(in.vm()));
  if (static_cast<size_t>(in.vcpus_size()) > kMaxVcpus) {
    return Error("template has " + std::to_string(in.vcpus_size()) + " vCPUs, at most " +
                 std::to_string(kMaxVcpus));
  }
  out.vcpus.reserve(in.vcpus_size());
  for (int i = 0; i < in.vcpus_size(); ++i) {
    ASSIGN_OR_RETURN(VcpuState vcpu, DecodeVcpuState(in.vcpus(i), i));
    out.vcpus.push_back(std::move(vcpu));
  }

  out.host.kernel_release = in.host().kernel_release();
  out.host.cpu_model = in.host().cpu_model();
  out.host.is_pvm = in.host().is_pvm();
  // Checked against guest memory by the device when a clone restores it.
  if (in.has_vsock()) out.vsock = in.vsock();

  RETURN_IF_ERROR(ValidateTemplateState(out));
  return out;
}

snapshot_pb::SerialState EncodeSerialState(const SerialState& s) {
  snapshot_pb::SerialState p;
  p.set_dll(s.dll);
  p.set_dlm(s.dlm);
  p.set_ier(s.ier);
  p.set_fcr(s.fcr);
  p.set_lcr(s.lcr);
  p.set_mcr(s.mcr);
  p.set_scr(s.scr);
  p.set_lsr_errors(s.lsr_errors);
  p.set_msr_deltas(s.msr_deltas);
  p.set_thre_pending(s.thre_pending);
  p.set_rx_fifo(std::string(s.rx_fifo.begin(), s.rx_fifo.end()));
  return p;
}

Result<SerialState> DecodeSerialState(const snapshot_pb::SerialState& p) {
  SerialState s;
  const uint32_t regs[] = {p.dll(), p.dlm(), p.ier(), p.fcr(), p.lcr(),
                           p.mcr(), p.scr(), p.lsr_errors(), p.msr_deltas()};
  for (uint32_t r : regs)
    if (r > 0xff) return Error("serial state: a register holds " + std::to_string(r));
  s.dll = static_cast<uint8_t>(p.dll());
  s.dlm = static_cast<uint8_t>(p.dlm());
  s.ier = static_cast<uint8_t>(p.ier());
  s.fcr = static_cast<uint8_t>(p.fcr());
  s.lcr = static_cast<uint8_t>(p.lcr());
  s.mcr = static_cast<uint8_t>(p.mcr());
  s.scr = static_cast<uint8_t>(p.scr());
  s.lsr_errors = static_cast<uint8_t>(p.lsr_errors());
  s.msr_deltas = static_cast<uint8_t>(p.msr_deltas());
  s.thre_pending = p.thre_pending();
  s.rx_fifo.assign(p.rx_fifo().begin(), p.rx_fifo().end());
  return s;
}

}  // namespace kf
