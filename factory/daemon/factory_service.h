// The gRPC service katafactory.v1.Factory (proto/factory.proto): converts
// each call's deadline and hands it to the core; WatchEvents streams the
// core's events until the client cancels or the daemon drains.
#pragma once

#include "factory/daemon/factory_core.h"
#include "proto/factory.grpc.pb.h"

namespace kf::daemon {

class FactoryService final : public pb::Factory::Service {
 public:
  explicit FactoryService(FactoryCore& core) : core_(core) {}

  grpc::Status GetVM(grpc::ServerContext* ctx, const pb::GetVMRequest* req,
                     pb::GetVMResponse* resp) override;
  grpc::Status ReleaseVM(grpc::ServerContext* ctx, const pb::ReleaseVMRequest* req,
                         pb::ReleaseVMResponse* resp) override;
  grpc::Status RenewLease(grpc::ServerContext* ctx, const pb::RenewLeaseRequest* req,
                          pb::RenewLeaseResponse* resp) override;
  grpc::Status ListVMs(grpc::ServerContext* ctx, const pb::ListVMsRequest* req,
                       pb::ListVMsResponse* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const pb::StatusRequest* req,
                      pb::StatusResponse* resp) override;
  grpc::Status CreateTemplate(grpc::ServerContext* ctx, const pb::CreateTemplateRequest* req,
                              pb::CreateTemplateResponse* resp) override;
  grpc::Status ListTemplates(grpc::ServerContext* ctx, const pb::ListTemplatesRequest* req,
                             pb::ListTemplatesResponse* resp) override;
  grpc::Status DeleteTemplate(grpc::ServerContext* ctx, const pb::DeleteTemplateRequest* req,
                              pb::DeleteTemplateResponse* resp) override;
  grpc::Status WatchEvents(grpc::ServerContext* ctx, const pb::WatchEventsRequest* req,
                           grpc::ServerWriter<pb::Event>* writer) override;

 private:
  FactoryCore& core_;
};

// The call's deadline as CLOCK_MONOTONIC ns (FactoryCore::kNoDeadline if none).
uint64_t MonotonicDeadline(const grpc::ServerContext& ctx);

}  // namespace kf::daemon
