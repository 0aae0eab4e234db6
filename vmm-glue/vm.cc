#include "vmm-glue/vm.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

namespace kf {

namespace {
// Addresses KVM needs on Intel hosts with an in-kernel irqchip (unused on
// AMD and PVM): three pages for the TSS and one for the identity map, placed
// just below 4 GiB where guest RAM never reaches in our layouts.
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIdentityMapAddress = 0xfffbc000;
}  // namespace

Result<Vm> Vm::Create(const Kvm& kvm, const VmConfig& config) {
  Vm vm;
  vm.host_ = kvm.shared_info();
  vm.config_ = config;
  int fd;
  do {
    fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return IoctlError("KVM_CREATE_VM");
  vm.fd_.Reset(fd);
  if (kvm.CheckExtension(KVM_CAP_SET_TSS_ADDR) &&
      ::ioctl(fd, KVM_SET_TSS_ADDR, kTssAddress) < 0)
    return IoctlError("KVM_SET_TSS_ADDR");
  if (kvm.CheckExtension(KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
    uint64_t addr = kIdentityMapAddress;
    if (IoctlRetry(fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0)
      return IoctlError("KVM_SET_IDENTITY_MAP_ADDR");
  }
  if (config.irqchip) {
    if (!vm.host_->has_irqchip) return Error("in-kernel irqchip: host lacks KVM_CAP_IRQCHIP");
    if (IoctlRetry(fd, KVM_CREATE_IRQCHIP, nullptr) < 0)
      return IoctlError("KVM_CREATE_IRQCHIP");
  }
  if (config.pit) {
    if (!vm.host_->has_pit2) return Error("in-kernel PIT: host lacks KVM_CAP_PIT2");
    kvm_pit_config pit{};
    if (IoctlRetry(fd, KVM_CREATE_PIT2, &pit) < 0) return IoctlError("KVM_CREATE_PIT2");
  }
  return vm;
}

Status Vm::SetMemorySlot(uint32_t slot, uint64_t gpa, uint64_t size, void* hva,
                         bool read_only) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = read_only ? KVM_MEM_READONLY : 0;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(hva);
  if (IoctlRetry(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
    return IoctlError("KVM_SET_USER_MEMORY_REGION");
  return Status::Ok();
}

Result<Vcpu> Vm::CreateVcpu(int id) {
  int fd;
  do {
    fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, id);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return IoctlError("KVM_CREATE_VCPU");
  UniqueFd owned(fd);
  size_t size = static_cast<size_t>(host_->vcpu_mmap_size);
  void* run = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) return Error::Sys("mmap of kvm_run");
  return Vcpu(std::move(owned), static_cast<kvm_run*>(run), size, host_, id);
}

Status Vm::SetIrqLine(uint32_t gsi, bool level) const {
  if (!config_.irqchip) return Error("KVM_IRQ_LINE: the VM has no in-kernel irqchip");
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (IoctlRetry(fd_.get(), KVM_IRQ_LINE, &irq) < 0)
    return IoctlError("KVM_IRQ_LINE");
  return Status::Ok();
}

Status Vm::MaskLegacyPic() const {
  if (!config_.irqchip) return Error("masking the 8259: the VM has no in-kernel irqchip");
  for (uint32_t id : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE}) {
    kvm_irqchip chip{};
    chip.chip_id = id;
    if (IoctlRetry(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) return IoctlError("KVM_GET_IRQCHIP");
    chip.chip.pic.imr = 0xff;
    if (IoctlRetry(fd_.get(), KVM_SET_IRQCHIP, &chip) < 0) return IoctlError("KVM_SET_IRQCHIP");
  }
  return Status::Ok();
}

namespace {

// Reads one irqchip (KVM_IRQCHIP_PIC_MASTER / _SLAVE / _IOAPIC).
std::optional<kvm_irqchip> GetChip(int fd, uint32_t id, const char* name,
                                   std::vector<std::string>* unsupported) {
  kvm_irqchip chip{};
  chip.chip_id = id;
  if (IoctlRetry(fd, KVM_GET_IRQCHIP, &chip) < 0) {
    unsupported->push_back(std::string("irqchip ") + name + ": " +
                           IoctlError("KVM_GET_IRQCHIP").message());
    return std::nullopt;
  }
  return chip;
}

}  // namespace

Result<VmState> Vm::CaptureState() const {
  VmState s;
  const int fd = fd_.get();
  if (config_.irqchip) {
    s.pic_master = GetChip(fd, KVM_IRQCHIP_PIC_MASTER, "pic-master", &s.unsupported);
    s.pic_slave = GetChip(fd, KVM_IRQCHIP_PIC_SLAVE, "pic-slave", &s.unsupported);
    s.ioapic = GetChip(fd, KVM_IRQCHIP_IOAPIC, "ioapic", &s.unsupported);
  }
  if (config_.pit) {
    kvm_pit_state2 pit{};
    if (IoctlRetry(fd, KVM_GET_PIT2, &pit) < 0)
      s.unsupported.push_back("pit: " + IoctlError("KVM_GET_PIT2").message());
    else
      s.pit = pit;
  }
  if (host_->has_adjust_clock) {
    kvm_clock_data clock{};
    if (IoctlRetry(fd, KVM_GET_CLOCK, &clock) < 0)
      s.unsupported.push_back("kvmclock: " + IoctlError("KVM_GET_CLOCK").message());
    else
      s.clock = clock;
  } else {
    s.unsupported.push_back("kvmclock: host lacks KVM_CAP_ADJUST_CLOCK");
  }
  return s;
}

Status Vm::RestoreState(const VmState& s) {
  const int fd = fd_.get();
  if ((s.pic_master || s.pic_slave || s.ioapic) && !config_.irqchip)
    return Error("state has an irqchip but this VM was created without one");
  if (s.pit && !config_.pit)
    return Error("state has a PIT but this VM was created without one");
  for (const auto* chip : {&s.pic_master, &s.pic_slave, &s.ioapic}) {
    if (!*chip) continue;
    kvm_irqchip copy = **chip;
    if (IoctlRetry(fd, KVM_SET_IRQCHIP, &copy) < 0) return IoctlError("KVM_SET_IRQCHIP");
  }
  if (s.pit) {
    kvm_pit_state2 copy = *s.pit;
    if (IoctlRetry(fd, KVM_SET_PIT2, &copy) < 0) return IoctlError("KVM_SET_PIT2");
  }
  if (s.clock) {
    kvm_clock_data copy{};
    copy.clock = s.clock->clock;  // flags must be 0 (or KVM_CLOCK_REALTIME with realtime)
    if (IoctlRetry(fd, KVM_SET_CLOCK, &copy) < 0) return IoctlError("KVM_SET_CLOCK");
  }
  return Status::Ok();
}

}  // namespace kf
