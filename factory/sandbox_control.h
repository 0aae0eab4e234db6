// The sandbox VMM's end of its control socket (factory/sandbox_protocol.h),
// shared by the bare and Linux runners.
#pragma once

#include <cstdint>

#include "factory/sandbox_protocol.h"
#include "vmm-glue/result.h"

namespace kf {

// Tells the requester the clone is restored and its agent.sock listens,
// with how long that took (`timings` up to restored_ns).
void SendListening(int fd, const SandboxTimings& timings);

// Serves one request from a readable control socket. Returns true when the
// requester has gone (EOF): the sandbox then stops.
Result<bool> ServeSandboxControl(int fd, const SandboxTimings& timings, uint64_t first_wait_ns);

}  // namespace kf
