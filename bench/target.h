// Where the bench gets its VMs: a daemon it starts in this process (--self:
// temporary run and state directories, a template it creates, pool sizes
// chosen per mode) or a running daemon on a socket (its template, its pool
// sizes). Either way every VM comes through the gRPC API on a Unix socket,
// as a container runtime would get it, and its agent is reached over its
// agent.sock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "factory/agent_client.h"
#include "proto/factory.grpc.pb.h"
#include "vmm-glue/result.h"

namespace kf::daemon {
class Daemon;
}

namespace kf::bench {

namespace pb = katafactory::v1;

struct SelfOptions {
  std::string guest = "bare";  // "bare" or "linux"
  std::string template_name;   // default: the guest kind
  std::string guest_dir;       // linux: vmlinuz, initramfs.cpio.gz (rootfs.ext4)
  bool log_warnings = true;    // the daemon's warnings and errors on stderr
};

// How the daemon is set up for one mode (--self only; a running daemon
// keeps its own settings).
struct Phase {
  uint32_t pool_size = 0;
  std::optional<uint64_t> max_live_vms;  // nullopt: no cap
  uint64_t mem_floor_bytes = 256ull << 20;
};

// One VM handed out and answering: what the client measured and what the
// daemon reported.
struct VmSample {
  std::string id;
  int pid = -1;
  bool pool_hit = false;
  uint64_t get_ns = 0;   // GetVM call to its reply (client side)
  uint64_t ping_ns = 0;  // reply -> agent.sock connected, Ready read, first Ping answered
  pb::Timings daemon;  // the GetVM's timings as the daemon reported them
  std::optional<AgentClient> agent;  // kept open only when asked
};

// A failed call: the gRPC code (OK when it was not a gRPC failure) and why.
struct CallError {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
};

class Target {
 public:
  static Result<std::unique_ptr<Target>> StartSelf(const SelfOptions& options);
  static Result<std::unique_ptr<Target>> Connect(const std::string& socket,
                                                 const std::string& template_name);
  ~Target();

  // The deadline of every GetVM (default 60 s): a call past it is a failure.
  void set_get_vm_deadline_ms(int ms) { get_vm_deadline_ms_ = ms; }

  bool self() const { return self_; }
  const std::string& socket() const { return socket_; }
  const std::string& template_name() const { return template_; }
  const std::string& guest() const { return guest_; }  // "bare", "linux" or "unknown"
  uint64_t template_mem_bytes() const { return mem_bytes_; }
  uint32_t template_vcpus() const { return vcpus_; }
  uint64_t template_boot_ns() const { return boot_ns_; }  // --self: CreateTemplate's boot
  const std::string& root_dir() const { return root_; }

  // --self: restarts the daemon with the phase's pool size and admission
  // (the template and its directory stay). A running daemon: nothing.
  Status Configure(const Phase& phase);
  // The pool's target and ready count for the template.
  Result<pb::PoolStatus> Pool();
  // Waits until the pool holds its target of ready VMs (timeout: an error).
  Status WaitPoolFull(int timeout_ms);

  // A stub on its own channel (one per client thread).
  std::unique_ptr<pb::Factory::Stub> NewStub() const;
  pb::Factory::Stub& stub() { return *stub_; }

  // GetVM, then connect to the agent and Ping it. `keep_agent`: the agent
  // connection stays in the sample (else it is closed).
  std::optional<VmSample> GetAndPing(pb::Factory::Stub& stub, bool keep_agent, CallError* error);
  bool Release(pb::Factory::Stub& stub, const std::string& id, CallError* error);

 private:
  Target() = default;
  Status StartDaemon(const Phase& phase);
  Status FindTemplate();

  bool self_ = false;
  std::string root_, socket_, template_, guest_ = "unknown", guest_dir_;
  bool log_warnings_ = true;
  uint64_t mem_bytes_ = 0, boot_ns_ = 0;
  uint32_t vcpus_ = 0;
  int get_vm_deadline_ms_ = 60000;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<pb::Factory::Stub> stub_;
};

}  // namespace kf::bench
