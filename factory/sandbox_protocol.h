// The control channel between a requester (CLI, later the daemon) and one
// sandbox VMM process: fixed-size messages on a SOCK_SEQPACKET socketpair
// made by the zygote at fork time. Guest ops (KF_OP_*) are forwarded to the
// agent's mailbox; host ops are answered by the VMM itself.
//
// The vsock issue replaces the guest half of this with agent.sock; the host
// half (timings, stop) stays.
#pragma once

#include <cstdint>

#include "agent/bare/bare_abi.h"

namespace kf {

inline constexpr uint32_t kSandboxMsgMagic = 0x4b465342;  // "KFSB"
inline constexpr uint32_t kHostOpTimings = 100;           // -> SandboxTimings in data

struct SandboxRequest {
  uint32_t magic = kSandboxMsgMagic;
  uint32_t op = 0;
  uint64_t arg[4] = {};
  uint32_t len = 0;
  uint8_t data[KF_MAILBOX_DATA_MAX] = {};
};

// status: KF_STATUS_* from the guest, or one of these from the VMM.
inline constexpr uint32_t kVmmStatusBadRequest = 1000;
inline constexpr uint32_t kVmmStatusGuestProtocol = 1001;  // guest answered garbage

struct SandboxReply {
  uint32_t magic = kSandboxMsgMagic;
  uint32_t status = 0;
  uint64_t ret[4] = {};
  uint32_t len = 0;
  uint8_t data[KF_MAILBOX_DATA_MAX] = {};
};

// CLOCK_MONOTONIC nanoseconds (system-wide, so comparable across processes).
struct SandboxTimings {
  uint64_t fork_ns = 0;           // zygote, just before fork()
  uint64_t child_start_ns = 0;    // child, first instruction after fork()
  uint64_t mapped_ns = 0;         // memory mapped MAP_PRIVATE
  uint64_t vm_created_ns = 0;     // VM, memory slot, vCPU created
  uint64_t restored_ns = 0;       // vCPU and VM state restored
  uint64_t first_wait_ns = 0;     // guest resumed and waits for requests
};

}  // namespace kf
