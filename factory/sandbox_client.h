// The requester's side of a sandbox control socket: the VMM's own answers
// (timings) and its one event (agent.sock listening). Every reply is
// checked; a dead or silent sandbox is an error. The guest is reached over
// agent.sock instead (factory/agent_client.h).
#pragma once

#include <cstdint>

#include "factory/sandbox_protocol.h"
#include "vmm-glue/result.h"

namespace kf {

class SandboxClient {
 public:
  explicit SandboxClient(int control_fd, int timeout_ms = 30000)
      : fd_(control_fd), timeout_ms_(timeout_ms) {}

  // Blocks until the VMM reports that its agent.sock accepts clients (sent
  // once, before the guest resumes). Call it once, first. Returns the VMM's
  // timings up to restored_ns (zeros from a VMM that sent none).
  Result<SandboxTimings> WaitListening();
  Result<SandboxTimings> Timings();

 private:
  Result<SandboxReply> Receive();
  int fd_;
  int timeout_ms_;
};

}  // namespace kf
