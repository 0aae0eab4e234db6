// One container run over a VM's agent (issue #7; docs/CONTAINERS.md): what
// `kata-factory run` does once it holds a VM. CreateContainer and
// StartContainer, the container's stdout and stderr copied to local fds as
// they arrive, stdin forwarded (or closed at once), WaitProcess until the
// exit, Ctrl-C turned into SIGTERM then SIGKILL, RemoveContainer.
//
// The agent answers the requests of one connection in order and holds a
// connection's later requests while a wait is parked on it
// (docs/AGENT_PROTOCOL.md "Waits"). So each concern has its own connection,
// and its own thread: control (create, start, close stdin, wait with short
// timeouts, signal, remove), stdout, stderr and, with `interactive`, stdin.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "factory/agent_client.h"

namespace kf {

// Opens one more connection to the VM's agent, Ready frame read.
using AgentConnector = std::function<Result<AgentClient>()>;

// An AgentConnector for a VM's agent.sock (hybrid vsock: CONNECT 1024).
AgentConnector VsockAgentConnector(const std::string& agent_socket, int timeout_ms = 30000);
// An AgentConnector for an agent that speaks frames at once on a Unix
// socket (kf-agent-linux --listen-unix; no CONNECT handshake): tests.
AgentConnector UnixAgentConnector(const std::string& socket_path, int timeout_ms = 30000);

struct ContainerRunOptions {
  agentpb::CreateContainerRequest create;  // container_id and process required
  bool interactive = false;   // forward stdin_fd, CloseStdin at its EOF; else close stdin at start
  bool remove = true;         // RemoveContainer at the end (also after errors)
  int stdin_fd = 0, stdout_fd = 1, stderr_fd = 2;
  // Incremented (e.g. by a SIGINT handler) to stop the process: the first
  // time SIGTERM, then SIGKILL after kill_grace_ms; the second time SIGKILL.
  const std::atomic<int>* interrupts = nullptr;
  uint32_t kill_grace_ms = 3000;
  // After the exit, how long to wait for the rest of the output.
  uint32_t drain_ms = 5000;
  uint64_t t0_ns = 0;  // MonotonicNs() the timings count from; 0: the call's start
};

// Exit statuses in the manner of `docker run` and a shell.
inline constexpr int kExitOwnFailure = 125;    // kata-factory itself (daemon, agent, set-up)
inline constexpr int kExitCannotExecute = 126;  // the command exists but cannot be executed
inline constexpr int kExitNotFound = 127;       // the command does not exist

struct ContainerRunResult {
  // What to exit with: the process's exit code, 128 + its signal, or one of
  // the statuses above when it did not run to its end.
  int status = kExitOwnFailure;
  std::string error;           // one line for stderr; empty when all went well
  bool created = false, started = false, exited = false, removed = false;
  int exit_code = 0, signal = 0;  // when exited
  int interrupts_seen = 0;
  uint32_t pid = 0;            // in the guest
  uint64_t stdout_bytes = 0, stderr_bytes = 0;
  int stdout_last_byte = -1;   // the last byte copied to stdout_fd, -1: none
  // Nanoseconds. *_at_ns count from options.t0_ns; 0 when it did not happen.
  uint64_t connect_ns = 0, create_ns = 0, start_ns = 0;
  uint64_t first_output_at_ns = 0;  // first byte of stdout or stderr
  uint64_t first_line_at_ns = 0;    // first '\n' of stdout or stderr
  uint64_t exit_at_ns = 0;          // WaitProcess reported the exit
  uint64_t done_at_ns = 0;          // output drained, container removed
};

// Runs the container to its end. Never throws; an error is in the result.
ContainerRunResult RunContainerSession(const AgentConnector& connect,
                                       const ContainerRunOptions& options);

// The shell's status for a wait: exit code, or 128 + signal.
int ShellStatus(const agentpb::WaitProcessReply& wait);

// The agent's own text of an error from AgentClient ("CreateContainer: agent
// error NOT_FOUND: rootfs /x: No such file..." -> "rootfs /x: No such file...").
std::string AgentMessage(const Error& error);

}  // namespace kf
