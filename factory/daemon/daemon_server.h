// The running daemon: the core plus its gRPC server on a Unix socket (and
// TCP when asked), with grpc.health.v1 health checking and server
// reflection. Start() refuses when another daemon owns the socket or the
// run directory; Drain() is what SIGTERM does.
#pragma once

#include <grpcpp/server.h>

#include <memory>

#include "factory/daemon/factory_core.h"
#include "factory/daemon/factory_service.h"

namespace kf::daemon {

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon() { Drain(); }

  // Health NOT_SERVING, event streams end, the server stops accepting and
  // finishes the calls under way (up to 5 s), every VM is released, the
  // zygotes stop, the socket is removed. Idempotent.
  void Drain();

  FactoryCore& core() { return *core_; }
  grpc::Server& server() { return *server_; }
  const DaemonOptions& options() const { return core_->options(); }

 private:
  Daemon() = default;
  std::unique_ptr<FactoryCore> core_;
  std::unique_ptr<FactoryService> service_;
  std::unique_ptr<grpc::Server> server_;
  UniqueFd socket_lock_;
  std::string socket_;
  bool drained_ = false;
};

// The service name health checks report on, besides "" (the whole server).
inline constexpr char kHealthServiceName[] = "katafactory.v1.Factory";

}  // namespace kf::daemon
