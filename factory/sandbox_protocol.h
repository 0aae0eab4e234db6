// The control channel between a requester (CLI, later the daemon) and one
// sandbox VMM process: fixed-size messages on a SOCK_SEQPACKET socketpair
// made by the zygote at fork time. It carries only what the VMM itself
// answers (timings) and one event (agent.sock is listening); everything for
// the guest goes over agent.sock (docs/AGENT_CHANNEL.md). Closing it stops
// the sandbox.
#pragma once

#include <cstdint>

namespace kf {

inline constexpr uint32_t kSandboxMsgMagic = 0x4b465342;  // "KFSB"

// Requests (requester -> VMM).
inline constexpr uint32_t kHostOpTimings = 100;  // -> SandboxTimings in data
// Events (VMM -> requester, unsolicited, once): agent.sock accepts clients;
// data: the SandboxTimings known by then (all but first_wait_ns), or none.
inline constexpr uint32_t kVmmEventListening = 200;

struct SandboxRequest {
  uint32_t magic = kSandboxMsgMagic;
  uint32_t op = 0;
};

// status: 0 ok, or one of these.
inline constexpr uint32_t kVmmStatusBadRequest = 1000;

inline constexpr uint32_t kSandboxReplyDataMax = 128;

struct SandboxReply {
  uint32_t magic = kSandboxMsgMagic;
  uint32_t op = 0;  // the request's op, or an event
  uint32_t status = 0;
  uint32_t len = 0;
  uint8_t data[kSandboxReplyDataMax] = {};
};

// CLOCK_MONOTONIC nanoseconds (system-wide, so comparable across processes).
struct SandboxTimings {
  uint64_t fork_ns = 0;           // zygote, just before fork()
  uint64_t child_start_ns = 0;    // child, first instruction after fork()
  uint64_t mapped_ns = 0;         // memory mapped MAP_PRIVATE
  uint64_t vm_created_ns = 0;     // VM, memory slot, vCPU created
  uint64_t restored_ns = 0;       // vCPU, VM and device state restored
  uint64_t first_wait_ns = 0;     // guest resumed and waits for work
};
static_assert(sizeof(SandboxTimings) <= kSandboxReplyDataMax);

// The spans between those marks, in nanoseconds: fork -> child running,
// (cgroup and) template mapped, VM created, state restored, guest resumed
// until it first waits. A span with a missing or out-of-order mark is 0.
struct SandboxPhases {
  uint64_t fork = 0, map = 0, create_vm = 0, restore = 0, resume_to_wait = 0;
};
inline SandboxPhases PhasesOf(const SandboxTimings& t) {
  auto span = [](uint64_t from, uint64_t to) -> uint64_t {
    return from != 0 && to > from ? to - from : 0;
  };
  return {span(t.fork_ns, t.child_start_ns), span(t.child_start_ns, t.mapped_ns),
          span(t.mapped_ns, t.vm_created_ns), span(t.vm_created_ns, t.restored_ns),
          span(t.restored_ns, t.first_wait_ns)};
}

}  // namespace kf
