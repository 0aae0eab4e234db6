#include "factory/zygote.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "factory/clock.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/jail.h"
#include "factory/jail/seccomp_filter.h"
#include "factory/linux_sandbox.h"

extern char** environ;

namespace kf {

namespace {

constexpr uint32_t kZygoteMagic = 0x4b465a59;  // "KFZY"

struct ZygoteRequest {
  uint32_t magic = kZygoteMagic;
  uint32_t mergeable = 0;
  uint32_t uid = 0;  // the sandbox's own uid and gid; 0: the zygote's
  char agent_sock[kAgentSockPathMax] = {};  // NUL-terminated
};

struct ZygoteReply {
  uint32_t magic = kZygoteMagic;
  int32_t pid = -1;
  uint64_t fork_ns = 0;
  char error[200] = {};
};

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

Status SendWithFds(int sock, const void* buf, size_t len, const int* fds, int nfds) {
  iovec iov{const_cast<void*>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return Error::Sys("sendmsg to zygote peer (clone request or reply)");
  }
  return Status::Ok();
}

// Receives one message and up to two fds. Returns bytes received (0 = EOF).
Result<ssize_t> RecvWithFds(int sock, void* buf, size_t len, UniqueFd* fds, int max_fds) {
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::Sys("recvmsg from zygote");
  int got = 0;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    int count = static_cast<int>((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      if (got < max_fds) fds[got++].Reset(fd);
      else ::close(fd);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return Error("zygote message truncated", EMSGSIZE);
  return n;
}

void ReplyError(int sock, const std::string& what) {
  ZygoteReply reply;
  std::snprintf(reply.error, sizeof reply.error, "%s", what.c_str());
  (void)SendWithFds(sock, &reply, sizeof reply, nullptr, 0);
}

// The sandbox child: becomes the VMM for one clone, then exits.
[[noreturn]] void SandboxChild(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                               SandboxOptions options, uint64_t fork_ns, bool in_cgroup) {
  SandboxTimings timings;
  timings.fork_ns = fork_ns;
  timings.child_start_ns = MonotonicNs();
  ::signal(SIGCHLD, SIG_DFL);
  NameSeccompReports("sandbox");
  // Nothing the zygote holds for anyone else survives into the sandbox:
  // only /dev/kvm, the template's memory and rootfs image, the control
  // socket and (until it is entered) the cgroup directory.
  CloseAllExcept({kvm.fd(), tmpl.memory.get(), tmpl.rootfs ? tmpl.rootfs->fd.get() : -1,
                  control_fd, options.cgroup_fd});
  Status s = Status::Ok();
  if (options.cgroup_fd >= 0) {
    // Before guest memory is touched, so all of it is charged to the clone
    // (born there, in_cgroup, unless the kernel refused clone3).
    if (!in_cgroup) s = EnterCgroup(options.cgroup_fd);
    ::close(options.cgroup_fd);
    options.cgroup_fd = -1;
    if (!s.ok()) s = s.error().Context("entering the sandbox's cgroup");
  }
  if (s.ok()) s = RunSandboxVmm(kvm, tmpl, control_fd, options, timings);
  if (!s.ok()) {
    std::fprintf(stderr, "kata-factory sandbox %d: %s\n", getpid(), s.error().message().c_str());
    ::_exit(1);
  }
  ::_exit(0);
}

[[noreturn]] void ZygoteMain(LoadedTemplate tmpl, int sock, const JailOptions& jail) {
  ::prctl(PR_SET_NAME, "kf-zygote");
  // Children are reaped by the kernel; requesters watch them via pidfds.
  struct sigaction sa {};
  sa.sa_handler = SIG_IGN;
  sa.sa_flags = SA_NOCLDWAIT;
  ::sigaction(SIGCHLD, &sa, nullptr);
  auto kvm = Kvm::Open();
  // From here on neither the zygote nor a sandbox it forks (until its own
  // filter stacks on top) can exec, ptrace, mount and the like; a failure
  // is answered to every request rather than run unfiltered.
  const Status filtered = InstallZygoteSeccomp(jail.seccomp);
  for (;;) {
    ZygoteRequest req;
    UniqueFd cgroup;  // the clone's cgroup directory, when the requester has one
    auto got = RecvWithFds(sock, &req, sizeof req, &cgroup, 1);
    if (!got.ok() && got.error().sys_errno() != EMSGSIZE) ::_exit(1);
    const ssize_t n = got.ok() ? *got : -1;  // -1: longer than a request (truncated)
    if (n == 0) ::_exit(0);  // the requester is gone
    if (n != sizeof req || req.magic != kZygoteMagic ||
        ::memchr(req.agent_sock, 0, sizeof req.agent_sock) == nullptr || req.agent_sock[0] == 0) {
      ReplyError(sock, "malformed zygote request");
      continue;
    }
    if (!kvm.ok()) {
      ReplyError(sock, kvm.error().message());
      continue;
    }
    if (!filtered.ok()) {
      ReplyError(sock, "zygote seccomp filter: " + filtered.error().message());
      continue;
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
      ReplyError(sock, Error::Sys("socketpair").message());
      continue;
    }
    SandboxOptions options;
    options.mergeable = req.mergeable != 0;
    options.agent_sock = req.agent_sock;
    options.jail = jail;
    options.jail.uid = req.uid;
    options.cgroup_fd = cgroup.get();
    const uint64_t fork_ns = MonotonicNs();
    bool born_in_cgroup = false;
    pid_t pid = options.cgroup_fd >= 0 ? ForkIntoCgroup(options.cgroup_fd, &born_in_cgroup)
                                       : ::fork();
    if (pid == 0) {
      SandboxChild(*kvm, tmpl, pair[1], options, fork_ns, born_in_cgroup);
    }
    ::close(pair[1]);
    if (pid < 0) {
      const int err = errno;
      ::close(pair[0]);
      ReplyError(sock, Error::Sys(options.cgroup_fd >= 0 ? "fork into the sandbox's cgroup" : "fork",
                                  err)
                           .message());
      continue;
    }
    int pidfd = PidfdOpen(pid);
    ZygoteReply reply;
    reply.pid = pid;
    reply.fork_ns = fork_ns;
    int fds[2] = {pair[0], pidfd};
    (void)SendWithFds(sock, &reply, sizeof reply, fds, pidfd >= 0 ? 2 : 1);
    ::close(pair[0]);
    if (pidfd >= 0) ::close(pidfd);
  }
}

}  // namespace

Result<Zygote> Zygote::Spawn(LoadedTemplate tmpl, const JailOptions& jail) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
    return Error::Sys("socketpair for zygote");
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pair[0]);
    ::close(pair[1]);
    return Error::Sys("fork zygote", err);
  }
  if (pid == 0) {
    ::close(pair[0]);
    // The zygote dies with its requester; its sandboxes do not (they end
    // when their own control sockets close).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ZygoteMain(std::move(tmpl), pair[1], jail);
  }
  ::close(pair[1]);
  Zygote z;
  z.pid_ = pid;
  z.socket_.Reset(pair[0]);
  return z;
}

Result<Zygote> Zygote::SpawnProcess(const std::string& exe, const std::string& template_dir,
                                    const std::vector<std::string>& extra_args, int timeout_ms) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
    return Error::Sys("socketpair for zygote");
  UniqueFd ours(pair[0]), theirs(pair[1]);
  std::vector<std::string> args = {exe, "zygote", "--template", template_dir, "--fd", "3"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // The child gets stdin from /dev/null, the caller's stdout and stderr, its
  // socket as fd 3 (dup2 clears close-on-exec) and nothing else that was
  // opened close-on-exec; default signal dispositions and an empty mask
  // (the daemon blocks SIGTERM in every thread to sigwait() for it).
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 3);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  std::fflush(nullptr);
  int err = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return Error::Sys("posix_spawn " + exe + " zygote", err);
  theirs.Reset();

  Zygote z;  // from here on, its destructor reaps the child
  z.pid_ = pid;
  z.socket_ = std::move(ours);
  pollfd p{z.socket_.get(), POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Error::Sys("poll zygote");
  if (r == 0) {
    ::kill(pid, SIGKILL);
    return Error("zygote for " + template_dir + " did not load it in " +
                 std::to_string(timeout_ms) + " ms");
  }
  ZygoteReply hello;
  ASSIGN_OR_RETURN(ssize_t n, RecvWithFds(z.socket_.get(), &hello, sizeof hello, nullptr, 0));
  if (n == 0) return Error("zygote exited before loading " + template_dir);
  if (n != sizeof hello || hello.magic != kZygoteMagic) return Error("malformed zygote hello");
  if (hello.pid <= 0) {
    hello.error[sizeof hello.error - 1] = 0;
    return Error(std::string("zygote: ") + hello.error);
  }
  return z;
}

void RunZygoteProcess(const std::string& template_dir, int sock, const JailOptions& jail) {
  // Only the socket survives from the parent beyond stdio.
  if (sock > 3) ::close_range(3, sock - 1, 0);
  ::close_range(sock + 1, ~0U, 0);
  auto tmpl = LoadTemplate(template_dir);
  if (!tmpl.ok()) {
    ReplyError(sock, template_dir + ": " + tmpl.error().message());
    ::_exit(1);
  }
  ZygoteReply hello;
  hello.pid = ::getpid();
  if (!SendWithFds(sock, &hello, sizeof hello, nullptr, 0).ok()) ::_exit(1);
  ZygoteMain(std::move(*tmpl), sock, jail);
}

Zygote::~Zygote() { Stop(); }

bool Zygote::Exited() const {
  if (!socket_.valid()) return true;
  pollfd p{socket_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

Zygote& Zygote::operator=(Zygote&& other) noexcept {
  if (this != &other) {
    Stop();
    socket_ = std::move(other.socket_);
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

void Zygote::Stop() {
  if (pid_ <= 0) return;
  socket_.Reset();  // EOF: the zygote exits
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Result<CloneHandle> Zygote::Clone(const SandboxOptions& options) {
  ZygoteRequest req;
  req.mergeable = options.mergeable ? 1 : 0;
  req.uid = options.jail.uid;
  if (options.agent_sock.empty() || options.agent_sock.size() >= sizeof req.agent_sock)
    return Error("agent socket path '" + options.agent_sock + "' is empty or longer than " +
                 std::to_string(sizeof req.agent_sock - 1) + " bytes (a Unix socket limit)");
  std::memcpy(req.agent_sock, options.agent_sock.data(), options.agent_sock.size());
  const int cgroup_fd = options.cgroup_fd;
  RETURN_IF_ERROR(SendWithFds(socket_.get(), &req, sizeof req, &cgroup_fd, cgroup_fd >= 0 ? 1 : 0));
  ZygoteReply reply;
  UniqueFd fds[2];
  ASSIGN_OR_RETURN(ssize_t n, RecvWithFds(socket_.get(), &reply, sizeof reply, fds, 2));
  if (n == 0) return Error("zygote exited");
  if (n != sizeof reply || reply.magic != kZygoteMagic) return Error("malformed zygote reply");
  if (reply.pid <= 0) return Error(std::string("zygote: ") + reply.error);
  if (!fds[0].valid()) return Error("zygote reply without a control socket");
  CloneHandle h;
  h.pid = reply.pid;
  h.control = std::move(fds[0]);
  h.pidfd = std::move(fds[1]);
  h.fork_ns = reply.fork_ns;
  h.agent_sock = options.agent_sock;
  return h;
}

Status ReleaseClone(CloneHandle& clone, int grace_ms) {
  clone.control.Reset();
  if (!clone.pidfd.valid()) return Status::Ok();
  pollfd p{clone.pidfd.get(), POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, grace_ms);
  } while (r < 0 && errno == EINTR);
  if (r == 0) {
    ::syscall(SYS_pidfd_send_signal, clone.pidfd.get(), SIGKILL, nullptr, 0);
    ::poll(&p, 1, grace_ms);
  }
  clone.pidfd.Reset();
  // A jailed VMM may not unlink (factory/jail/seccomp_filter.h): its owner
  // removes the socket once the VMM is gone.
  if (!clone.agent_sock.empty()) {
    ::unlink(clone.agent_sock.c_str());
    ::unlink(BesideAgentSock(clone.agent_sock, "console.sock").c_str());  // Linux guests
  }
  return r == 0 ? Status(Error("sandbox " + std::to_string(clone.pid) +
                               " did not stop in time; killed"))
                : Status::Ok();
}

}  // namespace kf
