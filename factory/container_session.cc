#include "factory/container_session.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

#include "factory/clock.h"

namespace kf {

namespace {

// How long one ReadStdout/ReadStderr may park in the agent. The readers are
// stopped by shutting their sockets down, so this bounds nothing the user
// waits for; it only sets how often an idle stream is asked again.
constexpr uint32_t kReadWaitMs = 2000;
// One WaitProcess on the control connection: how soon a Ctrl-C is acted on.
constexpr uint32_t kWaitSliceMs = 250;
constexpr int kStdinPollMs = 200;

// What the control thread and the stream threads share.
struct Shared {
  uint64_t t0 = 0;
  std::string id;
  std::atomic<uint64_t> first_output{0}, first_line{0};
  std::atomic<bool> stop_stdin{false};

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;     // readers: leave now (their sockets are shut down)
  int readers_done = 0;
  int reader_fds[2] = {-1, -1};
  std::string error;         // the first stream thread's failure

  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    if (!stopping && error.empty()) error = what;
  }
  // Stops both readers at once: a parked read ends with the socket.
  void StopReaders() {
    std::lock_guard<std::mutex> l(mu);
    stopping = true;
    for (int fd : reader_fds)
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
};

void NoteFirst(std::atomic<uint64_t>& slot, uint64_t v) {
  uint64_t zero = 0;
  slot.compare_exchange_strong(zero, v);
}

// false once the fd refuses (EPIPE: the reader of our stdout went away).
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// One output stream of the container's process, to `fd`, until its EOF.
void CopyStream(const AgentConnector& connect, Shared* s, int slot, int fd, uint64_t* bytes,
                int* last_byte) {
  const char* name = slot == 0 ? "stdout" : "stderr";
  auto finish = [s] {
    std::lock_guard<std::mutex> l(s->mu);
    ++s->readers_done;
    s->cv.notify_all();
  };
  auto c = connect();
  if (!c.ok()) {
    s->Fail(std::string("connect for ") + name + ": " + c.error().message());
    return finish();
  }
  {
    std::lock_guard<std::mutex> l(s->mu);
    if (s->stopping) {
      ++s->readers_done;
      s->cv.notify_all();
      return;
    }
    s->reader_fds[slot] = c->fd();
  }
  bool fd_open = fd >= 0;
  for (;;) {
    auto r = slot == 0 ? c->ReadStdout(s->id, "", kReadWaitMs) : c->ReadStderr(s->id, "", kReadWaitMs);
    if (!r.ok()) {
      s->Fail(std::string("reading ") + name + ": " + AgentMessage(r.error()));
      break;
    }
    const std::string& data = r->data();
    if (!data.empty()) {
      const uint64_t at = MonotonicNs() - s->t0;
      NoteFirst(s->first_output, at);
      if (data.find('\n') != std::string::npos) NoteFirst(s->first_line, at);
      *bytes += data.size();
      if (last_byte != nullptr) *last_byte = static_cast<unsigned char>(data.back());
      // Nobody reads our side any more: go on draining, or the process blocks.
      if (fd_open && !WriteAll(fd, data)) fd_open = false;
    }
    if (r->eof()) break;
  }
  {
    std::lock_guard<std::mutex> l(s->mu);
    s->reader_fds[slot] = -1;  // before `c` closes the fd
  }
  finish();
}

// The local stdin to the process, then CloseStdin at its EOF.
void ForwardStdin(const AgentConnector& connect, Shared* s, int fd) {
  auto c = connect();
  if (!c.ok()) return s->Fail("connect for stdin: " + c.error().message());
  char buf[4096];
  while (!s->stop_stdin.load()) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, kStdinPollMs);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    ssize_t n = r < 0 ? 0 : ::read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {  // EOF (or an unreadable stdin: the same to the process)
      (void)c->CloseStdin(s->id, "");
      return;
    }
    std::string_view rest(buf, static_cast<size_t>(n));
    while (!rest.empty()) {
      if (s->stop_stdin.load()) return;
      auto w = c->WriteStdin(s->id, "", rest);
      // The process exited or closed its stdin: the rest has nowhere to go.
      if (!w.ok()) return;
      if (*w == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // its pipe is full
        continue;
      }
      rest.remove_prefix(*w);
    }
  }
}

}  // namespace

AgentConnector VsockAgentConnector(const std::string& agent_socket, int timeout_ms) {
  return [agent_socket, timeout_ms]() {
    return AgentClient::Connect(agent_socket, kAgentPort, timeout_ms);
  };
}

AgentConnector UnixAgentConnector(const std::string& socket_path, int timeout_ms) {
  return [socket_path, timeout_ms]() -> Result<AgentClient> {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path)
      return Error("socket path '" + socket_path + "' is empty or too long");
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::Sys("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
      return Error::Sys("connect to " + socket_path);
    return AgentClient::Attach(std::move(fd), timeout_ms);
  };
}

int ShellStatus(const agentpb::WaitProcessReply& wait) {
  return wait.signal() != 0 ? 128 + wait.signal() : wait.exit_code();
}

std::string AgentMessage(const Error& error) {
  const std::string& m = error.message();
  static const std::string kTag = ": agent error ";
  const size_t at = m.find(kTag);
  if (at == std::string::npos) return m;
  const size_t colon = m.find(": ", at + kTag.size());
  return colon == std::string::npos ? m : m.substr(colon + 2);
}

ContainerRunResult RunContainerSession(const AgentConnector& connect,
                                       const ContainerRunOptions& o) {
  ContainerRunResult res;
  Shared s;
  s.t0 = o.t0_ns != 0 ? o.t0_ns : MonotonicNs();
  s.id = o.create.container_id();
  const std::string& id = s.id;
  auto interrupts = [&] { return o.interrupts != nullptr ? o.interrupts->load() : 0; };
  auto done = [&] {
    res.done_at_ns = MonotonicNs() - s.t0;
    return res;
  };

  uint64_t t = MonotonicNs();
  auto ctl = connect();
  res.connect_ns = MonotonicNs() - t;
  if (!ctl.ok()) {
    res.error = "connect to the agent: " + ctl.error().message();
    return done();
  }
  t = MonotonicNs();
  auto created = ctl->CreateContainer(o.create);
  res.create_ns = MonotonicNs() - t;
  if (!created.ok()) {
    res.error = AgentMessage(created.error());
    if (ctl->last_error_code() == agentpb::ERROR_CODE_UNKNOWN_REQUEST)
      res.error = "this VM's agent runs no containers (a bare guest, not a Linux one): " + res.error;
    return done();
  }
  res.created = true;
  res.pid = *created;

  // The readers connect while the container starts; what it writes before
  // they ask waits in the agent.
  std::thread out(CopyStream, std::cref(connect), &s, 0, o.stdout_fd, &res.stdout_bytes,
                  &res.stdout_last_byte);
  std::thread err(CopyStream, std::cref(connect), &s, 1, o.stderr_fd, &res.stderr_bytes,
                  nullptr);
  std::thread in;
  bool ctl_ok = true, start_failed = false;

  if (interrupts() > 0) {
    res.error = "interrupted before the container started";
    res.status = 128 + SIGINT;
  } else {
    t = MonotonicNs();
    auto started = ctl->StartContainer(id);
    res.start_ns = MonotonicNs() - t;
    if (!started.ok()) {
      const auto code = ctl->last_error_code();
      res.error = AgentMessage(started.error());
      // As a shell: 127 the command is not there, 126 it cannot be run.
      res.status = code == agentpb::ERROR_CODE_NOT_FOUND      ? kExitNotFound
                   : code == agentpb::ERROR_CODE_BAD_ARGUMENT ? kExitCannotExecute
                                                              : kExitOwnFailure;
      ctl_ok = code != agentpb::ERROR_CODE_UNSPECIFIED;  // an agent error, not a lost link
      start_failed = true;  // the process exited (127): its streams end
    } else {
      res.started = true;
      if (o.interactive)
        in = std::thread(ForwardStdin, std::cref(connect), &s, o.stdin_fd);
      else
        (void)ctl->CloseStdin(id, "");  // fails only if it exited already: nothing to close
    }
  }

  if (res.started) {
    uint64_t kill_at = 0;
    bool killed = false;
    for (;;) {
      const int n = interrupts();
      if (n > res.interrupts_seen) {
        // Signalling a process that just exited fails: the wait says so.
        if (res.interrupts_seen == 0 && n == 1) {
          (void)ctl->SignalProcess(id, "", SIGTERM);
          kill_at = MonotonicNs() + uint64_t(o.kill_grace_ms) * 1000000;
        } else if (!killed) {
          (void)ctl->SignalProcess(id, "", SIGKILL);
          killed = true;
        }
        res.interrupts_seen = n;
      }
      if (kill_at != 0 && !killed && MonotonicNs() >= kill_at) {
        (void)ctl->SignalProcess(id, "", SIGKILL);
        killed = true;
      }
      auto w = ctl->WaitProcess(id, "", kWaitSliceMs);
      if (!w.ok()) {
        res.error = "waiting for the process: " + AgentMessage(w.error());
        res.status = kExitOwnFailure;
        ctl_ok = ctl->last_error_code() != agentpb::ERROR_CODE_UNSPECIFIED;
        break;
      }
      if (w->exited()) {
        res.exited = true;
        res.exit_code = w->exit_code();
        res.signal = w->signal();
        res.status = ShellStatus(*w);
        res.exit_at_ns = MonotonicNs() - s.t0;
        break;
      }
    }
  }

  // The rest of the output: the streams end soon after the exit (the
  // container's PID 1 took its namespace down with it).
  s.stop_stdin = true;
  {
    std::unique_lock<std::mutex> l(s.mu);
    const auto drain = std::chrono::milliseconds(res.exited || start_failed ? o.drain_ms : 0);
    s.cv.wait_for(l, drain, [&] { return s.readers_done == 2; });
  }
  s.StopReaders();
  out.join();
  err.join();
  if (in.joinable()) in.join();

  if (res.error.empty() && !s.error.empty()) {
    res.error = s.error;  // output was lost: ours to report
    res.status = kExitOwnFailure;
  }
  if (o.remove && ctl_ok) {
    Status r = ctl->RemoveContainer(id);
    res.removed = r.ok();
    if (!r.ok() && res.error.empty()) res.error = "remove: " + AgentMessage(r.error());
  }
  res.first_output_at_ns = s.first_output.load();
  res.first_line_at_ns = s.first_line.load();
  return done();
}

}  // namespace kf
