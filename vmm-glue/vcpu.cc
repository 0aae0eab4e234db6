#include "vmm-glue/vcpu.h"

#include <cstdio>

#include "vmm-glue/kvm_abi.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstring>

namespace kf {

Vcpu::Vcpu(UniqueFd fd, kvm_run* run, size_t run_size,
           std::shared_ptr<const KvmHostInfo> host, int id)
    : fd_(std::move(fd)), run_(run), run_size_(run_size), host_(std::move(host)), id_(id) {}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(other.run_size_),
      host_(std::move(other.host_)),
      id_(other.id_) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
  if (this != &other) {
    if (run_ != nullptr) ::munmap(run_, run_size_);
    fd_ = std::move(other.fd_);
    run_ = std::exchange(other.run_, nullptr);
    run_size_ = other.run_size_;
    host_ = std::move(other.host_);
    id_ = other.id_;
  }
  return *this;
}

Result<bool> Vcpu::Run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) return false;
    return IoctlError("KVM_RUN");
  }
  return true;
}

Status Vcpu::CompletePendingExit() {
  run_->immediate_exit = 1;
  int r = ::ioctl(fd_.get(), KVM_RUN, 0);
  int err = errno;
  run_->immediate_exit = 0;
  if (r == 0) return Error("KVM_RUN with immediate_exit ran the guest (exit reason " +
                           std::to_string(run_->exit_reason) + ")");
  if (err != EINTR) return IoctlError("KVM_RUN (immediate_exit)", err);
  return Status::Ok();
}

Status Vcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  kvm_abi::Cpuid2Buffer cpuid(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) cpuid.set(i, entries[i]);
  if (IoctlRetry(fd_.get(), kvm_abi::kSetCpuid2, cpuid.data()) < 0)
    return IoctlError("KVM_SET_CPUID2");
  return Status::Ok();
}

Result<kvm_regs> Vcpu::GetRegs() const {
  kvm_regs r{};
  if (IoctlRetry(fd_.get(), KVM_GET_REGS, &r) < 0) return IoctlError("KVM_GET_REGS");
  return r;
}

Status Vcpu::SetRegs(const kvm_regs& regs) {
  kvm_regs copy = regs;
  if (IoctlRetry(fd_.get(), KVM_SET_REGS, &copy) < 0) return IoctlError("KVM_SET_REGS");
  return Status::Ok();
}

Status Vcpu::SetupLapicVirtualWire() {
  constexpr size_t kLvtLint0 = 0x350, kLvtLint1 = 0x360;
  constexpr uint32_t kDeliveryExtInt = 7u << 8, kDeliveryNmi = 4u << 8;
  kvm_lapic_state lapic{};
  if (IoctlRetry(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) return IoctlError("KVM_GET_LAPIC");
  auto set_lvt = [&](size_t offset, uint32_t delivery) {
    uint32_t v;
    std::memcpy(&v, lapic.regs + offset, sizeof v);
    v = (v & ~0x700u) | delivery;
    std::memcpy(lapic.regs + offset, &v, sizeof v);
  };
  set_lvt(kLvtLint0, kDeliveryExtInt);
  set_lvt(kLvtLint1, kDeliveryNmi);
  if (IoctlRetry(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) return IoctlError("KVM_SET_LAPIC");
  return Status::Ok();
}

std::string Vcpu::DescribeForCrash() const {
  auto regs = GetRegs();
  auto sregs = GetSregs();
  if (!regs.ok() || !sregs.ok()) return "registers unreadable";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "rip=%#llx rsp=%#llx rflags=%#llx cr2=%#llx cr3=%#llx cs=%#x ss=%#x",
                (unsigned long long)regs->rip, (unsigned long long)regs->rsp,
                (unsigned long long)regs->rflags, (unsigned long long)sregs->cr2,
                (unsigned long long)sregs->cr3, sregs->cs.selector, sregs->ss.selector);
  return buf;
}

Result<kvm_sregs> Vcpu::GetSregs() const {
  kvm_sregs s{};
  if (IoctlRetry(fd_.get(), KVM_GET_SREGS, &s) < 0) return IoctlError("KVM_GET_SREGS");
  return s;
}

Status Vcpu::SetSregs(const kvm_sregs& sregs) {
  kvm_sregs copy = sregs;
  if (IoctlRetry(fd_.get(), KVM_SET_SREGS, &copy) < 0) return IoctlError("KVM_SET_SREGS");
  return Status::Ok();
}

namespace {

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

}  // namespace

Result<std::vector<MsrValue>> Vcpu::GetMsrs(const std::vector<uint32_t>& indices) const {
  kvm_abi::MsrsBuffer msrs(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) msrs.set(i, kvm_msr_entry{.index = indices[i]});
  int n = IoctlRetry(fd_.get(), kvm_abi::kGetMsrs, msrs.data());
  if (n < 0) return IoctlError("KVM_GET_MSRS");
  if (static_cast<size_t>(n) != indices.size())
    return Error("KVM_GET_MSRS: read " + std::to_string(n) + " of " +
                 std::to_string(indices.size()) + " MSRs, failed at " + Hex(indices[n]));
  std::vector<MsrValue> out(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    kvm_msr_entry e = msrs.get(i);
    out[i] = {e.index, e.data};
  }
  return out;
}

Status Vcpu::SetMsrs(const std::vector<MsrValue>& values) {
  kvm_abi::MsrsBuffer msrs(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    msrs.set(i, kvm_msr_entry{.index = values[i].index, .data = values[i].value});
  int n = IoctlRetry(fd_.get(), kvm_abi::kSetMsrs, msrs.data());
  if (n < 0) return IoctlError("KVM_SET_MSRS");
  if (static_cast<size_t>(n) != values.size())
    return Error("KVM_SET_MSRS: wrote " + std::to_string(n) + " of " +
                 std::to_string(values.size()) + " MSRs, refused " + Hex(values[n].index));
  return Status::Ok();
}

Result<std::vector<uint32_t>> Vcpu::ProbeSavableMsrs() {
  std::vector<uint32_t> savable;
  for (uint32_t index : host_->msr_indices) {
    auto value = GetMsrs({index});
    if (!value.ok()) continue;
    if (!SetMsrs(*value).ok()) continue;
    savable.push_back(index);
  }
  return savable;
}

Result<VcpuState> Vcpu::CaptureState(const std::vector<uint32_t>& msr_indices,
                                     const std::vector<kvm_cpuid_entry2>& cpuid) {
  VcpuState s;
  const int fd = fd_.get();
  s.cpuid = cpuid;
  // MP state first: KVM_GET_MP_STATE makes the LAPIC accept pending INIT/SIPI.
  kvm_mp_state mp{};
  if (IoctlRetry(fd, KVM_GET_MP_STATE, &mp) < 0)
    s.unsupported.push_back("mp_state: " + IoctlError("KVM_GET_MP_STATE").message());
  else
    s.mp_state = mp;
  ASSIGN_OR_RETURN(s.regs, GetRegs());
  ASSIGN_OR_RETURN(s.sregs, GetSregs());
  if (host_->xsave_size > 0 || host_->has_xsave) {
    size_t size = std::max<size_t>(host_->xsave_size, kvm_abi::kXsaveLegacySize);
    s.xsave.assign(size, 0);
    unsigned long req = host_->xsave_size > 0 ? kvm_abi::kGetXsave2 : kvm_abi::kGetXsave;
    if (IoctlRetry(fd, req, s.xsave.data()) < 0)
      return IoctlError(host_->xsave_size > 0 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
  } else {
    kvm_fpu fpu{};
    if (IoctlRetry(fd, KVM_GET_FPU, &fpu) < 0) return IoctlError("KVM_GET_FPU");
    s.fpu = fpu;
  }
  if (host_->has_xcrs) {
    kvm_xcrs xcrs{};
    if (IoctlRetry(fd, KVM_GET_XCRS, &xcrs) < 0)
      s.unsupported.push_back("xcrs: " + IoctlError("KVM_GET_XCRS").message());
    else
      s.xcrs = xcrs;
  } else {
    s.unsupported.push_back("xcrs: host lacks KVM_CAP_XCRS");
  }
  if (host_->has_debugregs) {
    kvm_debugregs dr{};
    if (IoctlRetry(fd, KVM_GET_DEBUGREGS, &dr) < 0)
      s.unsupported.push_back("debugregs: " + IoctlError("KVM_GET_DEBUGREGS").message());
    else
      s.debugregs = dr;
  } else {
    s.unsupported.push_back("debugregs: host lacks KVM_CAP_DEBUGREGS");
  }
  kvm_lapic_state lapic{};
  if (IoctlRetry(fd, KVM_GET_LAPIC, &lapic) < 0)
    s.unsupported.push_back("lapic: " + IoctlError("KVM_GET_LAPIC").message());
  else
    s.lapic = lapic;
  ASSIGN_OR_RETURN(s.msrs, GetMsrs(msr_indices));
  if (host_->has_vcpu_events) {
    kvm_vcpu_events ev{};
    if (IoctlRetry(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
      s.unsupported.push_back("vcpu_events: " + IoctlError("KVM_GET_VCPU_EVENTS").message());
    else
      s.events = ev;
  } else {
    s.unsupported.push_back("vcpu_events: host lacks KVM_CAP_VCPU_EVENTS");
  }
  if (host_->has_tsc_control) {
    int khz = ::ioctl(fd, KVM_GET_TSC_KHZ, 0);
    if (khz > 0) s.tsc_khz = static_cast<uint32_t>(khz);
  }
  return s;
}

Status Vcpu::RestoreState(const VcpuState& s) {
  const int fd = fd_.get();
  // Order as KVM requires it (and as Firecracker does): CPUID before
  // anything it validates, sregs before xsave/xcrs, LAPIC before MSRs
  // (TSC deadline), events last.
  RETURN_IF_ERROR(SetCpuid(s.cpuid));
  if (s.tsc_khz && host_->has_tsc_control) {
    int cur = ::ioctl(fd, KVM_GET_TSC_KHZ, 0);
    if (cur > 0 && static_cast<uint32_t>(cur) != *s.tsc_khz &&
        ::ioctl(fd, KVM_SET_TSC_KHZ, *s.tsc_khz) < 0)
      return IoctlError("KVM_SET_TSC_KHZ");
  }
  if (s.mp_state) {
    kvm_mp_state mp = *s.mp_state;
    if (IoctlRetry(fd, KVM_SET_MP_STATE, &mp) < 0) return IoctlError("KVM_SET_MP_STATE");
  }
  RETURN_IF_ERROR(SetRegs(s.regs));
  RETURN_IF_ERROR(SetSregs(s.sregs));
  if (!s.xsave.empty()) {
    if (s.xsave.size() < kvm_abi::kXsaveLegacySize)
      return Error("xsave area of " + std::to_string(s.xsave.size()) + " bytes is too small");
    size_t host_size = std::max<size_t>(host_->xsave_size, kvm_abi::kXsaveLegacySize);
    if (s.xsave.size() > host_size)
      return Error("xsave area of " + std::to_string(s.xsave.size()) +
                   " bytes is larger than this host's (" + std::to_string(host_size) + ")");
    std::vector<uint8_t> copy(host_size, 0);
    std::memcpy(copy.data(), s.xsave.data(), s.xsave.size());
    if (IoctlRetry(fd, kvm_abi::kSetXsave, copy.data()) < 0) return IoctlError("KVM_SET_XSAVE");
  } else if (s.fpu) {
    kvm_fpu fpu = *s.fpu;
    if (IoctlRetry(fd, KVM_SET_FPU, &fpu) < 0) return IoctlError("KVM_SET_FPU");
  }
  if (s.xcrs) {
    kvm_xcrs xcrs = *s.xcrs;
    if (IoctlRetry(fd, KVM_SET_XCRS, &xcrs) < 0) return IoctlError("KVM_SET_XCRS");
  }
  if (s.debugregs) {
    kvm_debugregs dr = *s.debugregs;
    if (IoctlRetry(fd, KVM_SET_DEBUGREGS, &dr) < 0) return IoctlError("KVM_SET_DEBUGREGS");
  }
  if (s.lapic) {
    kvm_lapic_state lapic = *s.lapic;
    if (IoctlRetry(fd, KVM_SET_LAPIC, &lapic) < 0) return IoctlError("KVM_SET_LAPIC");
  }
  RETURN_IF_ERROR(SetMsrs(s.msrs));
  if (s.events) {
    kvm_vcpu_events ev = *s.events;  // flags as captured say which fields are valid
    if (IoctlRetry(fd, KVM_SET_VCPU_EVENTS, &ev) < 0) return IoctlError("KVM_SET_VCPU_EVENTS");
  }
  return Status::Ok();
}

}  // namespace kf
