#include "factory/daemon/ops/metrics_http.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "factory/daemon/ops/host_port.h"
#include "factory/daemon/ops/metrics.h"
#include "factory/daemon/ops/sys_error.h"

namespace kf::ops {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string Response(int code, const char* reason, const std::string& content_type,
                     const std::string& body, bool with_body, const std::string& extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  r += "Content-Type: " + content_type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "Connection: close\r\n\r\n";
  if (with_body) r += body;
  return r;
}

struct Conn {
  UniqueFd fd;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool responding = false;
  SteadyClock::time_point deadline;
};

}  // namespace

std::string HttpResponseFor(const std::string& head, const MetricsHttpServer::Handler& metrics) {
  const std::string text = "text/plain; charset=utf-8";
  size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0)
    return Response(400, "Bad Request", text, "bad request\n", true);
  std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string path = target.substr(0, target.find('?'));
  bool head_only = method == "HEAD";
  if (path != "/metrics") return Response(404, "Not Found", text, "not found\n", !head_only);
  if (method != "GET" && !head_only)
    return Response(405, "Method Not Allowed", text, "method not allowed\n", true,
                    "Allow: GET, HEAD\r\n");
  return Response(200, "OK", MetricsRegistry::kContentType, metrics(), !head_only);
}

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address,
                                                                    Handler handler) {
  return Start(address, std::move(handler), Options());
}

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address,
                                                                    Handler handler,
                                                                    Options options) {
  auto listener = ListenTcp(address);
  if (!listener.ok()) return listener.error().Context("metrics server");
  ASSIGN_OR_RETURN(uint16_t port, LocalPort(listener->get()));
  UniqueFd wake(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return SysError("metrics server: eventfd");
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(
      std::move(listener).value(), std::move(wake), port, std::move(handler), options));
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsHttpServer::MetricsHttpServer(UniqueFd listener, UniqueFd wake, uint16_t port,
                                     Handler handler, Options options)
    : listener_(std::move(listener)),
      wake_(std::move(wake)),
      port_(port),
      handler_(std::move(handler)),
      options_(options) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  (void)n;
  thread_.join();
  listener_.Reset();
}

void MetricsHttpServer::Loop() {
  std::vector<Conn> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_.get(), POLLIN, 0});
    bool accepting = conns.size() < options_.max_connections;
    fds.push_back({listener_.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
    auto now = SteadyClock::now();
    int timeout_ms = -1;
    for (const Conn& c : conns) {
      fds.push_back({c.fd.get(), static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count();
      int ms = left < 0 ? 0 : static_cast<int>(left) + 1;
      if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = ms;
    }
    int rc = poll(fds.data(), fds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;  // Stop(); the connections close with `conns`

    if (fds[1].revents & POLLIN) {
      for (;;) {  // accept what is waiting, up to the cap
        if (conns.size() >= options_.max_connections) break;
        int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        conns.push_back(
            Conn{UniqueFd(fd), {}, {}, 0, false, SteadyClock::now() + options_.client_timeout});
      }
    }
    now = SteadyClock::now();
    // fds[2 + i] is conns[i] as they were before accepting.
    size_t polled = fds.size() - 2;
    std::vector<bool> done(conns.size(), false);
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      short rev = i < polled ? fds[2 + i].revents : 0;
      if (now >= c.deadline) {
        done[i] = true;
        continue;
      }
      if (!c.responding && (rev & (POLLIN | POLLHUP | POLLERR))) {
        char buf[2048];
        ssize_t n = recv(c.fd.get(), buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          done[i] = true;
          continue;
        }
        if (n > 0) c.in.append(buf, static_cast<size_t>(n));
        size_t end = c.in.find("\r\n\r\n");
        if (end != std::string::npos) {
          c.out = HttpResponseFor(c.in.substr(0, end + 2), handler_);
          c.responding = true;
        } else if (c.in.size() > options_.max_request_bytes) {
          c.out =
              "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
          c.responding = true;
        }
      }
      if (c.responding) {  // try at once; POLLOUT for the rest
        ssize_t n = send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0)
          c.sent += static_cast<size_t>(n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
          done[i] = true;
        if (c.sent == c.out.size()) {
          shutdown(c.fd.get(), SHUT_WR);
          done[i] = true;
        }
      }
    }
    std::vector<Conn> keep;
    for (size_t i = 0; i < conns.size(); ++i)
      if (!done[i]) keep.push_back(std::move(conns[i]));
    conns = std::move(keep);
  }
}

}  // namespace kf::ops
