#include "factory/daemon/factory_service.h"

#include <chrono>

#include "factory/clock.h"

namespace kf::daemon {

uint64_t MonotonicDeadline(const grpc::ServerContext& ctx) {
  const auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return FactoryCore::kNoDeadline;
  const auto left = deadline - std::chrono::system_clock::now();
  const int64_t left_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  const uint64_t now = MonotonicNs();
  if (left_ns <= 0) return now;
  // A far-off deadline (a client's "infinity") is none.
  if (static_cast<uint64_t>(left_ns) > FactoryCore::kNoDeadline - now) return FactoryCore::kNoDeadline;
  return now + static_cast<uint64_t>(left_ns);
}

grpc::Status FactoryService::GetVM(grpc::ServerContext* ctx, const pb::GetVMRequest* req,
                                   pb::GetVMResponse* resp) {
  grpc::Status s = core_.GetVm(*req, MonotonicDeadline(*ctx), resp);
  if (const auto& hook = core_.options().hooks.get_vm_result)
    hook(req->template_(), s.error_code(), s.error_message());
  return s;
}

grpc::Status FactoryService::ReleaseVM(grpc::ServerContext*, const pb::ReleaseVMRequest* req,
                                       pb::ReleaseVMResponse*) {
  return core_.ReleaseVm(*req);
}

grpc::Status FactoryService::RenewLease(grpc::ServerContext*, const pb::RenewLeaseRequest* req,
                                        pb::RenewLeaseResponse* resp) {
  return core_.RenewLease(*req, resp);
}

grpc::Status FactoryService::ListVMs(grpc::ServerContext*, const pb::ListVMsRequest* req,
                                     pb::ListVMsResponse* resp) {
  return core_.ListVms(*req, resp);
}

grpc::Status FactoryService::Status(grpc::ServerContext*, const pb::StatusRequest*,
                                    pb::StatusResponse* resp) {
  return core_.GetStatus(resp);
}

grpc::Status FactoryService::CreateTemplate(grpc::ServerContext*,
                                            const pb::CreateTemplateRequest* req,
                                            pb::CreateTemplateResponse* resp) {
  return core_.CreateTemplate(*req, resp);
}

grpc::Status FactoryService::ListTemplates(grpc::ServerContext*, const pb::ListTemplatesRequest*,
                                           pb::ListTemplatesResponse* resp) {
  return core_.ListTemplates(resp);
}

grpc::Status FactoryService::DeleteTemplate(grpc::ServerContext*,
                                            const pb::DeleteTemplateRequest* req,
                                            pb::DeleteTemplateResponse*) {
  return core_.DeleteTemplate(*req);
}

grpc::Status FactoryService::WatchEvents(grpc::ServerContext* ctx,
                                         const pb::WatchEventsRequest* req,
                                         grpc::ServerWriter<pb::Event>* writer) {
  auto sub = core_.events().Subscribe(req->template_());
  // Headers now, so the client knows the stream is live before any event.
  writer->SendInitialMetadata();
  while (!ctx->IsCancelled() && !sub->closed()) {
    auto event = sub->Next(200);
    if (event && !writer->Write(*event)) break;
  }
  core_.events().Unsubscribe(sub);
  return grpc::Status::OK;
}

}  // namespace kf::daemon
