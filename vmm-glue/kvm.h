// The KVM system device (/dev/kvm): API version and capability checks, and
// the host facts every VM needs (vCPU mmap size, supported CPUID, MSR list).
//
// This layer (vmm-glue/) is the only place that includes <linux/kvm.h>.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

inline constexpr char kDefaultKvmPath[] = "/dev/kvm";

// Facts about this host's KVM, read once when the device is opened.
struct KvmHostInfo {
  int api_version = 0;
  int vcpu_mmap_size = 0;
  int xsave_size = 0;        // KVM_CAP_XSAVE2 (bytes), 0 if only legacy XSAVE
  bool has_xsave = false;
  bool has_xcrs = false;
  bool has_debugregs = false;
  bool has_vcpu_events = false;
  bool has_irqchip = false;
  bool has_pit2 = false;
  bool has_adjust_clock = false;
  bool has_immediate_exit = false;
  bool has_tsc_control = false;
  bool is_pvm = false;  // the host's KVM vendor module is PVM (see ENVIRONMENT.md)
  int max_vcpus = 0;
  std::vector<uint32_t> msr_indices;            // KVM_GET_MSR_INDEX_LIST
  std::vector<kvm_cpuid_entry2> supported_cpuid; // KVM_GET_SUPPORTED_CPUID
};

class Kvm {
 public:
  // Opens the device and checks the API version and required capabilities.
  static Result<Kvm> Open(const std::string& path = kDefaultKvmPath);
  // Why KVM cannot be used here, or "" when it can (for test skips).
  static std::string UnavailableReason(const std::string& path = kDefaultKvmPath);

  int fd() const { return fd_.get(); }
  const KvmHostInfo& info() const { return *info_; }
  std::shared_ptr<const KvmHostInfo> shared_info() const { return info_; }
  int CheckExtension(int cap) const;

 private:
  UniqueFd fd_;
  std::shared_ptr<KvmHostInfo> info_;
};

// ioctl() that retries on EINTR (except KVM_RUN, which the caller drives).
int IoctlRetry(int fd, unsigned long request, void* arg);
// Formats the name of a failed ioctl for an Error: "KVM_SET_SREGS: ...".
Error IoctlError(const char* name, int err = errno);

}  // namespace kf
