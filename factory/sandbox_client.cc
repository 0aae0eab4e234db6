#include "factory/sandbox_client.h"

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>

#include "factory/clock.h"

namespace kf {

Result<SandboxReply> SandboxClient::Call(const SandboxRequest& request) {
  // Requests travel whole (sizeof, padding included): the VMM accepts
  // exactly that size and nothing else.
  if (::send(fd_, &request, sizeof request, MSG_NOSIGNAL) < 0) return Error::Sys("send to sandbox");
  pollfd p{fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms_);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Error::Sys("poll sandbox");
  if (r == 0) return Error("sandbox did not answer in " + std::to_string(timeout_ms_) + " ms");
  SandboxReply reply;
  ssize_t n;
  do {
    n = ::recv(fd_, &reply, sizeof reply, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::Sys("recv from sandbox");
  if (n == 0) return Error("sandbox exited");
  const size_t header = offsetof(SandboxReply, data);
  if (static_cast<size_t>(n) < header || reply.magic != kSandboxMsgMagic ||
      reply.len > KF_MAILBOX_DATA_MAX || header + reply.len != static_cast<size_t>(n))
    return Error("malformed reply from sandbox");
  return reply;
}

Result<SandboxReply> SandboxClient::CallOk(const SandboxRequest& request, const char* what) {
  ASSIGN_OR_RETURN(SandboxReply reply, Call(request));
  if (reply.status != KF_STATUS_OK)
    return Error(std::string(what) + ": status " + std::to_string(reply.status));
  return reply;
}

Result<uint64_t> SandboxClient::Ping(uint64_t echo) {
  SandboxRequest req;
  req.op = KF_OP_PING;
  req.arg[0] = echo;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "ping"));
  if (reply.ret[0] != echo) return Error("ping: echo mismatch");
  return reply.ret[1];
}

Result<Identity> SandboxClient::GetIdentity() {
  SandboxRequest req;
  req.op = KF_OP_GET_IDENTITY;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "get identity"));
  if (reply.len != sizeof(kf_identity)) return Error("get identity: wrong length");
  kf_identity raw;
  std::memcpy(&raw, reply.data, sizeof raw);
  raw.sandbox_id[KF_ID_MAX - 1] = 0;
  raw.hostname[KF_ID_MAX - 1] = 0;
  Identity id;
  id.sandbox_id = raw.sandbox_id;
  id.hostname = raw.hostname;
  id.wall_clock_ns = raw.wall_clock_ns;
  id.identity_sets = raw.identity_sets;
  return id;
}

Status SandboxClient::SetIdentity(const Identity& id) {
  if (id.sandbox_id.size() >= KF_ID_MAX || id.hostname.size() >= KF_ID_MAX)
    return Error("sandbox id and hostname must be shorter than 64 bytes");
  kf_identity raw{};
  std::memcpy(raw.sandbox_id, id.sandbox_id.data(), id.sandbox_id.size());
  std::memcpy(raw.hostname, id.hostname.data(), id.hostname.size());
  std::memcpy(raw.entropy, id.entropy.data(), KF_ENTROPY_BYTES);
  raw.wall_clock_ns = id.wall_clock_ns;
  SandboxRequest req;
  req.op = KF_OP_SET_IDENTITY;
  req.len = sizeof raw;
  std::memcpy(req.data, &raw, sizeof raw);
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "set identity"));
  (void)reply;
  return Status::Ok();
}

Result<uint64_t> SandboxClient::DirtyPages(uint64_t gpa, uint64_t pages, uint64_t value) {
  SandboxRequest req;
  req.op = KF_OP_DIRTY_PAGES;
  req.arg[0] = gpa;
  req.arg[1] = pages;
  req.arg[2] = value;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "dirty pages"));
  return reply.ret[0];
}

Result<uint64_t> SandboxClient::HashRange(uint64_t gpa, uint64_t bytes) {
  SandboxRequest req;
  req.op = KF_OP_HASH_RANGE;
  req.arg[0] = gpa;
  req.arg[1] = bytes;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "hash range"));
  return reply.ret[0];
}

Result<std::vector<uint8_t>> SandboxClient::Random(uint32_t bytes) {
  SandboxRequest req;
  req.op = KF_OP_RANDOM;
  req.arg[0] = bytes;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "random"));
  if (reply.len != bytes) return Error("random: wrong length");
  return std::vector<uint8_t>(reply.data, reply.data + reply.len);
}

Result<SandboxTimings> SandboxClient::Timings() {
  SandboxRequest req;
  req.op = kHostOpTimings;
  ASSIGN_OR_RETURN(SandboxReply reply, CallOk(req, "timings"));
  if (reply.len != sizeof(SandboxTimings)) return Error("timings: wrong length");
  SandboxTimings t;
  std::memcpy(&t, reply.data, sizeof t);
  return t;
}

Result<Identity> FreshIdentity(const std::string& sandbox_id) {
  Identity id;
  id.sandbox_id = sandbox_id;
  id.hostname = sandbox_id;
  if (::getrandom(id.entropy.data(), id.entropy.size(), 0) !=
      static_cast<ssize_t>(id.entropy.size()))
    return Error::Sys("getrandom");
  id.wall_clock_ns = RealtimeNs();
  return id;
}

}  // namespace kf
