// The bare guest's paravirtual ports (agent/bare/bare_abi.h) and, inside its
// WAIT port, the VMM's event loop: one thread serves the vCPU, the vsock
// device's host sockets and one extra fd (a sandbox's control socket, or
// template creation's wake-up). An idle guest therefore costs a process
// asleep in poll(), nothing more (docs/AGENT_CHANNEL.md "Threading").
#pragma once

#include <cstdint>
#include <functional>

#include "vmm-glue/io_bus.h"
#include "vmm-glue/result.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

namespace kf {

class BareGuestPorts : public IoDevice {
 public:
  struct Hooks {
    // Polled with the device; when readable, on_extra_fd runs: true stops
    // the vCPU (e.g. the control socket closed), an error fails the VMM.
    int extra_fd = -1;
    std::function<Result<bool>()> on_extra_fd;
    // Asked each time the guest waits with nothing to do: true stops the
    // vCPU at that wait (template capture).
    std::function<bool()> stop_when_idle;
    // Set from a signal handler (boot timeout): stop at the next wait.
    const volatile bool* interrupt = nullptr;
  };

  BareGuestPorts(vsock::HybridVsock* vsock, Hooks hooks)
      : vsock_(vsock), hooks_(std::move(hooks)) {}

  bool ready() const { return ready_ns_ != 0; }
  uint64_t ready_ns() const { return ready_ns_; }
  bool panicked() const { return panicked_; }
  uint64_t first_wait_ns() const { return first_wait_ns_; }
  // Why the VMM must stop with an error (a host-side failure), if any.
  const Error* failure() const { return failed_ ? &failure_ : nullptr; }

  IoAction Read(uint64_t port, std::span<uint8_t> data) override;
  IoAction Write(uint64_t port, std::span<const uint8_t> data) override;

 private:
  IoAction Fail(Error e);
  // Runs on_extra_fd; true when the vCPU must stop (asked to, or failed).
  bool ServeExtraFd();

  vsock::HybridVsock* vsock_;
  Hooks hooks_;
  uint64_t ready_ns_ = 0;
  uint64_t first_wait_ns_ = 0;
  bool panicked_ = false;
  bool failed_ = false;
  Error failure_;
};

}  // namespace kf
