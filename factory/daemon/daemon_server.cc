#include "factory/daemon/daemon_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "factory/daemon/run_dir.h"

namespace kf::daemon {

namespace {

// DaemonOptions::startup_templates: each made through the core (as a
// CreateTemplate call would) unless a template of that name exists.
Status CreateStartupTemplates(FactoryCore& core) {
  for (const auto& [name, t] : core.options().startup_templates) {
    const std::string key = "templates." + name;
    pb::CreateTemplateRequest req;
    req.set_name(name);
    if (t.guest == "bare") req.set_guest(pb::GUEST_KIND_BARE);
    else if (t.guest == "linux") req.set_guest(pb::GUEST_KIND_LINUX);
    else return Error(key + ".guest: \"" + t.guest + "\" is not bare or linux");
    req.set_mem_mib(t.mem_mib);
    pb::CreateTemplateResponse resp;
    const grpc::Status s = core.CreateTemplate(req, &resp);
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      core.Log(LogSeverity::kInfo, "configured template exists: used as it is", "", name);
      continue;
    }
    if (!s.ok())
      return Error(key + ": cannot create the " + t.guest + " template at start: " +
                   s.error_message());
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->socket_ = options.socket;
  const size_t slash = d->socket_.rfind('/');
  if (slash != std::string::npos && slash > 0) RETURN_IF_ERROR(MakeDirs(d->socket_.substr(0, slash)));
  ASSIGN_OR_RETURN(d->socket_lock_, ClaimSocket(d->socket_));
  const std::string tcp = options.tcp_listen;
  d->core_ = std::make_unique<FactoryCore>(std::move(options));
  RETURN_IF_ERROR(d->core_->Start());
  RETURN_IF_ERROR(CreateStartupTemplates(*d->core_));  // before serving
  d->service_ = std::make_unique<FactoryService>(*d->core_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int tcp_port = 0;
  builder.AddListeningPort("unix:" + d->socket_, grpc::InsecureServerCredentials());
  if (!tcp.empty()) builder.AddListeningPort(tcp, grpc::InsecureServerCredentials(), &tcp_port);
  builder.RegisterService(d->service_.get());
  // The socket is created 0600 (no window where others could connect).
  const mode_t old_umask = ::umask(0177);
  d->server_ = builder.BuildAndStart();
  ::umask(old_umask);
  if (!d->server_) {
    d->core_->Shutdown();
    return Error("cannot serve gRPC on unix:" + d->socket_ + (tcp.empty() ? "" : " and " + tcp));
  }
  if (!tcp.empty() && tcp_port == 0) {
    d->Drain();
    return Error("cannot listen on TCP " + tcp);
  }
  if (::chmod(d->socket_.c_str(), 0600) < 0) {
    Error e = Error::Sys("chmod 0600 " + d->socket_);
    d->Drain();
    return e;
  }
  if (auto* health = d->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kHealthServiceName, true);
  }
  d->core_->Log(LogSeverity::kInfo, "serving on unix:" + d->socket_ +
                                        (tcp.empty() ? "" : " and tcp " + tcp));
  return d;
}

void Daemon::Drain() {
  if (drained_) return;
  drained_ = true;
  if (server_) {
    if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
    core_->events().Close();  // WatchEvents streams return
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
  if (core_) core_->Shutdown();
  if (socket_lock_.valid()) {  // only what this daemon claimed
    ::unlink(socket_.c_str());
    ::unlink((socket_ + ".lock").c_str());
    socket_lock_.Reset();
  }
  if (core_ && server_) core_->Log(LogSeverity::kInfo, "drained");
}

}  // namespace kf::daemon
