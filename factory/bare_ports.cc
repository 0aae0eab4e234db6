#include "factory/bare_ports.h"

#include <poll.h>

#include <cstring>

#include "agent/bare/bare_abi.h"
#include "factory/clock.h"

namespace kf {

IoAction BareGuestPorts::Fail(Error e) {
  failed_ = true;
  failure_ = std::move(e);
  return IoAction::kStop;
}

IoAction BareGuestPorts::Write(uint64_t port, std::span<const uint8_t> data) {
  if (port != KF_PORT_SIGNAL || data.size() != 4) return IoAction::kContinue;
  uint32_t signal;
  std::memcpy(&signal, data.data(), 4);
  if (signal == KF_SIGNAL_READY && ready_ns_ == 0) ready_ns_ = MonotonicNs();
  if (signal == KF_SIGNAL_PANIC) {
    panicked_ = true;
    return IoAction::kStop;
  }
  return IoAction::kContinue;
}

bool BareGuestPorts::ServeExtraFd() {
  auto stop = hooks_.on_extra_fd();
  if (!stop.ok()) {
    Fail(stop.error());
    return true;
  }
  return *stop;
}

// `in KF_PORT_WAIT`: 1 when the device has put something in a used ring
// since the guest last looked, else sleep on the host's fds until it has.
IoAction BareGuestPorts::Read(uint64_t port, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (port != KF_PORT_WAIT || data.size() != 4) return IoAction::kContinue;
  if (first_wait_ns_ == 0) first_wait_ns_ = MonotonicNs();
  // The wait is the device's doorbell (HybridVsockOptions::poll_on_wait):
  // whatever the guest queued since it last ran is taken now.
  vsock_->PollGuestQueues();
  for (;;) {
    // Host bytes that could not move while the guest had no credit or rx
    // buffers may move now: the guest has run since the last look.
    if (Status s = vsock_->ProcessHostEvents(); !s.ok()) return Fail(s.error());
    if (vsock_->TakeGuestWork()) {
      // A guest that always has work (a hostile one can) must not starve
      // the control socket: look at it without waiting.
      if (hooks_.extra_fd >= 0) {
        pollfd ctl{hooks_.extra_fd, POLLIN, 0};
        if (::poll(&ctl, 1, 0) == 1 && ServeExtraFd()) return IoAction::kStop;
      }
      const uint32_t one = 1;
      std::memcpy(data.data(), &one, 4);
      return IoAction::kContinue;
    }
    if (hooks_.stop_when_idle && hooks_.stop_when_idle()) return IoAction::kStop;
    if (hooks_.interrupt != nullptr && *hooks_.interrupt) return IoAction::kStop;
    pollfd fds[2] = {{vsock_->poll_fd(), POLLIN, 0}, {hooks_.extra_fd, POLLIN, 0}};
    const nfds_t n = hooks_.extra_fd >= 0 ? 2 : 1;
    int r = ::poll(fds, n, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Fail(Error::Sys("poll in the VMM event loop"));
    }
    if (n == 2 && fds[1].revents != 0 && ServeExtraFd()) return IoAction::kStop;
  }
}

}  // namespace kf
