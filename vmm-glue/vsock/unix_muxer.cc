// UnixMuxer, host side: the listener, CONNECT handshakes, epoll events.
// The guest side (packets, rx scheduling) is in unix_muxer_packets.cc.
#include "vmm-glue/vsock/unix_muxer.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>

namespace kf::vsock {
namespace {

constexpr uint64_t kListenerToken = 0;
constexpr uint32_t kClientEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// A sockaddr_un for `path`, or an error when it does not fit.
Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error("unix socket path \"" + path + "\" is empty or longer than " +
                 std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  path.copy(addr.sun_path, path.size());
  return addr;
}

}  // namespace

Result<std::unique_ptr<UnixMuxer>> UnixMuxer::Create(std::string uds_path) {
  std::unique_ptr<UnixMuxer> m(new UnixMuxer());
  m->epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!m->epoll_.valid()) return Error::Sys("epoll_create1 for vsock");
  if (uds_path.empty()) return m;

  ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(uds_path));
  struct stat st;
  if (::lstat(uds_path.c_str(), &st) == 0) {
    // A socket left by a VMM that died; anything else is not ours to remove.
    if (!S_ISSOCK(st.st_mode)) return Error(uds_path + " exists and is not a socket");
    if (::unlink(uds_path.c_str()) != 0) return Error::Sys("unlink stale " + uds_path);
  }
  m->listener_.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!m->listener_.valid()) return Error::Sys("socket for " + uds_path);
  if (::bind(m->listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::Sys("bind " + uds_path);
  }
  m->uds_path_ = std::move(uds_path);  // from here on the destructor unlinks it
  if (::listen(m->listener_.get(), 128) != 0) return Error::Sys("listen on " + m->uds_path_);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: accept until EAGAIN or full
  ev.data.u64 = kListenerToken;
  if (::epoll_ctl(m->epoll_.get(), EPOLL_CTL_ADD, m->listener_.get(), &ev) != 0) {
    return Error::Sys("epoll_ctl add " + m->uds_path_);
  }
  return m;
}

UnixMuxer::~UnixMuxer() {
  if (!uds_path_.empty()) ::unlink(uds_path_.c_str());
}

bool UnixMuxer::Register(int fd, uint64_t token) {
  epoll_event ev{};
  ev.events = kClientEvents;
  ev.data.u64 = token;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

Status UnixMuxer::AddClient(UniqueFd fd) {
  if (!fd.valid()) return Error("vsock: AddClient with an invalid fd");
  if (at_capacity()) {
    return Error("vsock: " + std::to_string(kMaxConnections) + " clients already; refusing another");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return Error::Sys("vsock: making a client socket non-blocking");
  }
  const uint64_t token = next_token_++;
  if (!Register(fd.get(), token)) return Error::Sys("vsock: epoll_ctl add client");
  clients_.emplace(token, Client{std::move(fd), ConnectLineParser()});
  return Status::Ok();
}

Status UnixMuxer::AcceptAll() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
      // Out of fds or memory: the client waits in the backlog. Not fatal.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        return Status::Ok();
      }
      return Error::Sys("accept on " + uds_path_);
    }
    // At capacity the new client is closed at once (fd goes out of scope):
    // refusing is better than letting it wait for nothing.
    (void)AddClient(std::move(fd));
  }
}

void UnixMuxer::OnClientEvent(uint64_t token, uint32_t events) {
  auto it = clients_.find(token);
  Client& c = it->second;
  // Small reads: whatever follows the line is the stream's first bytes and
  // must be kept, so a read never takes more than one line's worth.
  char buf[ConnectLineParser::kMaxLine];
  for (;;) {
    const ssize_t r = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (events & (EPOLLHUP | EPOLLERR)) break;  // gone without a line
      return;
    }
    if (r <= 0) break;  // EOF or error before the line was complete
    auto line = c.parser.Feed(std::string_view(buf, static_cast<size_t>(r)));
    if (!line.ok()) {
      const std::string reply = "ERR " + line.error().message() + "\n";
      (void)::send(c.fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      break;
    }
    if (line->has_value()) {
      const ConnectRequest req = **line;
      UniqueFd fd = std::move(c.fd);
      clients_.erase(it);
      StartHostConnection(token, std::move(fd), req.port,
                          std::string(buf + req.consumed, static_cast<size_t>(r) - req.consumed));
      return;
    }
  }
  clients_.erase(it);  // closes the socket
}

Status UnixMuxer::ProcessEvents() {
  epoll_event events[64];
  for (int round = 0; round < 16; ++round) {
    const int n = ::epoll_wait(epoll_.get(), events, 64, 0);
    if (n < 0) {
      if (errno == EINTR) return Status::Ok();
      return Error::Sys("epoll_wait on vsock sockets");
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t token = events[i].data.u64;
      if (token == kListenerToken) {
        RETURN_IF_ERROR(AcceptAll());
      } else if (clients_.count(token)) {
        OnClientEvent(token, events[i].events);
      } else if (auto k = token_keys_.find(token); k != token_keys_.end()) {
        const Key key = k->second;
        conns_.at(key).conn->OnSocketEvents(events[i].events);
        Touch(key);
      }  // else: a socket closed earlier in this batch
    }
    if (n < 64) break;
  }
  return Status::Ok();
}

}  // namespace kf::vsock
