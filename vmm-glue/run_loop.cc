#include "vmm-glue/run_loop.h"

#include <cstdio>

namespace kf {

std::string DescribeExit(const kvm_run& run) {
  char buf[256];
  switch (run.exit_reason) {
    case KVM_EXIT_INTERNAL_ERROR:
      std::snprintf(buf, sizeof buf, "KVM_EXIT_INTERNAL_ERROR (suberror %u)",
                    run.internal.suberror);
      break;
    case KVM_EXIT_FAIL_ENTRY:
      std::snprintf(buf, sizeof buf, "KVM_EXIT_FAIL_ENTRY (hardware reason 0x%llx)",
                    static_cast<unsigned long long>(run.fail_entry.hardware_entry_failure_reason));
      break;
    case KVM_EXIT_SHUTDOWN:
      std::snprintf(buf, sizeof buf, "KVM_EXIT_SHUTDOWN (triple fault)");
      break;
    case KVM_EXIT_HLT:
      std::snprintf(buf, sizeof buf, "KVM_EXIT_HLT");
      break;
    default:
      std::snprintf(buf, sizeof buf, "exit reason %u", run.exit_reason);
  }
  return buf;
}

Result<StopReason> RunVcpu(Vcpu& vcpu, IoBus& bus, const volatile bool* interrupt) {
  kvm_run* run = vcpu.run();
  for (;;) {
    ASSIGN_OR_RETURN(bool exited, vcpu.Run());
    if (!exited) {
      if (interrupt != nullptr && *interrupt) return StopReason::kInterrupted;
      continue;
    }
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        // The data area lies inside the kvm_run mapping; check it anyway.
        const uint64_t bytes = uint64_t{run->io.size} * run->io.count;
        if (run->io.size == 0 || run->io.size > 8 || run->io.data_offset < sizeof(kvm_run) ||
            run->io.data_offset + bytes > vcpu.run_size())
          return Error("KVM_EXIT_IO with an impossible data area");
        auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
        const bool write = run->io.direction == KVM_EXIT_IO_OUT;
        IoAction action = IoAction::kContinue;
        for (uint32_t i = 0; i < run->io.count && action == IoAction::kContinue; ++i)
          action = bus.Pio(run->io.port, write,
                           std::span<uint8_t>(data + i * run->io.size, run->io.size));
        if (action == IoAction::kStop) return StopReason::kDevice;
        break;
      }
      case KVM_EXIT_MMIO: {
        uint32_t len = run->mmio.len;
        if (len == 0 || len > sizeof(run->mmio.data))
          return Error("KVM_EXIT_MMIO with length " + std::to_string(len));
        if (bus.Mmio(run->mmio.phys_addr, run->mmio.is_write,
                     std::span<uint8_t>(run->mmio.data, len)) == IoAction::kStop)
          return StopReason::kDevice;
        break;
      }
      case KVM_EXIT_SHUTDOWN:
        return StopReason::kShutdown;
      case KVM_EXIT_INTR:
        if (interrupt != nullptr && *interrupt) return StopReason::kInterrupted;
        break;
      default:
        return Error("vCPU " + std::to_string(vcpu.id()) + " stopped: " + DescribeExit(*run));
    }
  }
}

}  // namespace kf
