// The vCPU exit loop: KVM_RUN, then one switch on exit_reason (as kvmtool's
// kvm_cpu__start). Port and MMIO exits go to the I/O bus; anything that ends
// the guest comes back as a StopReason or an Error.
#pragma once

#include <string>

#include "vmm-glue/io_bus.h"
#include "vmm-glue/vcpu.h"

namespace kf {

enum class StopReason {
  kDevice,       // a device handler asked to stop (exit pending, see Vcpu)
  kInterrupted,  // KVM_RUN returned EINTR and the caller's flag was set
  kShutdown,     // triple fault / guest reset: the guest is gone
};

// Runs until a device stops it, the guest shuts down, or *interrupt becomes
// true after a signal. Errors name the exit (internal error, failed entry).
Result<StopReason> RunVcpu(Vcpu& vcpu, IoBus& bus, const volatile bool* interrupt = nullptr);

std::string DescribeExit(const kvm_run& run);

}  // namespace kf
