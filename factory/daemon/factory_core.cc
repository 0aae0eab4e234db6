#include "factory/daemon/factory_core.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "factory/bare_template.h"
#include "factory/clock.h"
#include "factory/daemon/host_stats.h"
#include "factory/daemon/run_dir.h"
#include "factory/linux_template.h"
#include "agent/bare/bare_image.h"
#include "memshare/accounting.h"
#include "snapshot/template_state.h"

namespace kf::daemon {

namespace {

using grpc::StatusCode;

constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelKey = 63;
constexpr size_t kMaxLabelValue = 256;
constexpr uint32_t kMaxMemMib = 65536;

grpc::Status Err(StatusCode code, const std::string& msg) { return grpc::Status(code, msg); }

// The sandbox's phases as Timings' sandbox_* fields (0 where a VMM sent no
// timings).
void SetSandboxTimings(const SandboxTimings& t, pb::Timings* out) {
  const SandboxPhases p = PhasesOf(t);
  out->set_sandbox_fork_ns(p.fork);
  out->set_sandbox_map_ns(p.map);
  out->set_sandbox_create_vm_ns(p.create_vm);
  out->set_sandbox_restore_ns(p.restore);
}

std::string NewVmId() {
  uint8_t b[6];
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    const uint64_t t = MonotonicNs();
    std::memcpy(b, &t, sizeof b);
  }
  char out[3 + 12 + 1];
  std::snprintf(out, sizeof out, "vm-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
                b[5]);
  return out;
}

grpc::Status CheckLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.size() > kMaxLabels)
    return Err(StatusCode::INVALID_ARGUMENT, "more than " + std::to_string(kMaxLabels) + " labels");
  for (const auto& [k, v] : labels) {
    if (k.empty() || k.size() > kMaxLabelKey)
      return Err(StatusCode::INVALID_ARGUMENT,
                 "label key '" + k + "' must be 1.." + std::to_string(kMaxLabelKey) + " bytes");
    if (v.size() > kMaxLabelValue)
      return Err(StatusCode::INVALID_ARGUMENT,
                 "label '" + k + "' value longer than " + std::to_string(kMaxLabelValue) + " bytes");
  }
  return grpc::Status::OK;
}

grpc::Status CheckName(const std::string& name) {
  if (name.empty()) return Err(StatusCode::INVALID_ARGUMENT, "template name is empty");
  if (!ValidTemplateName(name))
    return Err(StatusCode::INVALID_ARGUMENT,
               "template name '" + name + "' is not [A-Za-z0-9_.-]{1,64} (or starts with '.')");
  return grpc::Status::OK;
}

pb::GuestKind KindToProto(const std::string& kind) {
  if (kind == kGuestKindBare) return pb::GUEST_KIND_BARE;
  if (kind == kGuestKindLinux) return pb::GUEST_KIND_LINUX;
  return pb::GUEST_KIND_UNSPECIFIED;
}

// What every zygote's command line carries: the run dir (how a restarted
// daemon recognises leftovers) and the jail its sandboxes enter.
std::vector<std::string> ZygoteArgs(const DaemonOptions& o) {
  std::vector<std::string> args = {"--run-dir", o.run_dir, "--seccomp",
                                   SeccompModeName(o.jail.seccomp)};
  if (!o.jail.drop_capabilities) args.push_back("--keep-capabilities");
  return args;
}

}  // namespace

Vm::~Vm() {
  agent.reset();
  handle.control.Reset();  // an idle VMM exits on EOF
  handle.pidfd.Reset();
  if (cgroups) cgroups->Remove(id);
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  if (uids) uids->Free(uid);
}

FactoryCore::FactoryCore(DaemonOptions options)
    : options_(std::move(options)),
      registry_(options_.state_dir, options_.external_templates),
      zygotes_(options_.zygote_exe, ZygoteArgs(options_)),
      admission_(AdmissionLimits{options_.max_live_vms, options_.mem_floor_bytes}),
      watcher_([this](const std::string& id) { OnExit(id); }) {}

FactoryCore::~FactoryCore() { Shutdown(); }

void FactoryCore::Log(LogSeverity severity, const std::string& msg, const std::string& vm,
                      const std::string& tmpl) const {
  if (options_.hooks.log) return options_.hooks.log(severity, msg, vm, tmpl);
  static const char* kNames[] = {"debug", "info", "warn", "error"};
  std::string line = std::string("kata-factory daemon: ") + kNames[int(severity)] + ": " + msg;
  if (!vm.empty()) line += " (vm " + vm + ")";
  if (!tmpl.empty()) line += " (template " + tmpl + ")";
  line += "\n";
  (void)!::write(2, line.data(), line.size());
}

Status FactoryCore::Start() {
  start_ns_ = MonotonicNs();
  RETURN_IF_ERROR(MakeDirs(options_.run_dir));
  ASSIGN_OR_RETURN(run_lock_, LockFile(options_.run_dir + "/daemon.lock"));
  for (const auto& line : CleanLeftovers(options_.run_dir)) Log(LogSeverity::kWarn, line);
  ASSIGN_OR_RETURN(SandboxCgroups cgroups, SandboxCgroups::Setup(options_.cgroup));
  if (cgroups.enabled()) {
    for (const auto& line : cgroups.RemoveEmpty()) Log(LogSeverity::kWarn, line);
    Log(LogSeverity::kInfo, "sandbox cgroups: " + cgroups.description() + " (pids.max " +
                                std::to_string(options_.sandbox_pids_max) + ", memory.max guest + " +
                                std::to_string(options_.sandbox_memory_headroom_bytes >> 20) +
                                " MiB)");
    cgroups_ = std::make_shared<const SandboxCgroups>(std::move(cgroups));
  } else {
    Log(options_.cgroup == CgroupMode::kOff ? LogSeverity::kInfo : LogSeverity::kWarn,
        "sandboxes run without their own cgroup (no memory.max, pids.max): " +
            cgroups.description());
  }
  ASSIGN_OR_RETURN(SandboxUids uids, SandboxUids::Setup(options_.sandbox_uids));
  if (uids.enabled()) {
    Log(LogSeverity::kInfo, "sandbox uids: one per sandbox from " + uids.description());
    uids_ = std::make_shared<SandboxUids>(std::move(uids));
  } else {
    Log(options_.sandbox_uids.mode == SandboxUidSpec::kOff ? LogSeverity::kInfo : LogSeverity::kWarn,
        "sandboxes share the daemon's user: " + uids.description());
  }
  Log(LogSeverity::kInfo, std::string("sandbox jail: seccomp ") +
                              SeccompModeName(options_.jail.seccomp) + ", capabilities " +
                              (options_.jail.drop_capabilities ? "dropped" : "kept"));
  RETURN_IF_ERROR(MakeDirs(options_.run_dir + "/vms"));
  RETURN_IF_ERROR(registry_.Init());
  kvm_unavailable_ = Kvm::UnavailableReason();
  if (!kvm_unavailable_.empty())
    Log(LogSeverity::kWarn, "KVM is not usable here, no VM can be cloned: " + kvm_unavailable_);
  {
    std::lock_guard lock(mu_);
    for (const auto& t : registry_.List()) {
      if (!t.error.empty()) {
        Log(LogSeverity::kWarn, "skipping template: " + t.error, "", t.name);
        continue;
      }
      ConfigurePoolLocked(t.name);
    }
  }
  RETURN_IF_ERROR(watcher_.Start());
  {
    std::lock_guard lock(mu_);
    started_ = true;
  }
  refill_thread_ = std::thread([this] { RefillLoop(); });
  return Status::Ok();
}

void FactoryCore::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  refill_cv_.notify_all();
  if (refill_thread_.joinable()) refill_thread_.join();
  events_.Close();
  std::map<std::string, std::shared_ptr<Vm>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(vms_);
    for (auto& [id, vm] : all) watcher_.Unwatch(id);
  }
  // Close every control socket first, so the VMMs exit in parallel.
  for (auto& [id, vm] : all) {
    vm->agent.reset();
    vm->handle.control.Reset();
  }
  for (auto& [id, vm] : all) {
    Status s = ReleaseClone(vm->handle, options_.release_grace_ms);
    if (!s.ok()) Log(LogSeverity::kWarn, s.error().message(), id, vm->tmpl);
  }
  if (!all.empty()) Log(LogSeverity::kInfo, "released " + std::to_string(all.size()) + " VMs");
  all.clear();
  zygotes_.StopAll();
  watcher_.Stop();
  run_lock_.Reset();
}

std::optional<FactoryCore::TemplateInfo> FactoryCore::LookupTemplate(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    if (auto it = templates_.find(name); it != templates_.end()) return it->second;
  }
  auto entry = registry_.Find(name);
  if (!entry) return std::nullopt;
  TemplateRegistry::Describe(*entry);
  if (!entry->error.empty()) return std::nullopt;
  TemplateInfo info{entry->dir, entry->guest_kind, entry->mem_bytes};
  std::lock_guard lock(mu_);
  templates_[name] = info;
  if (!pool_.Has(name)) ConfigurePoolLocked(name);
  return info;
}

PoolOptions FactoryCore::PoolFor(const std::string& tmpl) const {
  auto it = options_.pools.find(tmpl);
  return it != options_.pools.end() ? it->second : options_.default_pool;
}

void FactoryCore::ConfigurePoolLocked(const std::string& tmpl) {
  const PoolOptions p = PoolFor(tmpl);
  pool_.Configure(tmpl, p.size, p.refill_per_second);
  refill_cv_.notify_all();
}

uint64_t FactoryCore::LiveLocked() const {
  uint64_t live = vms_.size() + cloning_on_demand_;
  for (const auto& t : pool_.Templates()) live += pool_.Counters(t).cloning;
  return live;
}

Result<std::shared_ptr<Vm>> FactoryCore::CloneVm(const std::string& tmpl, const TemplateInfo& info,
                                                 uint64_t deadline_ns) {
  auto vm = std::make_shared<Vm>();
  vm->id = NewVmId();
  vm->tmpl = tmpl;
  const std::string dir = options_.run_dir + "/vms/" + vm->id;
  if (::mkdir(dir.c_str(), 0700) < 0) return Error::Sys("mkdir " + dir);
  vm->dir = dir;
  SandboxOptions o;
  if (uids_) {
    auto uid = uids_->Allocate();
    if (!uid)
      return Error("every sandbox uid of " + uids_->description() + " is in use (sandbox_uids)",
                   EUSERS);
    vm->uids = uids_;
    vm->uid = *uid;
    o.jail.uid = *uid;
    // Its VMM may reach listeners in its own directory (guest-initiated
    // streams), no one else's.
    if (::chown(dir.c_str(), 0, *uid) < 0 || ::chmod(dir.c_str(), 0750) < 0)
      return Error::Sys("giving " + dir + " to sandbox gid " + std::to_string(*uid));
  }
  vm->created_unix_ns = static_cast<int64_t>(RealtimeNs());
  o.mergeable = PoolFor(tmpl).mergeable;
  o.agent_sock = dir + "/agent.sock";
  UniqueFd cgroup;
  if (cgroups_) {
    CgroupLimits limits;
    limits.memory_max_bytes = info.mem_bytes + options_.sandbox_memory_headroom_bytes;
    limits.pids_max = options_.sandbox_pids_max;
    ASSIGN_OR_RETURN(cgroup, cgroups_->Create(vm->id, limits));
    vm->cgroups = cgroups_;
    o.cgroup_fd = cgroup.get();
  }
  const uint64_t t0 = MonotonicNs();
  ASSIGN_OR_RETURN(vm->handle, zygotes_.Clone(tmpl, info.dir, o));
  cgroup.Reset();
  int timeout_ms = options_.clone_timeout_ms;
  if (deadline_ns != kNoDeadline) {
    const uint64_t now = MonotonicNs();
    const uint64_t left_ms = deadline_ns > now ? (deadline_ns - now) / 1000000 : 0;
    timeout_ms = static_cast<int>(std::clamp<uint64_t>(left_ms, 1, timeout_ms));
  }
  SandboxTimings st;
  auto agent = ConnectAgent(vm->handle, timeout_ms, &st);
  Status failed;
  if (!agent.ok()) {
    failed = agent.error().Context("waiting for the agent");
  } else if (auto ping = agent->Ping(1); !ping.ok()) {
    failed = ping.error().Context("first Ping");
  }
  if (!failed.ok()) {
    (void)ReleaseClone(vm->handle, options_.release_grace_ms);
    return failed.error();
  }
  vm->agent = std::move(*agent);
  vm->timings.set_clone_ns(MonotonicNs() - t0);
  SetSandboxTimings(st, &vm->timings);
  if (info.guest_kind == kGuestKindLinux) vm->console_socket = dir + "/console.sock";
  if (options_.hooks.clone) options_.hooks.clone(tmpl, vm->timings.clone_ns() / 1e9);
  return vm;
}

bool FactoryCore::AddLocked(const std::shared_ptr<Vm>& vm) {
  if (stopping_) return false;
  if (Status s = watcher_.Watch(vm->handle.pidfd.get(), vm->id); !s.ok()) {
    Log(LogSeverity::kError, s.error().message(), vm->id, vm->tmpl);
    return false;
  }
  vms_[vm->id] = vm;
  return true;
}

std::shared_ptr<Vm> FactoryCore::DetachLocked(const std::string& id) {
  auto it = vms_.find(id);
  if (it == vms_.end()) return nullptr;
  auto vm = it->second;
  vms_.erase(it);
  pool_.Erase(vm->tmpl, id);
  watcher_.Unwatch(id);
  return vm;
}

std::shared_ptr<Vm> FactoryCore::Detach(const std::string& id) {
  std::lock_guard lock(mu_);
  return DetachLocked(id);
}

void FactoryCore::Release(const std::shared_ptr<Vm>& vm, const std::string& reason) {
  // Only the handle's fds: a GetVM may still be using vm->agent (a VM
  // deleted with its template mid hand-out); ~Vm closes it.
  Status s = ReleaseClone(vm->handle, options_.release_grace_ms);
  if (!s.ok()) Log(LogSeverity::kWarn, s.error().message(), vm->id, vm->tmpl);
  Publish(pb::Event::TYPE_VM_RELEASED, *vm, pb::VM_STATE_UNSPECIFIED, reason);
  Log(LogSeverity::kInfo, "vm released: " + reason, vm->id, vm->tmpl);
  refill_cv_.notify_all();
}

void FactoryCore::OnExit(const std::string& id) {
  pb::VMState state;
  std::shared_ptr<Vm> vm;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    state = it->second->state;
    vm = DetachLocked(id);
  }
  Log(LogSeverity::kWarn, "vm died: its VMM process exited", id, vm->tmpl);
  Publish(pb::Event::TYPE_VM_DIED, *vm, state, "VMM process " + std::to_string(vm->handle.pid) +
                                                   " exited");
  refill_cv_.notify_all();
}

void FactoryCore::Publish(pb::Event::Type type, const Vm& vm, pb::VMState state,
                          const std::string& reason) {
  pb::Event e;
  e.set_type(type);
  e.set_vm_id(vm.id);
  e.set_template_(vm.tmpl);
  e.set_pid(vm.handle.pid);
  e.set_time_unix_ns(static_cast<int64_t>(RealtimeNs()));
  e.set_reason(reason);
  e.set_state(state);
  events_.Publish(e);
}

void FactoryCore::ToProto(const Vm& vm, pb::VM* out) {
  out->set_id(vm.id);
  out->set_template_(vm.tmpl);
  out->set_pid(vm.handle.pid);
  out->set_agent_socket(vm.handle.agent_sock);
  out->set_console_socket(vm.console_socket);
  out->set_state(vm.state);
  out->mutable_labels()->insert(vm.labels.begin(), vm.labels.end());
  out->set_created_unix_ns(vm.created_unix_ns);
  out->set_leased_unix_ns(vm.leased_unix_ns);
  out->set_lease_expires_unix_ns(vm.lease_expires_unix_ns);
  out->set_sandbox_uid(vm.uid);
  *out->mutable_timings() = vm.timings;
}

// ---- GetVM ----------------------------------------------------------------

grpc::Status FactoryCore::GetVm(const pb::GetVMRequest& req, uint64_t deadline_ns,
                                pb::GetVMResponse* resp) {
  const uint64_t t0 = MonotonicNs();
  const std::string& name = req.template_();
  if (auto s = CheckName(name); !s.ok()) return s;
  if (auto s = CheckLabels(req.labels()); !s.ok()) return s;
  if (t0 >= deadline_ns) return Err(StatusCode::DEADLINE_EXCEEDED, "deadline already passed");
  auto info = LookupTemplate(name);
  if (!info) return Err(StatusCode::NOT_FOUND, "no template named '" + name + "'");

  // A pooled VM that fails its hand-out (died, agent gone) is dropped and
  // the next one tried; then a clone on demand.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::shared_ptr<Vm> vm;
    {
      std::lock_guard lock(mu_);
      if (!started_ || stopping_) return Err(StatusCode::UNAVAILABLE, "the daemon is draining");
      while (auto id = pool_.Take(name)) {
        if (auto it = vms_.find(*id); it != vms_.end()) {
          vm = it->second;
          break;
        }
      }
      refill_cv_.notify_all();  // the pool is lower now
    }
    if (!vm) break;
    grpc::Status s = HandOut(vm, req, t0, true, resp);
    if (s.ok()) return s;
    Log(LogSeverity::kWarn, "pooled VM failed at hand-out: " + s.error_message(), vm->id, name);
    if (auto gone = Detach(vm->id)) Release(gone, "failed at hand-out");
  }

  {
    std::lock_guard lock(mu_);
    if (stopping_) return Err(StatusCode::UNAVAILABLE, "the daemon is draining");
    const std::string refusal = admission_.Refusal(LiveLocked());
    if (!refusal.empty()) return Err(StatusCode::RESOURCE_EXHAUSTED, refusal);
    // Without KVM a clone cannot start: say so now, not at the deadline.
    if (!kvm_unavailable_.empty())
      return Err(StatusCode::FAILED_PRECONDITION, "KVM is not usable here: " + kvm_unavailable_);
    ++cloning_on_demand_;
  }
  auto cloned = CloneVm(name, *info, deadline_ns);
  std::shared_ptr<Vm> vm;
  bool added = false;
  {
    std::lock_guard lock(mu_);
    --cloning_on_demand_;
    if (cloned.ok()) {
      vm = *cloned;
      added = AddLocked(vm);
    }
  }
  if (!cloned.ok()) {
    const std::string msg = "cloning " + name + ": " + cloned.error().message();
    Log(LogSeverity::kError, msg, "", name);
    if (MonotonicNs() >= deadline_ns) return Err(StatusCode::DEADLINE_EXCEEDED, msg);
    if (cloned.error().sys_errno() == EUSERS) return Err(StatusCode::RESOURCE_EXHAUSTED, msg);
    if (!kvm_unavailable_.empty())
      return Err(StatusCode::FAILED_PRECONDITION, "KVM is not usable here: " + kvm_unavailable_);
    return Err(StatusCode::INTERNAL, msg);
  }
  if (!added) {
    (void)ReleaseClone(vm->handle, options_.release_grace_ms);
    return Err(StatusCode::UNAVAILABLE, "the daemon is draining");
  }
  Publish(pb::Event::TYPE_VM_READY, *vm, pb::VM_STATE_LEASED, "cloned on demand");
  if (MonotonicNs() >= deadline_ns) {
    if (auto gone = Detach(vm->id)) Release(gone, "GetVM deadline passed while cloning");
    return Err(StatusCode::DEADLINE_EXCEEDED, "the clone was ready after the deadline");
  }
  grpc::Status s = HandOut(vm, req, t0, false, resp);
  if (!s.ok()) {
    if (auto gone = Detach(vm->id)) Release(gone, "failed at hand-out");
  }
  return s;
}

grpc::Status FactoryCore::HandOut(const std::shared_ptr<Vm>& vm, const pb::GetVMRequest& req,
                                  uint64_t t0, bool pool_hit, pb::GetVMResponse* resp) {
  const uint64_t t_identity = MonotonicNs();
  if (!vm->agent) return Err(StatusCode::INTERNAL, "no agent connection");
  auto identity = FreshIdentity(vm->id);
  if (!identity.ok()) return Err(StatusCode::INTERNAL, identity.error().message());
  auto set = vm->agent->SetIdentity(*identity);
  if (!set.ok()) return Err(StatusCode::UNAVAILABLE, "SetIdentity: " + set.error().message());
  const uint64_t identity_ns = MonotonicNs() - t_identity;
  vm->agent.reset();  // agent.sock is the client's from now on
  const uint32_t lease = req.lease_seconds() ? req.lease_seconds() : options_.default_lease_seconds;
  {
    std::lock_guard lock(mu_);
    if (!vms_.count(vm->id)) return Err(StatusCode::UNAVAILABLE, "the VM died during hand-out");
    vm->state = pb::VM_STATE_LEASED;
    vm->labels.insert(req.labels().begin(), req.labels().end());
    vm->leased_unix_ns = static_cast<int64_t>(RealtimeNs());
    if (lease > 0) {
      vm->lease_deadline_ns = MonotonicNs() + uint64_t(lease) * 1000000000ull;
      vm->lease_expires_unix_ns = vm->leased_unix_ns + int64_t(lease) * 1000000000ll;
    }
    if (pool_hit) vm->timings.set_clone_ns(0);
    vm->timings.set_identity_ns(identity_ns);
    vm->timings.set_total_ns(MonotonicNs() - t0);
    ToProto(*vm, resp->mutable_vm());
    resp->set_pool_hit(pool_hit);
  }
  Log(LogSeverity::kInfo, pool_hit ? "vm handed out (pool hit)" : "vm handed out (cloned)",
      vm->id, vm->tmpl);
  if (options_.hooks.get_vm)
    options_.hooks.get_vm(vm->tmpl, resp->vm().timings().total_ns() / 1e9, pool_hit);
  return grpc::Status::OK;
}

// ---- Release, leases, listing ----------------------------------------------

grpc::Status FactoryCore::ReleaseVm(const pb::ReleaseVMRequest& req) {
  if (req.id().empty()) return Err(StatusCode::INVALID_ARGUMENT, "VM id is empty");
  std::shared_ptr<Vm> vm;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(req.id());
    if (it == vms_.end() || it->second->state != pb::VM_STATE_LEASED)
      return Err(StatusCode::NOT_FOUND, "no leased VM with id '" + req.id() + "'");
    vm = DetachLocked(req.id());
  }
  Release(vm, "released by a client");
  return grpc::Status::OK;
}

grpc::Status FactoryCore::RenewLease(const pb::RenewLeaseRequest& req,
                                     pb::RenewLeaseResponse* resp) {
  if (req.id().empty()) return Err(StatusCode::INVALID_ARGUMENT, "VM id is empty");
  std::lock_guard lock(mu_);
  auto it = vms_.find(req.id());
  if (it == vms_.end() || it->second->state != pb::VM_STATE_LEASED)
    return Err(StatusCode::NOT_FOUND, "no leased VM with id '" + req.id() + "'");
  Vm& vm = *it->second;
  if (req.lease_seconds() == 0) {
    vm.lease_deadline_ns = 0;
    vm.lease_expires_unix_ns = 0;
  } else {
    vm.lease_deadline_ns = MonotonicNs() + uint64_t(req.lease_seconds()) * 1000000000ull;
    vm.lease_expires_unix_ns =
        static_cast<int64_t>(RealtimeNs()) + int64_t(req.lease_seconds()) * 1000000000ll;
  }
  resp->set_lease_expires_unix_ns(vm.lease_expires_unix_ns);
  refill_cv_.notify_all();
  return grpc::Status::OK;
}

grpc::Status FactoryCore::ListVms(const pb::ListVMsRequest& req, pb::ListVMsResponse* resp) {
  std::lock_guard lock(mu_);
  for (const auto& [id, vm] : vms_) {
    if (!req.template_().empty() && vm->tmpl != req.template_()) continue;
    if (vm->state != pb::VM_STATE_LEASED && !req.include_pool()) continue;
    ToProto(*vm, resp->add_vms());
  }
  return grpc::Status::OK;
}

grpc::Status FactoryCore::GetStatus(pb::StatusResponse* resp) {
  resp->set_version("0.1.0");
  resp->set_uptime_ns(MonotonicNs() - start_ns_);
  resp->set_socket(options_.socket);
  resp->set_run_dir(options_.run_dir);
  resp->set_state_dir(options_.state_dir);
  resp->set_kvm_unavailable(kvm_unavailable_);
  if (options_.max_live_vms) resp->set_max_vms(*options_.max_live_vms);
  resp->set_mem_floor_bytes(options_.mem_floor_bytes);
  if (auto avail = ReadMemAvailable(); avail.ok()) resp->set_mem_available_bytes(*avail);
  const KsmFigures ksm = ReadKsm();
  resp->mutable_ksm()->set_available(ksm.available);
  resp->mutable_ksm()->set_run(ksm.run);
  resp->mutable_ksm()->set_pages_shared(ksm.pages_shared);
  resp->mutable_ksm()->set_pages_sharing(ksm.pages_sharing);
  std::lock_guard lock(mu_);
  resp->set_live_vms(static_cast<uint32_t>(LiveLocked()));
  std::map<std::string, uint32_t> leased;
  for (const auto& [id, vm] : vms_)
    if (vm->state == pb::VM_STATE_LEASED) ++leased[vm->tmpl];
  for (const auto& name : pool_.Templates()) {
    const PoolCounters c = pool_.Counters(name);
    auto* p = resp->add_pools();
    p->set_template_(name);
    p->set_ready(c.ready);
    p->set_target(c.target);
    p->set_cloning(c.cloning);
    p->set_leased(leased[name]);
    p->set_clones_total(c.clones_total);
    p->set_clone_failures_total(c.failures_total);
    p->set_last_error(c.last_error);
  }
  return grpc::Status::OK;
}

// ---- Templates ----------------------------------------------------------------

grpc::Status FactoryCore::CreateTemplate(const pb::CreateTemplateRequest& req,
                                         pb::CreateTemplateResponse* resp) {
  const std::string& name = req.name();
  if (auto s = CheckName(name); !s.ok()) return s;
  const bool bare = req.guest() == pb::GUEST_KIND_BARE;
  if (!bare && req.guest() != pb::GUEST_KIND_LINUX)
    return Err(StatusCode::INVALID_ARGUMENT,
               "guest kind " + std::to_string(req.guest()) + ": want GUEST_KIND_BARE or "
               "GUEST_KIND_LINUX");
  const uint32_t mem_mib = req.mem_mib() ? req.mem_mib() : (bare ? 128 : 256);
  const uint32_t min_mib = bare ? 16 : 64;
  if (mem_mib < min_mib || mem_mib > kMaxMemMib)
    return Err(StatusCode::INVALID_ARGUMENT, "mem_mib " + std::to_string(mem_mib) + ": want " +
                                                 std::to_string(min_mib) + ".." +
                                                 std::to_string(kMaxMemMib));
  const uint32_t init_mib = req.init_mib() ? req.init_mib() : std::min<uint32_t>(64, mem_mib / 2);
  if (bare && init_mib >= mem_mib)
    return Err(StatusCode::INVALID_ARGUMENT, "init_mib " + std::to_string(init_mib) +
                                                 " must be below mem_mib " + std::to_string(mem_mib));
  if (bare && (!req.kernel().empty() || !req.initrd().empty() || !req.cmdline().empty()))
    return Err(StatusCode::INVALID_ARGUMENT, "kernel, initrd and cmdline are for linux guests");
  if (!bare && req.init_mib())
    return Err(StatusCode::INVALID_ARGUMENT, "init_mib is for bare guests");
  if (registry_.Find(name))
    return Err(StatusCode::ALREADY_EXISTS, "template '" + name + "' exists");
  if (!registry_.Reserve(name))
    return Err(StatusCode::ALREADY_EXISTS, "template '" + name + "' is being created or is "
                                           "configured");
  struct Unreserve {
    TemplateRegistry& r;
    const std::string& n;
    ~Unreserve() { r.Unreserve(n); }
  } unreserve{registry_, name};
  if (!kvm_unavailable_.empty())
    return Err(StatusCode::FAILED_PRECONDITION, "KVM is not usable here: " + kvm_unavailable_);
  auto kvm = Kvm::Open();
  if (!kvm.ok()) return Err(StatusCode::FAILED_PRECONDITION, kvm.error().message());
  const std::string dir = registry_.DirFor(name);
  Log(LogSeverity::kInfo, "creating template", "", name);
  uint64_t boot_ns = 0;
  if (bare) {
    BareTemplateOptions o;
    o.mem_bytes = uint64_t(mem_mib) << 20;
    o.init_bytes = uint64_t(init_mib) << 20;
    auto r = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), dir);
    if (!r.ok()) return Err(StatusCode::INTERNAL, r.error().message());
    boot_ns = r->boot_ns;
  } else {
    LinuxTemplateOptions o;
    const std::string& g = options_.guest_dir;
    o.kernel_path = !req.kernel().empty() ? req.kernel() : (g.empty() ? "" : g + "/vmlinuz");
    o.initrd_path = !req.initrd().empty() ? req.initrd()
                                          : (g.empty() ? "" : g + "/initramfs.cpio.gz");
    o.cmdline = req.cmdline();
    o.mem_bytes = uint64_t(mem_mib) << 20;
    for (const std::string* path : {&o.kernel_path, &o.initrd_path})
      if (path->empty() || ::access(path->c_str(), R_OK) != 0)
        return Err(StatusCode::FAILED_PRECONDITION,
                   "linux guest image '" + *path + "' is not readable (build it with "
                   "scripts/build-guest; the daemon's --guest-dir)");
    auto r = CreateLinuxTemplate(*kvm, o, dir);
    if (!r.ok()) return Err(StatusCode::INTERNAL, r.error().message());
    boot_ns = r->boot_ns;
  }
  auto entry = registry_.Find(name);
  if (!entry) return Err(StatusCode::INTERNAL, "template written but not found at " + dir);
  TemplateRegistry::Describe(*entry);
  {
    std::lock_guard lock(mu_);
    templates_[name] = TemplateInfo{entry->dir, entry->guest_kind};
    ConfigurePoolLocked(name);
  }
  auto* t = resp->mutable_template_();
  t->set_name(name);
  t->set_guest(KindToProto(entry->guest_kind));
  t->set_mem_bytes(entry->mem_bytes);
  t->set_vcpus(entry->vcpus);
  t->set_dir(entry->dir);
  t->set_created_unix_ns(entry->created_unix_ns);
  t->set_pool_target(PoolFor(name).size);
  resp->set_boot_ns(boot_ns);
  Log(LogSeverity::kInfo, "template created in " + std::to_string(boot_ns / 1000000) + " ms", "",
      name);
  return grpc::Status::OK;
}

grpc::Status FactoryCore::ListTemplates(pb::ListTemplatesResponse* resp) {
  for (const auto& e : registry_.List()) {
    auto* t = resp->add_templates();
    t->set_name(e.name);
    t->set_guest(KindToProto(e.guest_kind));
    t->set_mem_bytes(e.mem_bytes);
    t->set_vcpus(e.vcpus);
    t->set_dir(e.dir);
    t->set_created_unix_ns(e.created_unix_ns);
    t->set_pool_target(PoolFor(e.name).size);
    t->set_error(e.error);
  }
  return grpc::Status::OK;
}

grpc::Status FactoryCore::DeleteTemplate(const pb::DeleteTemplateRequest& req) {
  const std::string& name = req.name();
  if (auto s = CheckName(name); !s.ok()) return s;
  auto entry = registry_.Find(name);
  if (!entry) return Err(StatusCode::NOT_FOUND, "no template named '" + name + "'");
  if (entry->external)
    return Err(StatusCode::FAILED_PRECONDITION,
               "template '" + name + "' comes from the configuration; remove it there");
  std::vector<std::shared_ptr<Vm>> doomed;
  {
    std::lock_guard lock(mu_);
    size_t leased = 0;
    for (const auto& [id, vm] : vms_)
      if (vm->tmpl == name && vm->state == pb::VM_STATE_LEASED) ++leased;
    if (leased > 0 && !req.force())
      return Err(StatusCode::FAILED_PRECONDITION,
                 std::to_string(leased) + " VMs of '" + name + "' are leased (release them, or "
                 "force)");
    pool_.Remove(name);
    templates_.erase(name);
    std::vector<std::string> ids;
    for (const auto& [id, vm] : vms_)
      if (vm->tmpl == name) ids.push_back(id);
    for (const auto& id : ids) doomed.push_back(DetachLocked(id));
  }
  for (auto& vm : doomed) Release(vm, "template deleted");
  zygotes_.Stop(name);
  if (Status s = registry_.Remove(name); !s.ok())
    return Err(StatusCode::INTERNAL, s.error().message());
  Log(LogSeverity::kInfo, "template deleted", "", name);
  return grpc::Status::OK;
}

// ---- The refill thread ---------------------------------------------------------

void FactoryCore::RefillLoop() {
  std::unique_lock lock(mu_);
  std::string last_refusal;
  while (!stopping_) {
    const uint64_t now = MonotonicNs();
    // Leases that ran out.
    std::vector<std::string> expired;
    uint64_t next_wake = now + 1000000000ull;
    for (const auto& [id, vm] : vms_) {
      if (vm->state != pb::VM_STATE_LEASED || vm->lease_deadline_ns == 0) continue;
      if (vm->lease_deadline_ns <= now) expired.push_back(id);
      else next_wake = std::min(next_wake, vm->lease_deadline_ns);
    }
    if (!expired.empty()) {
      std::vector<std::shared_ptr<Vm>> vms;
      for (const auto& id : expired) vms.push_back(DetachLocked(id));
      lock.unlock();
      for (auto& vm : vms) Release(vm, "lease expired");
      lock.lock();
      continue;
    }
    if (auto tmpl = pool_.NextRefill(now)) {
      const std::string refusal = admission_.Refusal(LiveLocked());
      if (refusal.empty()) {
        last_refusal.clear();
        RefillOne(*tmpl, lock);
        continue;
      }
      if (refusal != last_refusal) Log(LogSeverity::kInfo, "pool refill held: " + refusal);
      last_refusal = refusal;
    } else if (auto t = pool_.NextRefillTime()) {
      next_wake = std::min<uint64_t>(next_wake, std::max<uint64_t>(*t, now + 1000000));
    }
    refill_cv_.wait_for(lock, std::chrono::nanoseconds(next_wake - now));
  }
}

void FactoryCore::RefillOne(const std::string& tmpl, std::unique_lock<std::mutex>& lock) {
  const uint64_t now = MonotonicNs();
  pool_.BeginClone(tmpl, now);
  lock.unlock();
  auto info = LookupTemplate(tmpl);
  Result<std::shared_ptr<Vm>> cloned =
      info ? CloneVm(tmpl, *info, kNoDeadline) : Result<std::shared_ptr<Vm>>(Error("template gone"));
  lock.lock();
  if (!cloned.ok()) {
    pool_.CloneFailed(tmpl, MonotonicNs(), uint64_t(options_.refill_backoff_ms) * 1000000ull,
                      cloned.error().message());
    const PoolCounters c = pool_.Counters(tmpl);
    lock.unlock();
    // Every failure counts; the log says the first few and then every 100th.
    if (c.failures_total <= 3 || c.failures_total % 100 == 0)
      Log(LogSeverity::kError, "pool clone failed (" + std::to_string(c.failures_total) +
                                   " so far): " + cloned.error().message(), "", tmpl);
    lock.lock();
    return;
  }
  auto vm = *cloned;
  if (!pool_.CloneSucceeded(tmpl, vm->id) || !AddLocked(vm)) {
    pool_.Erase(tmpl, vm->id);
    lock.unlock();
    (void)ReleaseClone(vm->handle, options_.release_grace_ms);
    vm.reset();
    lock.lock();
    return;
  }
  lock.unlock();
  Publish(pb::Event::TYPE_VM_READY, *vm, pb::VM_STATE_POOLED, "pool refill");
  Log(LogSeverity::kDebug, "vm ready in the pool", vm->id, tmpl);
  lock.lock();
}

}  // namespace kf::daemon
