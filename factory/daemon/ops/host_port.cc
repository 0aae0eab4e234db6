#include "factory/daemon/ops/host_port.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>

#include "factory/daemon/ops/sys_error.h"

namespace kf::ops {

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error("bad address \"" + std::string(text) + "\": " + why +
                 " (want HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9464)");
  };
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("no ']'");
    hp.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("no port");
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    hp.host = std::string(text.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) return bad("put an IPv6 host in brackets");
    port = text.substr(colon + 1);
  }
  if (hp.host.empty()) return bad("no host");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return bad("port must be 0-65535");
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

Result<UniqueFd> ListenTcp(std::string_view address, int backlog) {
  ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) return Error("resolving " + std::string(address) + ": " + gai_strerror(rc));
  Error last("no address for " + std::string(address));
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = SysError("socket");
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = SysError("bind " + std::string(address));
      continue;
    }
    if (listen(fd.get(), backlog) != 0) {
      last = SysError("listen " + std::string(address));
      continue;
    }
    freeaddrinfo(list);
    return fd;
  }
  freeaddrinfo(list);
  return last;
}

Result<uint16_t> LocalPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return SysError("getsockname");
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return Error("getsockname: not a TCP/IP socket");
}

}  // namespace kf::ops
