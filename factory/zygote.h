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
#include <vector>

#include "factory/jail/jail_options.h"
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
  // Every sandbox it forks enters `jail` before its guest runs.
  static Result<Zygote> Spawn(LoadedTemplate tmpl, const JailOptions& jail = {});
  // Starts the zygote as a fresh process instead, safe in a multi-threaded
  // caller such as the daemon (no fork() of the caller): posix_spawn() of
  // `exe` (a kata-factory binary, normally /proc/self/exe) as
  // `exe zygote --template DIR --fd 3 EXTRA...`, which loads the template
  // itself and runs the same loop (RunZygoteProcess). Waits up to
  // `timeout_ms` for it to report the template loaded, or its error. The
  // zygote is the caller's child (reaped by the destructor) and, like a
  // forked one, exits when its socket closes.
  static Result<Zygote> SpawnProcess(const std::string& exe, const std::string& template_dir,
                                     const std::vector<std::string>& extra_args = {},
                                     int timeout_ms = 60000);
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
  // True when the zygote's end of the socket is closed (it exited or was
  // killed): a caller may then start a new one.
  bool Exited() const;

 private:
  void Stop();  // closes the socket and reaps the zygote

  pid_t pid_ = -1;
  UniqueFd socket_;
};

// The zygote process's side of SpawnProcess (`kata-factory zygote`): loads
// the template in `template_dir`, reports the outcome on `sock`, then serves
// clone requests on it until EOF. Never returns.
[[noreturn]] void RunZygoteProcess(const std::string& template_dir, int sock,
                                   const JailOptions& jail);

// Stops a clone: closes its control socket (the VMM exits at once when idle)
// and waits up to `grace_ms` on its pidfd before SIGKILL; then removes its
// agent.sock (a jailed VMM cannot unlink it itself).
Status ReleaseClone(CloneHandle& clone, int grace_ms = 2000);

}  // namespace kf
