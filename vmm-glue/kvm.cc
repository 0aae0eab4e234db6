#include "vmm-glue/kvm.h"

#include "vmm-glue/kvm_abi.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cstring>
#include <fstream>
#include <memory>

namespace kf {

int IoctlRetry(int fd, unsigned long request, void* arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

Error IoctlError(const char* name, int err) { return Error::Sys(name, err); }

int Kvm::CheckExtension(int cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

namespace {

Result<std::vector<uint32_t>> ReadMsrIndexList(int fd) {
  // First call with nmsrs = 0 tells the size (E2BIG, nmsrs set to the count).
  kvm_abi::MsrListBuffer probe(0);
  if (IoctlRetry(fd, kvm_abi::kGetMsrIndexList, probe.data()) == 0) return std::vector<uint32_t>{};
  if (errno != E2BIG) return IoctlError("KVM_GET_MSR_INDEX_LIST");
  kvm_abi::MsrListBuffer list(probe.count());
  if (IoctlRetry(fd, kvm_abi::kGetMsrIndexList, list.data()) < 0)
    return IoctlError("KVM_GET_MSR_INDEX_LIST");
  return list.elements();
}

Result<std::vector<kvm_cpuid_entry2>> ReadSupportedCpuid(int fd) {
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    kvm_abi::Cpuid2Buffer cpuid(n);
    if (IoctlRetry(fd, kvm_abi::kGetSupportedCpuid, cpuid.data()) == 0) return cpuid.elements();
    if (errno != E2BIG) return IoctlError("KVM_GET_SUPPORTED_CPUID");
  }
  return Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

bool HostKvmIsPvm() {
  std::ifstream f("/sys/module/kvm_pvm/initstate");
  std::ifstream g("/sys/module/kvm_pvm/parameters/pvm_native");
  return f.good() || g.good();
}

}  // namespace

Result<Kvm> Kvm::Open(const std::string& path) {
  Kvm kvm;
  kvm.fd_.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!kvm.fd_.valid()) return Error::Sys("open " + path);
  kvm.info_ = std::make_shared<KvmHostInfo>();
  KvmHostInfo& info = *kvm.info_;
  info.api_version = ::ioctl(kvm.fd(), KVM_GET_API_VERSION, 0);
  if (info.api_version != KVM_API_VERSION)
    return Error("KVM_GET_API_VERSION: host has " +
                 std::to_string(info.api_version) + ", need " +
                 std::to_string(KVM_API_VERSION));
  if (!kvm.CheckExtension(KVM_CAP_USER_MEMORY))
    return Error("KVM_CAP_USER_MEMORY is missing");
  info.vcpu_mmap_size = ::ioctl(kvm.fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (info.vcpu_mmap_size <= 0) return IoctlError("KVM_GET_VCPU_MMAP_SIZE");
  info.has_xsave = kvm.CheckExtension(KVM_CAP_XSAVE);
  info.xsave_size = kvm.CheckExtension(KVM_CAP_XSAVE2);
  info.has_xcrs = kvm.CheckExtension(KVM_CAP_XCRS);
  info.has_debugregs = kvm.CheckExtension(KVM_CAP_DEBUGREGS);
  info.has_vcpu_events = kvm.CheckExtension(KVM_CAP_VCPU_EVENTS);
  info.has_irqchip = kvm.CheckExtension(KVM_CAP_IRQCHIP);
  info.has_pit2 = kvm.CheckExtension(KVM_CAP_PIT2);
  info.has_adjust_clock = kvm.CheckExtension(KVM_CAP_ADJUST_CLOCK);
  info.has_immediate_exit = kvm.CheckExtension(KVM_CAP_IMMEDIATE_EXIT);
  info.has_tsc_control = kvm.CheckExtension(KVM_CAP_TSC_CONTROL);
  info.max_vcpus = kvm.CheckExtension(KVM_CAP_MAX_VCPUS);
  info.is_pvm = HostKvmIsPvm();
  if (!info.has_immediate_exit)
    return Error("KVM_CAP_IMMEDIATE_EXIT is missing (needed to pause vCPUs "
                 "at an instruction boundary)");
  ASSIGN_OR_RETURN(info.msr_indices, ReadMsrIndexList(kvm.fd()));
  ASSIGN_OR_RETURN(info.supported_cpuid, ReadSupportedCpuid(kvm.fd()));
  return kvm;
}

std::string Kvm::UnavailableReason(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
  ::close(fd);
  auto kvm = Open(path);
  if (!kvm.ok()) return kvm.error().message();
  return "";
}

}  // namespace kf
