// The zygote (DESIGN.md "Processes"): a single-threaded process that holds
// one loaded template and fork()s a sandbox VMM per clone request. The fork
// is what makes a clone cheap: the child shares the zygote's page tables and
// template memory, and only builds its own VM.
//
// Protocol on a SOCK_SEQPACKET socketpair: the requester sends a
// ZygoteRequest; the zygote answers a ZygoteReply carrying, via SCM_RIGHTS,
// the requester's end of the new sandbox's control socket and a pidfd.
//
// Lifetimes: closing the zygote socket ends the zygote; closing a sandbox's
// control socket ends that sandbox. A requester that dies therefore leaves
// nothing behind. The zygote auto-reaps its children (SA_NOCLDWAIT); the
// requester watches each sandbox through its pidfd.
#pragma once

#include <utility>

#include <sys/types.h>

#include <string>

#include "factory/loaded_template.h"
#include "factory/sandbox_protocol.h"
#include "factory/sandbox_vmm.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

// sun_path's size: the longest agent.sock path a clone can have, plus NUL.
inline constexpr size_t kAgentSockPathMax = 108;

struct CloneHandle {
  pid_t pid = -1;
  UniqueFd control;  // SandboxRequest / SandboxReply
  UniqueFd pidfd;    // readable when the sandbox exits
  uint64_t fork_ns = 0;
  std::string agent_sock;  // the clone's hybrid-vsock socket
};

class Zygote {
 public:
  // Forks the zygote. The template must be loaded and the caller must be
  // single-threaded (fork() in a threaded process copies only one thread).
  static Result<Zygote> Spawn(LoadedTemplate tmpl);
  Zygote() = default;
  // Moves hand over the process: a moved-from Zygote owns nothing and its
  // destructor must not wait for the process (it would wait forever, since
  // the socket that tells the zygote to exit went with the move).
  Zygote(Zygote&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), socket_(std::move(other.socket_)) {}
  Zygote& operator=(Zygote&& other) noexcept;
  ~Zygote();

  Result<CloneHandle> Clone(const SandboxOptions& options);
  pid_t pid() const { return pid_; }

 private:
  void Stop();  // closes the socket and reaps the zygote

  pid_t pid_ = -1;
  UniqueFd socket_;
};

// Stops a clone: closes its control socket (the VMM exits at once when idle)
// and waits up to `grace_ms` on its pidfd before SIGKILL.
Status ReleaseClone(CloneHandle& clone, int grace_ms = 2000);

}  // namespace kf
