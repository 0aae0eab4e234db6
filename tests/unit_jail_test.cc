// The sandbox jail (factory/jail/) against the real kernel: each test forks
// a child that enters the jail exactly as a sandbox VMM does, then makes
// the calls a running VMM makes (which must work) and one it must never
// make (which must end it with SIGSYS's report). No KVM needed: the filter
// only looks at system call numbers and arguments.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>

#include "factory/jail/capabilities.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/jail.h"
#include "factory/jail/sandbox_uids.h"
#include "factory/jail/seccomp_filter.h"

namespace kf {
namespace {

struct ChildResult {
  int status = 0;
  std::string output;  // its stderr and stdout
};

// Runs `body` in a forked child with stdout+stderr captured; the child
// exits 0 when `body` returns.
ChildResult InChild(const std::function<void()>& body) {
  int pipefd[2];
  EXPECT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    body();
    ::_exit(0);
  }
  ::close(pipefd[1]);
  ChildResult r;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) r.output.append(buf, n);
  ::close(pipefd[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

void Say(const char* s) { (void)!::write(1, s, std::strlen(s)); }

// Says each line of /proc/self/status that starts with one of `prefixes`.
void SayStatusLines(std::initializer_list<const char*> prefixes) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    for (const char* p : prefixes)
      if (line.rfind(p, 0) == 0) {
        Say((line + "\n").c_str());
        break;
      }
}

// What a running VMM does: threads, memory, Unix sockets, eventfds, time,
// KVM ioctls (here on a non-KVM fd: the filter lets them through and the
// kernel answers ENOTTY), signals to its own threads.
void RunningVmmCalls() {
  std::thread t([] { Say("thread "); });
  t.join();
  void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Say("mmap failed ");
  std::memset(p, 1, 1 << 20);
  ::munmap(p, 1 << 20);
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Say("unix socket failed ");
  ::close(s);
  if (::fcntl(1, F_GETFL) < 0) Say("fcntl failed ");
  if (::ioctl(0, KVM_RUN, 0) == 0 || errno != ENOTTY) Say("KVM_RUN not ENOTTY ");
  if (::ioctl(0, KVM_IRQ_LINE, nullptr) == 0 || (errno != ENOTTY && errno != EFAULT))
    Say("KVM_IRQ_LINE odd ");
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  ::syscall(SYS_tgkill, ::getpid(), ::gettid(), 0);
  if (::unlink("/nonexistent-kf") == 0 || errno != EPERM) Say("unlink not EPERM ");
  if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) Say("clone3 not ENOSYS ");
  Say("calls-ok\n");
}

// A call a sandbox must never make, by name (the test's name).
struct Forbidden {
  const char* name;
  std::function<void()> call;
};
void PrintTo(const Forbidden& f, std::ostream* os) { *os << f.name; }
Forbidden F(const char* name, std::function<void()> call) { return {name, std::move(call)}; }

class JailTest : public ::testing::TestWithParam<Forbidden> {};
class ZygoteJailTest : public ::testing::TestWithParam<Forbidden> {};

TEST_P(JailTest, RunningVmmCallsWorkAndTheForbiddenOneEndsTheSandbox) {
  const char* name = GetParam().name;
  ChildResult r = InChild([f = GetParam().call] {
    Status s = EnterJail(JailOptions{});
    if (!s.ok()) {
      Say(s.error().message().c_str());
      ::_exit(3);
    }
    RunningVmmCalls();
    f();
    Say("forbidden call returned\n");
  });
  EXPECT_NE(r.output.find("thread calls-ok\n"), std::string::npos) << name << ": " << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << name << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), kSeccompDeniedExit) << name << ": " << r.output;
  EXPECT_NE(r.output.find("seccomp denied system call"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("forbidden call returned"), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Forbidden, JailTest,
    ::testing::Values(
        F("open", ([] { ::open("/etc/hostname", O_RDONLY); })),
        F("execve", ([] {
                         char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
                         ::execve("/bin/true", argv, nullptr);
                       })),
        F("fork", ([] {
                         // glibc's fork() is clone without CLONE_THREAD.
                         ::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0);
                       })),
        F("inet_socket",
                       ([] { ::socket(AF_INET, SOCK_STREAM, 0); })),
        F("exec_mapping", ([] {
                         ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                       })),
        F("kill_other", ([] { ::kill(::getppid(), 0); })),
        F("tgkill_other",
                       ([] { ::syscall(SYS_tgkill, 1, 1, 0); })),
        F("ptrace",
                       ([] { ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); })),
        F("terminal_ioctl", ([] {
                         int n;
                         ::ioctl(0, FIONREAD, &n);
                       })),
        F("kvm_set_memory", ([] {
                         ::ioctl(0, KVM_SET_USER_MEMORY_REGION, nullptr);
                       })),
        F("bind", ([] { ::bind(0, nullptr, 0); }))),
    [](const auto& info) { return std::string(info.param.name); });

// What a zygote and a sandbox being set up do: fork, open files (its
// cgroup's procs file, console.log), Unix sockets bound and listening,
// mappings, then the sandbox's own filter on top and the calls of a running
// VMM, which the zygote's filter must not stop either.
void ZygoteAndSetupCalls() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  if (child < 0) return Say("fork failed ");
  ::waitpid(child, nullptr, 0);
  const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Say("open failed ");
  ::close(fd);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
    return Say("socketpair failed ");
  ::close(pair[0]);
  ::close(pair[1]);
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;  // abstract: nothing to clean up
  std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "kf-jail-test-%d", ::getpid());
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 || ::listen(s, 1) < 0)
    return Say("bind/listen failed ");
  ::close(s);
  if (!InstallSandboxSeccomp(SeccompMode::kEnforce).ok()) return Say("sandbox filter failed ");
  Say("setup-ok ");
  RunningVmmCalls();
}

TEST_P(ZygoteJailTest, SetupWorksAndTheDeniedCallEndsTheZygote) {
  const char* name = GetParam().name;
  ChildResult r = InChild([f = GetParam().call] {
    if (Status s = InstallZygoteSeccomp(SeccompMode::kEnforce); !s.ok()) {
      Say(s.error().message().c_str());
      ::_exit(3);
    }
    f();
    Say("denied call returned\n");
  });
  ASSERT_TRUE(WIFEXITED(r.status)) << name << ": " << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), kSeccompDeniedExit) << name << ": " << r.output;
  EXPECT_NE(r.output.find("kata-factory zygote " ), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(": seccomp denied system call"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("denied call returned"), std::string::npos) << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Denied, ZygoteJailTest,
    ::testing::Values(
        F("execve", ([] {
            char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
            ::execve("/bin/true", argv, nullptr);
          })),
        F("ptrace", ([] { ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); })),
        F("mount", ([] { ::syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, nullptr); })),
        F("unshare", ([] { ::syscall(SYS_unshare, CLONE_NEWNS); })),
        F("inet_socket", ([] { ::socket(AF_INET, SOCK_STREAM, 0); })),
        F("init_module", ([] { ::syscall(SYS_init_module, nullptr, 0, ""); })),
        F("bpf", ([] { ::syscall(SYS_bpf, 0, nullptr, 0); }))),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ZygoteJail, ItsSetupAndThenTheSandboxFilterOnTopWork) {
  ChildResult r = InChild([] {
    if (!InstallZygoteSeccomp(SeccompMode::kEnforce).ok()) ::_exit(3);
    NameSeccompReports("sandbox");
    ZygoteAndSetupCalls();
    ::open("/etc/hostname", O_RDONLY);  // now the sandbox's list applies
    Say("open returned\n");
  });
  EXPECT_NE(r.output.find("setup-ok thread calls-ok\n"), std::string::npos) << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), kSeccompDeniedExit) << r.output;
  EXPECT_NE(r.output.find("kata-factory sandbox "), std::string::npos) << r.output;
}

TEST(Jail, LogModeAllowsAndOffDoesNothing) {
  for (SeccompMode mode : {SeccompMode::kLog, SeccompMode::kOff}) {
    ChildResult r = InChild([mode] {
      JailOptions o;
      o.seccomp = mode;
      o.drop_capabilities = false;
      if (!EnterJail(o).ok()) ::_exit(3);
      int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
      Say(fd >= 0 ? "opened\n" : "open failed\n");
    });
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.output;
    EXPECT_EQ(r.output, "opened\n") << SeccompModeName(mode);
  }
}

TEST(Jail, ModesParseAndRejectOthers) {
  EXPECT_EQ(ParseSeccompMode("enforce"), SeccompMode::kEnforce);
  EXPECT_EQ(ParseSeccompMode("log"), SeccompMode::kLog);
  EXPECT_EQ(ParseSeccompMode("off"), SeccompMode::kOff);
  EXPECT_FALSE(ParseSeccompMode("on").has_value());
  EXPECT_EQ(ParseCgroupMode("required"), CgroupMode::kRequired);
  EXPECT_FALSE(ParseCgroupMode("yes").has_value());
}

// The sandbox's /proc/self/status after the drop: no capability in any
// set, no_new_privs, seccomp mode 2 (filter).
TEST(Jail, CapabilitiesDroppedAndNoNewPrivs) {
  ChildResult r = InChild([] {
    JailOptions o;
    o.seccomp = SeccompMode::kOff;
    if (!EnterJail(o).ok()) ::_exit(3);
    if (HasAnyCapability()) Say("still has a capability\n");
    SayStatusLines({"Cap", "NoNewPrivs"});
  });
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.output;
  EXPECT_EQ(r.output.find("still has"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CapEff:\t0000000000000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CapPrm:\t0000000000000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CapAmb:\t0000000000000000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("NoNewPrivs:\t1"), std::string::npos) << r.output;
  if (::geteuid() == 0) {  // the bounding set can only be cleared with CAP_SETPCAP
    EXPECT_NE(r.output.find("CapBnd:\t0000000000000000"), std::string::npos) << r.output;
  }
}

// A uid of its own: the sandbox's real, effective, saved and file-system
// ids are the given one, it has no supplementary group and no capability,
// and a file only root may read is closed to it (seccomp off here, so it
// is the uid that refuses, not the filter). Needs root to switch ids.
TEST(Jail, OwnUidAndGidWithNoGroupsAndNoAccessToRootFiles) {
  if (!SandboxUidsUnavailableReason().empty())
    GTEST_SKIP() << SandboxUidsUnavailableReason();
  char path[] = "/tmp/kf-jail-rootonly-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_EQ(::chmod(path, 0600), 0);
  for (bool drop : {true, false}) {
    ChildResult r = InChild([&] {
      JailOptions o;
      o.seccomp = SeccompMode::kOff;
      o.drop_capabilities = drop;
      o.uid = 2000000123;
      if (Status s = EnterJail(o); !s.ok()) {
        Say(s.error().message().c_str());
        ::_exit(3);
      }
      if (HasAnyCapability()) Say("still has a capability\n");
      if (::open(path, O_RDONLY) >= 0 || errno != EACCES) Say("root's file opened\n");
      SayStatusLines({"Uid:", "Gid:", "Groups:"});
    });
    SCOPED_TRACE(drop ? "capabilities dropped" : "capabilities kept");
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.output;
    EXPECT_NE(r.output.find("Uid:\t2000000123\t2000000123\t2000000123\t2000000123\n"),
              std::string::npos) << r.output;
    EXPECT_NE(r.output.find("Gid:\t2000000123\t2000000123\t2000000123\t2000000123\n"),
              std::string::npos) << r.output;
    const size_t groups = r.output.find("Groups:");
    ASSERT_NE(groups, std::string::npos) << r.output;
    const std::string line = r.output.substr(groups, r.output.find('\n', groups) - groups);
    EXPECT_EQ(line.find_first_of("0123456789"), std::string::npos) << "groups left: " << line;
    EXPECT_EQ(r.output.find("still has"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("root's file"), std::string::npos) << r.output;
  }
  ::unlink(path);
}

// A temporary file holding `text`; removed by the caller.
std::string TempFileWith(const std::string& text) {
  char path[] = "/tmp/kf-jail-test-XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  return path;
}

// A daemon that is root in a rootless container has CAP_SETUID but only the
// ids its user namespace maps: the range must lie inside one mapped line.
TEST(SandboxUids, RangeMustBeMappedInTheUserNamespace) {
  const std::string path = TempFileWith("         0       1000          1\n"
                                        "         1     100000      65536\n");
  EXPECT_TRUE(IdRangeMapped(path, 0, 1));
  EXPECT_TRUE(IdRangeMapped(path, 1, 65536));
  EXPECT_TRUE(IdRangeMapped(path, 1000, 10));
  EXPECT_FALSE(IdRangeMapped(path, 0, 2)) << "spans two lines";
  EXPECT_FALSE(IdRangeMapped(path, 60000, 10000)) << "runs past the mapping";
  EXPECT_FALSE(IdRangeMapped(path, kDefaultSandboxUidFirst, kDefaultSandboxUidCount));
  EXPECT_FALSE(IdRangeMapped("/nonexistent/uid_map", 0, 1));
  ::unlink(path.c_str());
  // The whole 32-bit space of an initial namespace.
  const std::string all = TempFileWith("         0          0 4294967295\n");
  EXPECT_TRUE(IdRangeMapped(all, kDefaultSandboxUidFirst, kDefaultSandboxUidCount));
  ::unlink(all.c_str());
}

TEST(SandboxUids, ParseAcceptsAutoOffAndRangesOnly) {
  auto a = ParseSandboxUids("auto");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode, SandboxUidSpec::kAuto);
  auto off = ParseSandboxUids("off");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->mode, SandboxUidSpec::kOff);
  auto r = ParseSandboxUids("3000000000:10");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mode, SandboxUidSpec::kRange);
  EXPECT_EQ(r->first, 3000000000u);
  EXPECT_EQ(r->count, 10u);
  EXPECT_EQ(SandboxUidSpecText(*r), "3000000000:10");
  for (const char* bad : {"", "yes", "100", "0:10", "100:0", "-1:5", "10:x", "4294967290:10",
                          "60000:10000", "1:2:3"}) {
    auto p = ParseSandboxUids(bad);
    EXPECT_FALSE(p.ok()) << "'" << bad << "' accepted";
    if (!p.ok()) {
      EXPECT_NE(p.error().message().find("sandbox uids"), std::string::npos);
    }
  }
}

// Ids go round the range: each live one is distinct, a full range says so,
// and a freed id is handed out again only after the others.
TEST(SandboxUids, AllocateRoundRobinUntilFullThenFree) {
  SandboxUidSpec spec{SandboxUidSpec::kRange, 5000000, 3};
  auto uids = SandboxUids::Setup(spec);
  if (const std::string why = SandboxUidsUnavailableReason(5000000, 3); !why.empty()) {
    ASSERT_FALSE(uids.ok()) << "an explicit range this process cannot switch to must fail";
    EXPECT_NE(uids.error().message().find(why), std::string::npos) << uids.error().message();
    return;
  }
  ASSERT_TRUE(uids.ok()) << uids.error().message();
  ASSERT_TRUE(uids->enabled());
  EXPECT_EQ(uids->description(), "5000000..5000002");
  EXPECT_EQ(uids->Allocate(), 5000000u);
  EXPECT_EQ(uids->Allocate(), 5000001u);
  uids->Free(5000000);
  EXPECT_EQ(uids->Allocate(), 5000002u) << "a freed id must not come back first";
  EXPECT_EQ(uids->Allocate(), 5000000u);
  EXPECT_FALSE(uids->Allocate().has_value()) << "the range is full";
  EXPECT_EQ(uids->live(), 3u);
  uids->Free(5000001);
  uids->Free(5000001);  // twice: no effect
  uids->Free(7);        // outside: no effect
  EXPECT_EQ(uids->live(), 2u);
  EXPECT_EQ(uids->Allocate(), 5000001u);
  auto off = SandboxUids::Setup({SandboxUidSpec::kOff, 0, 0});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->enabled());
}

TEST(Jail, CloseAllExceptKeepsOnlyWhatItIsTold) {
  ChildResult r = InChild([] {
    int a = ::open("/dev/null", O_RDONLY), b = ::open("/dev/null", O_RDONLY),
        c = ::open("/dev/null", O_RDONLY), d = ::open("/dev/null", O_RDONLY);
    CloseAllExcept({c, a, -1});
    std::string s;
    for (int fd : {a, b, c, d}) s += ::fcntl(fd, F_GETFD) >= 0 ? "open " : "closed ";
    s += ::fcntl(2, F_GETFD) >= 0 ? "stdio\n" : "no-stdio\n";
    Say(s.c_str());
  });
  EXPECT_EQ(r.output, "open closed open closed stdio\n");
}

// cgroups: where cgroup v2 is not writable (this machine may have only a
// v1 hierarchy), auto says why and required refuses; the real directories
// and limits are checked in the nested tier (kvm_daemon_test).
TEST(SandboxCgroups, OffAutoAndRequired) {
  auto off = SandboxCgroups::Setup(CgroupMode::kOff);
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->enabled());
  EXPECT_NE(off->description().find("off"), std::string::npos);
  auto own = OwnCgroupDir();
  if (own.ok()) {
    EXPECT_EQ(own->rfind("/", 0), 0u) << *own;
  }
  // Setup may move this process (a test process, forked for it) into
  // kf-daemon; run it in a child so the test runner stays where it is.
  ChildResult r = InChild([] {
    auto a = SandboxCgroups::Setup(CgroupMode::kAuto);
    auto q = SandboxCgroups::Setup(CgroupMode::kRequired);
    if (!a.ok()) return Say("auto failed\n");
    if (a->enabled()) {
      // Must then also work for a real sandbox directory.
      auto fd = a->Create("unit-test-sandbox", CgroupLimits{64 << 20, 8});
      Say(fd.ok() ? "enabled created\n" : "enabled create-failed\n");
      a->Remove("unit-test-sandbox");
      if (!q.ok()) Say("required failed while auto worked\n");
    } else {
      Say(q.ok() ? "disabled but required ok\n" : "disabled required-refused\n");
      if (a->description().empty()) Say("no reason given\n");
    }
  });
  EXPECT_TRUE(r.output == "enabled created\n" || r.output == "disabled required-refused\n")
      << r.output;
}

// ForkIntoCgroup: where cgroup v2 is writable (L1; not every development
// machine), the child is in the cgroup from its first instruction; with
// clone3 refused as a container's seccomp profile refuses it (ENOSYS), a
// plain fork() whose child is told to enter the cgroup itself; with an fd
// that is no cgroup, an error, never a child that thinks it is in one.
TEST(SandboxCgroups, ForkIntoCgroup) {
  // In the child: forks with ForkIntoCgroup(dirfd), says "born" or "forked"
  // and the grandchild's cgroup v2 line of /proc/self/cgroup, or "error
  // <errno>".
  auto fork_and_say = [](int dirfd) {
    bool born = true;
    pid_t pid = ForkIntoCgroup(dirfd, &born);
    if (pid == 0) {
      std::ifstream in("/proc/self/cgroup");  // its cgroup v2 line
      std::string line, v2 = "no-v2-line";
      while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) v2 = line;
      Say((v2 + "\n").c_str());
      ::_exit(0);
    }
    if (pid < 0) return Say(("error " + std::to_string(errno) + (born ? " born" : "") + "\n").c_str());
    Say(born ? "born " : "forked ");
    ::waitpid(pid, nullptr, 0);
  };
  ChildResult real = InChild([&] {
    auto a = SandboxCgroups::Setup(CgroupMode::kAuto);
    if (!a.ok() || !a->enabled()) return Say("no writable cgroup v2\n");
    auto fd = a->Create("unit-test-fork", CgroupLimits{64 << 20, 8});
    if (!fd.ok()) return Say("create failed\n");
    fork_and_say(fd->get());
    a->Remove("unit-test-fork");
  });
  if (real.output != "no writable cgroup v2\n") {
    EXPECT_EQ(real.output.rfind("born 0::/", 0), 0u) << real.output;
    EXPECT_NE(real.output.find("/kf-sandboxes/unit-test-fork\n"), std::string::npos) << real.output;
  }

  ChildResult no_clone3 = InChild([&] {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0 ||
        seccomp_load(ctx) != 0)
      return Say("seccomp failed\n");
    seccomp_release(ctx);
    int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fork_and_say(dir);
  });
  EXPECT_EQ(no_clone3.output.rfind("forked ", 0), 0u) << no_clone3.output;

  ChildResult not_a_cgroup = InChild([&] {
    int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fork_and_say(dir);
  });
  // An error where the kernel has clone3; a plain fork where it has not.
  EXPECT_TRUE(not_a_cgroup.output.rfind("error ", 0) == 0 ||
              not_a_cgroup.output.rfind("forked ", 0) == 0)
      << not_a_cgroup.output;
  EXPECT_EQ(not_a_cgroup.output.find("born"), std::string::npos) << not_a_cgroup.output;
}

}  // namespace
}  // namespace kf
