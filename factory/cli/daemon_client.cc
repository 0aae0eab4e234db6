#include "factory/cli/daemon_client.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "factory/cli/commands.h"

namespace kf::cli {

std::string DaemonSocket(const Args& args) {
  if (args.Has("socket")) return args.Get("socket");
  if (const char* env = std::getenv("KATA_FACTORY_SOCKET"); env != nullptr && *env != '\0')
    return env;
  return kDefaultDaemonSocket;
}

std::unique_ptr<katafactory::v1::Factory::Stub> DaemonStub(const std::string& socket) {
  return katafactory::v1::Factory::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
}

int SetDeadline(grpc::ClientContext& ctx, const Args& args, uint64_t fallback_s) {
  auto timeout = args.GetUint("timeout", fallback_s);
  if (!timeout.ok()) return Fail(timeout.error().message(), kExitUsage);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(*timeout));
  return 0;
}

int FailRpc(const std::string& verb, const grpc::Status& status, const std::string& socket) {
  static const char* kCodes[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int code = status.error_code();
  std::string what = code >= 0 && code <= 16 ? kCodes[code] : std::to_string(code);
  std::string msg = verb + ": " + what + ": " + status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
    msg += " (is `kata-factory daemon` running on " + socket + "?)";
  return Fail(msg);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, o);
  return out;
}

std::string FormatDuration(uint64_t ns) {
  char buf[64];
  if (ns < 1000000000ull) {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  } else if (ns < 60000000000ull) {
    std::snprintf(buf, sizeof buf, "%.1f s", ns / 1e9);
  } else {
    const uint64_t s = ns / 1000000000ull;
    if (s < 3600)
      std::snprintf(buf, sizeof buf, "%llum%02llus", (unsigned long long)(s / 60),
                    (unsigned long long)(s % 60));
    else
      std::snprintf(buf, sizeof buf, "%lluh%02llum", (unsigned long long)(s / 3600),
                    (unsigned long long)(s % 3600 / 60));
  }
  return buf;
}

}  // namespace kf::cli
