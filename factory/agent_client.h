// A host client of the in-guest agent over a VM's agent.sock: the hybrid
// vsock handshake (`CONNECT 1024\n` / `OK <port>\n`), the agent's Ready
// frame, then one request and one response frame per call
// (docs/AGENT_PROTOCOL.md). Everything that arrives is checked: a frame of
// the wrong stream, type or kind, or an ErrorReply, is an error.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "factory/sandbox_protocol.h"
#include "proto/agent.pb.h"
#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

namespace agentpb = katafactory::agent::v1;

inline constexpr uint32_t kAgentPort = 1024;
inline constexpr size_t kIdentityEntropyBytes = 32;

struct Identity {
  std::string sandbox_id;
  std::string hostname;
  std::array<uint8_t, kIdentityEntropyBytes> entropy{};  // sent only, never read back
  uint64_t wall_clock_ns = 0;
  uint64_t identity_sets = 0;                             // read back only
};

// An OCI-style process for CreateContainer / ExecProcess (agent.proto's
// Process): args[0] is looked up in the env's PATH inside the container.
agentpb::Process MakeProcess(const std::vector<std::string>& args,
                             const std::vector<std::string>& env = {}, const std::string& cwd = "");

// Fresh identity for a clone: the id and hostname given, 32 bytes from
// getrandom(), and the host's wall clock.
Result<Identity> FreshIdentity(const std::string& sandbox_id);

class AgentClient {
 public:
  // Connects to the Unix socket at `uds_path` and does the handshake for
  // guest port `port`, then reads the agent's Ready frame.
  static Result<AgentClient> Connect(const std::string& uds_path, uint32_t port = kAgentPort,
                                     int timeout_ms = 10000);
  // The same over an already connected stream socket (a socketpair end
  // given to the device, as template creation does).
  static Result<AgentClient> Handshake(UniqueFd fd, uint32_t port = kAgentPort,
                                       int timeout_ms = 10000);
  // Over a stream that is already past the vsock handshake, where the agent
  // sends frames at once (kf-agent-linux --listen-unix, as tests run it):
  // reads only the Ready frame.
  static Result<AgentClient> Attach(UniqueFd fd, int timeout_ms = 10000);

  const agentpb::Ready& ready() const { return ready_; }
  uint32_t host_port() const { return host_port_; }
  int fd() const { return fd_.get(); }

  // One request, its response (an ErrorReply becomes an Error naming it;
  // its code stays in last_error_code() until the next call).
  Result<agentpb::Response> Call(const agentpb::Request& request);
  agentpb::ErrorCode last_error_code() const { return last_error_code_; }

  Result<uint64_t> Ping(uint64_t echo);  // returns pings served so far
  Result<uint64_t> SetIdentity(const Identity& id);  // returns identity_sets
  Result<Identity> GetIdentity();
  Result<agentpb::GetStatsReply> GetStats();
  Result<uint64_t> DirtyPages(uint64_t gpa, uint64_t pages, uint64_t value);
  Result<uint64_t> HashRange(uint64_t gpa, uint64_t bytes);
  Result<std::string> Random(uint32_t bytes);
  // Linux guests: up to max_bytes of the file at `path`, its size and DAX flag.
  Result<agentpb::ReadFileReply> ReadFile(const std::string& path, uint32_t max_bytes = 4096);

  // Containers (Linux guests; docs/AGENT_PROTOCOL.md "Containers"). A
  // process is (container id, exec id); exec id "" is the container's own.
  // Create/Start/Exec return the process's pid in the guest.
  Result<uint32_t> CreateContainer(const agentpb::CreateContainerRequest& request);
  Result<uint32_t> StartContainer(const std::string& container_id);
  Result<uint32_t> ExecProcess(const std::string& container_id, const std::string& exec_id,
                               const agentpb::Process& process);
  // exited == false: still running after timeout_ms (at most 5000).
  Result<agentpb::WaitProcessReply> WaitProcess(const std::string& container_id,
                                                const std::string& exec_id,
                                                uint32_t timeout_ms = 0);
  Status SignalProcess(const std::string& container_id, const std::string& exec_id, int signal);
  // Up to max_bytes buffered output, waiting up to wait_ms (at most 5000)
  // when there is none; eof once the stream closed and all of it was read.
  Result<agentpb::ReadStreamReply> ReadStdout(const std::string& container_id,
                                              const std::string& exec_id, uint32_t wait_ms = 0,
                                              uint32_t max_bytes = 4096);
  Result<agentpb::ReadStreamReply> ReadStderr(const std::string& container_id,
                                              const std::string& exec_id, uint32_t wait_ms = 0,
                                              uint32_t max_bytes = 4096);
  // Bytes the pipe took (at most 4096 a call; fewer when it is full).
  Result<uint32_t> WriteStdin(const std::string& container_id, const std::string& exec_id,
                              std::string_view data);
  Status CloseStdin(const std::string& container_id, const std::string& exec_id);
  Status RemoveContainer(const std::string& container_id);

 private:
  AgentClient(UniqueFd fd, int timeout_ms) : fd_(std::move(fd)), timeout_ms_(timeout_ms) {}
  Status SendAll(const void* data, size_t len);
  Status RecvAll(void* data, size_t len);
  Result<std::string> RecvLine();
  // Reads one frame; returns its payload and fills stream id.
  Result<std::string> RecvFrame(uint32_t* stream_id);
  // Reads the agent's first frame, which must be Ready on stream 0, into ready_.
  Status RecvReady();

  UniqueFd fd_;
  int timeout_ms_;
  uint32_t host_port_ = 0;
  uint32_t next_stream_ = 1;
  agentpb::ErrorCode last_error_code_ = agentpb::ERROR_CODE_UNSPECIFIED;
  agentpb::Ready ready_;
};

struct CloneHandle;
// Waits for a new clone's agent.sock to accept clients (the VMM's event on
// the control socket), then connects to its agent: the first step after
// Zygote::Clone(). `timings`, when given, gets the VMM's start-up timings
// that came with the event.
Result<AgentClient> ConnectAgent(const CloneHandle& clone, int timeout_ms = 30000,
                                 SandboxTimings* timings = nullptr);

}  // namespace kf
