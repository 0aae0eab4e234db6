#include "factory/linux_console.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace kf {

Result<std::unique_ptr<LinuxConsole>> LinuxConsole::Open(const std::string& log_path,
                                                         const std::string& sock_path) {
  std::unique_ptr<LinuxConsole> c(new LinuxConsole());
  if (!log_path.empty()) {
    c->log_.Reset(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!c->log_.valid()) return Error::Sys("open console log " + log_path);
  }
  if (!sock_path.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (sock_path.size() >= sizeof addr.sun_path)
      return Error("console socket path too long: " + sock_path);
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return Error::Sys("socket for " + sock_path);
    const mode_t old = ::umask(0077);  // 0600: the console is a root shell's worth
    const int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc < 0) return Error::Sys("bind " + sock_path);
    c->sock_path_ = sock_path;
    if (::listen(fd.get(), 4) < 0) return Error::Sys("listen on " + sock_path);
    c->listener_ = std::move(fd);
  }
  return c;
}

LinuxConsole::~LinuxConsole() {
  if (!sock_path_.empty()) ::unlink(sock_path_.c_str());
}

void LinuxConsole::Output(std::span<const uint8_t> bytes) {
  bytes_out_ += bytes.size();
  if (log_.valid()) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(log_.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // a full disk loses console output, not the VM
      done += static_cast<size_t>(n);
    }
  }
  for (UniqueFd& client : clients_) {
    if (client.valid())
      (void)::send(client.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

std::vector<int> LinuxConsole::PollFds() const {
  std::vector<int> fds;
  if (listener_.valid()) fds.push_back(listener_.get());
  for (const UniqueFd& c : clients_) fds.push_back(c.get());
  return fds;
}

void LinuxConsole::OnReadable(int fd,
                              const std::function<size_t(std::span<const uint8_t>)>& input) {
  if (listener_.valid() && fd == listener_.get()) {
    int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client >= 0) clients_.emplace_back(client);
    return;
  }
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [fd](const UniqueFd& c) { return c.get() == fd; });
  if (it == clients_.end()) return;
  uint8_t buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    clients_.erase(it);  // closes it
    return;
  }
  if (n > 0) (void)input(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
}

}  // namespace kf
