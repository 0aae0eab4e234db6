#include "factory/sandbox_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace kf {

Result<SandboxReply> SandboxClient::Receive() {
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
      reply.len > kSandboxReplyDataMax || header + reply.len != static_cast<size_t>(n))
    return Error("malformed reply from sandbox");
  return reply;
}

Result<SandboxTimings> SandboxClient::WaitListening() {
  ASSIGN_OR_RETURN(SandboxReply reply, Receive());
  if (reply.op != kVmmEventListening)
    return Error("sandbox sent op " + std::to_string(reply.op) + " before listening");
  SandboxTimings t;
  if (reply.len == 0) return t;
  if (reply.len != sizeof t) return Error("listening: timings of the wrong length");
  std::memcpy(&t, reply.data, sizeof t);
  return t;
}

Result<SandboxTimings> SandboxClient::Timings() {
  // Requests travel whole (sizeof, padding included): the VMM accepts
  // exactly that size and nothing else.
  SandboxRequest req;
  req.op = kHostOpTimings;
  if (::send(fd_, &req, sizeof req, MSG_NOSIGNAL) < 0) return Error::Sys("send to sandbox");
  ASSIGN_OR_RETURN(SandboxReply reply, Receive());
  if (reply.op != kHostOpTimings || reply.status != 0)
    return Error("timings: op " + std::to_string(reply.op) + " status " +
                 std::to_string(reply.status));
  if (reply.len != sizeof(SandboxTimings)) return Error("timings: wrong length");
  SandboxTimings t;
  std::memcpy(&t, reply.data, sizeof t);
  return t;
}

}  // namespace kf
