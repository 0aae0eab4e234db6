#include "factory/sandbox_control.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace kf {

namespace {

void Send(int fd, const SandboxReply& reply) {
  // Only the header and the used part of data travel.
  const size_t size = offsetof(SandboxReply, data) + reply.len;
  while (::send(fd, &reply, size, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EINTR) {
  }
}

}  // namespace

void SendListening(int fd, const SandboxTimings& timings) {
  SandboxReply listening;
  listening.op = kVmmEventListening;
  listening.len = sizeof timings;
  std::memcpy(listening.data, &timings, sizeof timings);
  Send(fd, listening);
}

// One control request. Returns true when the requester has gone (EOF): the
// sandbox then stops.
Result<bool> ServeSandboxControl(int fd, const SandboxTimings& timings, uint64_t first_wait_ns) {
  SandboxRequest req;
  ssize_t n = ::recv(fd, &req, sizeof req, MSG_DONTWAIT);
  if (n == 0) return true;
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return false;
    if (errno == ECONNRESET) return true;
    return Error::Sys("recv on control socket");
  }
  SandboxReply reply;
  reply.op = req.op;
  if (static_cast<size_t>(n) != sizeof req || req.magic != kSandboxMsgMagic ||
      req.op != kHostOpTimings) {
    reply.status = kVmmStatusBadRequest;
    Send(fd, reply);
    return false;
  }
  SandboxTimings t = timings;
  t.first_wait_ns = first_wait_ns;
  reply.len = sizeof t;
  std::memcpy(reply.data, &t, sizeof t);
  Send(fd, reply);
  return false;
}


}  // namespace kf
