// What the verbs that talk to a running daemon (get, release, status, ls)
// share: where the socket is, a stub, deadlines, errors, JSON output.
#pragma once

#include <grpcpp/client_context.h>

#include <memory>
#include <string>

#include "factory/cli/args.h"
#include "proto/factory.grpc.pb.h"

namespace kf::cli {

inline constexpr char kDefaultDaemonSocket[] = "/run/kata-factory/factory.sock";

// --socket PATH, else $KATA_FACTORY_SOCKET, else the default.
std::string DaemonSocket(const Args& args);
std::unique_ptr<katafactory::v1::Factory::Stub> DaemonStub(const std::string& socket);
// --timeout S (default `fallback_s`) as the call's deadline.
int SetDeadline(grpc::ClientContext& ctx, const Args& args, uint64_t fallback_s);
// "kata-factory: VERB: CODE: message" on stderr; exit status 1.
int FailRpc(const std::string& verb, const grpc::Status& status, const std::string& socket);
// The message as one line of JSON (proto field names, defaults included).
std::string ToJson(const google::protobuf::Message& message);
// "1.23 ms", "2.1 s", "3m12s".
std::string FormatDuration(uint64_t ns);

}  // namespace kf::cli
