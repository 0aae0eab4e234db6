#include "bench/target.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "agent/bare/bare_image.h"
#include "factory/bare_template.h"
#include "factory/clock.h"
#include "factory/daemon/daemon_server.h"
#include "factory/linux_template.h"
#include "vmm-glue/kvm.h"

namespace kf::bench {

namespace {

constexpr int kCallDeadlineMs = 30000;

void SetDeadline(grpc::ClientContext& ctx, int ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

std::string GuestName(pb::GuestKind kind) {
  switch (kind) {
    case pb::GUEST_KIND_BARE:
      return "bare";
    case pb::GUEST_KIND_LINUX:
      return "linux";
    default:
      return "unknown";
  }
}

Error RpcError(const std::string& what, const grpc::Status& s) {
  return Error(what + ": " + std::to_string(int(s.error_code())) + " " + s.error_message());
}

}  // namespace

Target::~Target() {
  stub_.reset();
  daemon_.reset();  // drains: every VM released, zygotes stopped
  if (self_ && !root_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
}

Result<std::unique_ptr<Target>> Target::StartSelf(const SelfOptions& o) {
  if (o.guest != "bare" && o.guest != "linux") return Error("--guest must be bare or linux");
  const std::string kvm_reason = Kvm::UnavailableReason();
  if (!kvm_reason.empty()) return Error("KVM is not usable here: " + kvm_reason);
  std::unique_ptr<Target> t(new Target());
  t->self_ = true;
  t->guest_ = o.guest;
  t->template_ = o.template_name.empty() ? o.guest : o.template_name;
  t->guest_dir_ = o.guest_dir;
  t->log_warnings_ = o.log_warnings;
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kf-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return Error::Sys("mkdtemp " + pattern);
  t->root_ = pattern;
  const std::string templates = t->root_ + "/state/templates";
  std::error_code ec;
  std::filesystem::create_directories(templates, ec);
  if (ec) return Error("mkdir " + templates + ": " + ec.message());
  const std::string dir = templates + "/" + t->template_;

  ASSIGN_OR_RETURN(Kvm kvm, Kvm::Open());
  if (o.guest == "bare") {
    // The benchmark template: 128 MiB, 64 MiB written at boot.
    BareTemplateOptions b;
    b.mem_bytes = 128ull << 20;
    b.init_bytes = 64ull << 20;
    auto boot = CreateBareTemplate(kvm, b, EmbeddedBareImage(), dir);
    if (!boot.ok()) return boot.error().Context("creating the bare template");
    t->boot_ns_ = boot->boot_ns;
    t->mem_bytes_ = b.mem_bytes;
  } else {
    LinuxTemplateOptions l;
    l.kernel_path = o.guest_dir + "/vmlinuz";
    l.initrd_path = o.guest_dir + "/initramfs.cpio.gz";
    const std::string rootfs = o.guest_dir + "/rootfs.ext4";
    if (::access(rootfs.c_str(), R_OK) == 0) l.rootfs_path = rootfs;
    for (const std::string* p : {&l.kernel_path, &l.initrd_path})
      if (::access(p->c_str(), R_OK) != 0)
        return Error(*p + ": not readable (build the guest with scripts/build-guest --out " +
                     o.guest_dir + ", or set $KF_GUEST_DIR)");
    auto boot = CreateLinuxTemplate(kvm, l, dir);
    if (!boot.ok()) return boot.error().Context("creating the linux template");
    t->boot_ns_ = boot->boot_ns;
    t->mem_bytes_ = l.mem_bytes;
  }
  t->socket_ = t->root_ + "/factory.sock";
  RETURN_IF_ERROR(t->StartDaemon(Phase{}));
  return t;
}

Result<std::unique_ptr<Target>> Target::Connect(const std::string& socket,
                                                const std::string& template_name) {
  std::unique_ptr<Target> t(new Target());
  t->socket_ = socket;
  t->template_ = template_name;
  t->stub_ = t->NewStub();
  RETURN_IF_ERROR(t->FindTemplate());
  return t;
}

Status Target::StartDaemon(const Phase& phase) {
  stub_.reset();
  daemon_.reset();
  daemon::DaemonOptions d;
  d.socket = socket_;
  d.run_dir = root_ + "/run";
  d.state_dir = root_ + "/state";
  d.guest_dir = guest_dir_;
  d.max_live_vms = phase.max_live_vms;
  d.mem_floor_bytes = phase.mem_floor_bytes;
  d.default_pool.size = phase.pool_size;
  d.default_pool.mergeable = true;
  const bool warn = log_warnings_;
  d.hooks.log = [warn](daemon::LogSeverity sev, const std::string& msg, const std::string& vm,
                       const std::string&) {
    if (!warn || sev == daemon::LogSeverity::kDebug || sev == daemon::LogSeverity::kInfo) return;
    const std::string line = std::string("\rbench: daemon ") +
                             (sev == daemon::LogSeverity::kWarn ? "warning: " : "error: ") + msg +
                             (vm.empty() ? "" : " [" + vm + "]") + "\n";
    std::fputs(line.c_str(), stderr);
  };
  auto started = daemon::Daemon::Start(d);
  if (!started.ok()) return started.error().Context("starting the in-process daemon");
  daemon_ = std::move(*started);
  stub_ = NewStub();
  return FindTemplate();
}

Status Target::FindTemplate() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallDeadlineMs);
  pb::ListTemplatesResponse resp;
  grpc::Status s = stub_->ListTemplates(&ctx, pb::ListTemplatesRequest(), &resp);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
      return Error("no daemon answers on " + socket_ + " (" + s.error_message() +
                   "); start one, or use --self");
    return RpcError("ListTemplates on " + socket_, s);
  }
  const pb::Template* found = nullptr;
  std::string names;
  for (const auto& t : resp.templates()) {
    names += (names.empty() ? "" : ", ") + t.name();
    if (template_.empty() ? resp.templates_size() == 1 : t.name() == template_) found = &t;
  }
  if (found == nullptr) {
    if (template_.empty())
      return Error("the daemon on " + socket_ + " has " +
                   (names.empty() ? std::string("no template") : "templates " + names) +
                   ": name one with --template");
    return Error("the daemon on " + socket_ + " has no template '" + template_ + "'" +
                 (names.empty() ? std::string() : " (it has " + names + ")"));
  }
  if (!found->error().empty())
    return Error("template '" + found->name() + "' cannot be loaded: " + found->error());
  template_ = found->name();
  if (!self_) guest_ = GuestName(found->guest());
  mem_bytes_ = found->mem_bytes();
  vcpus_ = found->vcpus();
  return Status::Ok();
}

Status Target::Configure(const Phase& phase) {
  if (!self_) return Status::Ok();
  return StartDaemon(phase);
}

Result<pb::PoolStatus> Target::Pool() {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallDeadlineMs);
  pb::StatusResponse st;
  grpc::Status s = stub_->Status(&ctx, pb::StatusRequest(), &st);
  if (!s.ok()) return RpcError("Status", s);
  for (const auto& p : st.pools())
    if (p.template_() == template_) return p;
  pb::PoolStatus none;
  none.set_template_(template_);
  return none;
}

Status Target::WaitPoolFull(int timeout_ms) {
  const uint64_t end = MonotonicNs() + uint64_t(timeout_ms) * 1000000;
  while (true) {
    ASSIGN_OR_RETURN(pb::PoolStatus p, Pool());
    if (p.ready() >= p.target()) return Status::Ok();
    if (MonotonicNs() > end)
      return Error("the pool of '" + template_ + "' did not fill in " +
                   std::to_string(timeout_ms / 1000) + " s: " + std::to_string(p.ready()) + "/" +
                   std::to_string(p.target()) + " ready" +
                   (p.last_error().empty() ? "" : "; last error: " + p.last_error()));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::unique_ptr<pb::Factory::Stub> Target::NewStub() const {
  grpc::ChannelArguments args;
  // A distinct channel per client thread, not one shared HTTP/2 connection.
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  return pb::Factory::NewStub(
      grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args));
}

std::optional<VmSample> Target::GetAndPing(pb::Factory::Stub& stub, bool keep_agent,
                                           CallError* error) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, get_vm_deadline_ms_);
  pb::GetVMRequest req;
  req.set_template_(template_);
  (*req.mutable_labels())["bench"] = "kata-factory";
  pb::GetVMResponse resp;
  const uint64_t t0 = MonotonicNs();
  grpc::Status s = stub.GetVM(&ctx, req, &resp);
  const uint64_t t1 = MonotonicNs();
  if (!s.ok()) {
    *error = {s.error_code(), "GetVM: " + s.error_message()};
    return std::nullopt;
  }
  VmSample v;
  v.id = resp.vm().id();
  v.pid = resp.vm().pid();
  v.pool_hit = resp.pool_hit();
  v.get_ns = t1 - t0;
  v.daemon = resp.vm().timings();
  auto agent = AgentClient::Connect(resp.vm().agent_socket());
  std::optional<Result<uint64_t>> ping;
  if (agent.ok()) ping = agent->Ping(1);
  const uint64_t t2 = MonotonicNs();
  if (!agent.ok() || !ping->ok()) {
    *error = {
        grpc::StatusCode::OK,
        v.id + ": first Ping: " + (agent.ok() ? ping->error().message() : agent.error().message())};
    CallError ignored;
    Release(stub, v.id, &ignored);
    return std::nullopt;
  }
  v.ping_ns = t2 - t1;
  if (keep_agent) v.agent.emplace(std::move(*agent));
  return v;
}

bool Target::Release(pb::Factory::Stub& stub, const std::string& id, CallError* error) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, kCallDeadlineMs);
  pb::ReleaseVMRequest req;
  req.set_id(id);
  pb::ReleaseVMResponse resp;
  grpc::Status s = stub.ReleaseVM(&ctx, req, &resp);
  if (s.ok()) return true;
  *error = {s.error_code(), "ReleaseVM " + id + ": " + s.error_message()};
  return false;
}

}  // namespace kf::bench
