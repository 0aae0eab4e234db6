// The daemon's core, free of gRPC transport: templates, one zygote per
// template, the warm pools and their refill thread, admission, the table of
// live VMs (watched through pidfds), leases, events. The gRPC service
// (factory_service.h) is a thin adapter over it; every method returns the
// gRPC status the API documents (docs/DAEMON.md), so the error paths are
// tested without a transport or KVM.
//
// Threads: callers (gRPC workers), the refill thread (pool clones, lease
// expiry) and the pid watcher thread (VM deaths). None of them ever fork():
// zygotes are posix_spawn()ed (zygote_set.h).
#pragma once

#include <grpcpp/support/status.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "factory/agent_client.h"
#include "factory/daemon/admission.h"
#include "factory/daemon/daemon_options.h"
#include "factory/daemon/event_bus.h"
#include "factory/daemon/pid_watcher.h"
#include "factory/daemon/template_registry.h"
#include "factory/daemon/warm_pool.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/sandbox_uids.h"
#include "factory/daemon/zygote_set.h"
#include "proto/factory.pb.h"
#include "vmm-glue/unique_fd.h"

namespace kf::daemon {

// One live VM. Its destructor closes what is left (agent connection,
// control socket: the VMM exits on that) and removes RUN/vms/<id>/.
struct Vm {
  ~Vm();
  std::string id, tmpl, dir;
  std::string console_socket;  // linux guests
  CloneHandle handle;
  // Its cgroup directory (kf-sandboxes/<id>), removed by the destructor;
  // null when sandbox cgroups are off.
  std::shared_ptr<const SandboxCgroups> cgroups;
  // Its own uid (and gid), handed back by the destructor; 0 and null when
  // sandbox uids are off.
  uint32_t uid = 0;
  std::shared_ptr<SandboxUids> uids;
  // The daemon's connection to the agent while the VM is pooled; closed at
  // hand-out, after SetIdentity, so agent.sock is the client's alone.
  std::optional<AgentClient> agent;
  // Guarded by FactoryCore::mu_ once the VM is in the table.
  pb::VMState state = pb::VM_STATE_POOLED;
  std::map<std::string, std::string> labels;
  int64_t created_unix_ns = 0, leased_unix_ns = 0, lease_expires_unix_ns = 0;
  uint64_t lease_deadline_ns = 0;  // CLOCK_MONOTONIC; 0 = none
  pb::Timings timings;
};

class FactoryCore {
 public:
  static constexpr uint64_t kNoDeadline = UINT64_MAX;

  explicit FactoryCore(DaemonOptions options);
  ~FactoryCore();

  // Locks RUN/daemon.lock, cleans what an earlier daemon left in RUN,
  // finds the templates, starts the pid watcher and the refill thread.
  Status Start();
  // Stops refilling, releases every VM (waiting for each VMM to exit),
  // stops the zygotes, ends event streams. Idempotent.
  void Shutdown();

  // `deadline_ns`: CLOCK_MONOTONIC, kNoDeadline for none.
  grpc::Status GetVm(const pb::GetVMRequest& req, uint64_t deadline_ns, pb::GetVMResponse* resp);
  grpc::Status ReleaseVm(const pb::ReleaseVMRequest& req);
  grpc::Status RenewLease(const pb::RenewLeaseRequest& req, pb::RenewLeaseResponse* resp);
  grpc::Status ListVms(const pb::ListVMsRequest& req, pb::ListVMsResponse* resp);
  grpc::Status GetStatus(pb::StatusResponse* resp);
  grpc::Status CreateTemplate(const pb::CreateTemplateRequest& req,
                              pb::CreateTemplateResponse* resp);
  grpc::Status ListTemplates(pb::ListTemplatesResponse* resp);
  grpc::Status DeleteTemplate(const pb::DeleteTemplateRequest& req);

  EventBus& events() { return events_; }
  const DaemonOptions& options() const { return options_; }
  void Log(LogSeverity severity, const std::string& msg, const std::string& vm = "",
           const std::string& tmpl = "") const;

 private:
  struct TemplateInfo {
    std::string dir;
    std::string guest_kind;
    uint64_t mem_bytes = 0;
  };
  std::optional<TemplateInfo> LookupTemplate(const std::string& name);
  PoolOptions PoolFor(const std::string& tmpl) const;
  void ConfigurePoolLocked(const std::string& tmpl);
  uint64_t LiveLocked() const;

  // Clones, waits for the agent, first Ping. No table entry yet.
  Result<std::shared_ptr<Vm>> CloneVm(const std::string& tmpl, const TemplateInfo& info,
                                      uint64_t deadline_ns);
  // Puts a cloned VM in the table and watches it; false if stopping.
  bool AddLocked(const std::shared_ptr<Vm>& vm);
  // Identity, lease, reply.
  grpc::Status HandOut(const std::shared_ptr<Vm>& vm, const pb::GetVMRequest& req, uint64_t t0,
                       bool pool_hit, pb::GetVMResponse* resp);
  // Out of the table and pool, unwatched; nullptr if it was not there.
  std::shared_ptr<Vm> Detach(const std::string& id);
  std::shared_ptr<Vm> DetachLocked(const std::string& id);
  // Stops a detached VM and waits for its VMM to exit; publishes `released`.
  void Release(const std::shared_ptr<Vm>& vm, const std::string& reason);
  void OnExit(const std::string& id);  // pid watcher thread
  void RefillLoop();
  void RefillOne(const std::string& tmpl, std::unique_lock<std::mutex>& lock);
  void Publish(pb::Event::Type type, const Vm& vm, pb::VMState state, const std::string& reason);
  static void ToProto(const Vm& vm, pb::VM* out);

  DaemonOptions options_;
  TemplateRegistry registry_;
  ZygoteSet zygotes_;
  Admission admission_;
  EventBus events_;
  PidWatcher watcher_;
  UniqueFd run_lock_;
  std::string kvm_unavailable_;
  // Set up by Start(); disabled (with the reason) where cgroup v2 cannot be used.
  std::shared_ptr<const SandboxCgroups> cgroups_;
  // Set up by Start(); disabled (with the reason) where ids cannot be switched.
  std::shared_ptr<SandboxUids> uids_;
  uint64_t start_ns_ = 0;

  mutable std::mutex mu_;
  std::condition_variable refill_cv_;
  bool started_ = false, stopping_ = false;
  std::map<std::string, std::shared_ptr<Vm>> vms_;  // every live VM, by id
  std::map<std::string, TemplateInfo> templates_;   // looked up so far
  WarmPool pool_;
  uint64_t cloning_on_demand_ = 0;
  std::thread refill_thread_;
};

}  // namespace kf::daemon
