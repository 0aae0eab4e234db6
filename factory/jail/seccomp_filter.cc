#include "factory/jail/seccomp_filter.h"

#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <initializer_list>

namespace kf {

namespace {

// Plain system calls a running sandbox VMM makes, with any arguments.
// Grouped by why it needs them.
constexpr int kAllowed[] = {
    // vCPU and device threads: memory, futexes, signals to kick KVM_RUN.
    SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(gettid), SCMP_SYS(getpid),
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group),
    // Time: the run loop's deadlines (the vDSO answers most without a call).
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday),
    // I/O on descriptors it already holds: agent.sock and console.sock
    // connections, the control socket, console.log, eventfds, the pmem
    // image (fsync on a guest FLUSH).
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(close),
    SCMP_SYS(fcntl), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(msync),
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(eventfd2),
    SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(connect), SCMP_SYS(shutdown),
    SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
    SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
    SCMP_SYS(getrandom),
};

// The KVM ioctls of a running clone: KVM_RUN, interrupt lines, and reads of
// state (crash reports). Everything that builds or reshapes a VM (create,
// memory slots, SET_* of state) is done before the filter goes on.
constexpr unsigned long kKvmIoctls[] = {
    KVM_RUN,          KVM_IRQ_LINE,      KVM_IRQ_LINE_STATUS, KVM_GET_REGS,
    KVM_GET_SREGS,    KVM_GET_FPU,       KVM_GET_MSRS,        KVM_GET_LAPIC,
    KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_XSAVE,     KVM_GET_XCRS,
    KVM_GET_DEBUGREGS, KVM_GET_IRQCHIP,  KVM_GET_PIT, KVM_GET_PIT2,        KVM_GET_CLOCK,
    KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
};

// The system calls neither a zygote nor a sandbox being set up ever makes
// (the zygote's deny-list): running other programs, debugging or reading
// other processes, changing the file system tree, namespaces, the kernel
// itself (modules, kexec, BPF, perf, keys), the host's clock and name.
constexpr int kZygoteDenied[] = {
    SCMP_SYS(execve), SCMP_SYS(execveat),
    SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
    SCMP_SYS(kcmp), SCMP_SYS(pidfd_getfd),
    SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot),
    SCMP_SYS(move_mount), SCMP_SYS(open_tree), SCMP_SYS(fsopen), SCMP_SYS(fsmount),
    SCMP_SYS(fsconfig), SCMP_SYS(fspick), SCMP_SYS(mount_setattr),
    SCMP_SYS(unshare), SCMP_SYS(setns),
    SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
    SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(reboot),
    SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(acct), SCMP_SYS(quotactl),
    SCMP_SYS(syslog), SCMP_SYS(iopl), SCMP_SYS(ioperm),
    SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd),
    SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
    SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at), SCMP_SYS(fanotify_init),
    SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime),
    SCMP_SYS(adjtimex), SCMP_SYS(sethostname), SCMP_SYS(setdomainname),
    SCMP_SYS(personality), SCMP_SYS(vhangup), SCMP_SYS(uselib),
};

// Who a denial report names ("sandbox" or "zygote"); set before the filter
// goes on, read by the handler.
const char* volatile g_reporter = "sandbox";

// Async-signal-safe: formats with no libc beyond write() and _exit().
void OnDenied(int, siginfo_t* info, void*) {
  char buf[96];
  char* p = buf;
  auto put = [&p](const char* s) {
    while (*s) *p++ = *s++;
  };
  auto put_num = [&p](long v) {
    char digits[24];
    int n = 0;
    if (v < 0) {
      *p++ = '-';
      v = -v;
    }
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v > 0);
    while (n > 0) *p++ = digits[--n];
  };
  put("kata-factory ");
  put(g_reporter);
  put(" ");
  put_num(::getpid());
  put(": seccomp denied system call ");
  put_num(info->si_syscall);
  put("\n");
  (void)!::write(STDERR_FILENO, buf, static_cast<size_t>(p - buf));
  ::_exit(kSeccompDeniedExit);
}

class Filter {
 public:
  explicit Filter(uint32_t default_action) : ctx_(seccomp_init(default_action)) {}
  ~Filter() {
    if (ctx_ != nullptr) seccomp_release(ctx_);
  }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
  bool ok() const { return ctx_ != nullptr; }

  Status Add(uint32_t action, int syscall, std::initializer_list<scmp_arg_cmp> args = {}) {
    int rc = seccomp_rule_add_array(ctx_, action, syscall, static_cast<unsigned>(args.size()),
                                    args.size() ? args.begin() : nullptr);
    if (rc < 0) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, syscall);
      Error e = Error::Sys(std::string("seccomp rule for ") + (name ? name : "?"), -rc);
      std::free(name);
      return e;
    }
    return Status::Ok();
  }
  scmp_filter_ctx get() { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

Status Build(Filter& f) {
  const uint32_t allow = SCMP_ACT_ALLOW;
  for (int sc : kAllowed) RETURN_IF_ERROR(f.Add(allow, sc));
  for (unsigned long req : kKvmIoctls)
    RETURN_IF_ERROR(f.Add(allow, SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)}));
  // Threads only: a clone() without CLONE_THREAD would be a fork. glibc
  // tries clone3 first and falls back to clone on ENOSYS; clone3's flags
  // sit in memory, where a filter cannot look.
  RETURN_IF_ERROR(
      f.Add(allow, SCMP_SYS(clone), {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)}));
  RETURN_IF_ERROR(f.Add(SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3)));
  // Memory, never executable.
  for (int sc : {SCMP_SYS(mmap), SCMP_SYS(mprotect)})
    RETURN_IF_ERROR(f.Add(allow, sc, {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)}));
  // Unix sockets only: the hybrid vsock connects guest-initiated streams
  // to <agent.sock>_<port>.
  RETURN_IF_ERROR(f.Add(allow, SCMP_SYS(socket), {SCMP_A0(SCMP_CMP_EQ, AF_UNIX)}));
  // Signals only to its own threads (the kick out of KVM_RUN).
  RETURN_IF_ERROR(f.Add(allow, SCMP_SYS(tgkill),
                        {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(::getpid()))}));
  // Cleanup a jailed VMM may not do (see the header).
  for (int sc : {SCMP_SYS(unlink), SCMP_SYS(unlinkat)})
    RETURN_IF_ERROR(f.Add(SCMP_ACT_ERRNO(EPERM), sc));
  return Status::Ok();
}


Status BuildZygote(Filter& f, uint32_t deny) {
  for (int sc : kZygoteDenied) RETURN_IF_ERROR(f.Add(deny, sc));
  // Unix sockets only (socketpairs for clones, agent.sock, console.sock).
  for (int sc : {SCMP_SYS(socket), SCMP_SYS(socketpair)})
    RETURN_IF_ERROR(f.Add(deny, sc, {SCMP_A0(SCMP_CMP_NE, AF_UNIX)}));
  return Status::Ok();
}

// The SIGSYS report for kEnforce, naming `who`.
Status InstallDeniedHandler(SeccompMode mode, const char* who) {
  g_reporter = who;
  if (mode != SeccompMode::kEnforce) return Status::Ok();
  struct sigaction sa {};
  sa.sa_sigaction = OnDenied;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, nullptr) < 0) return Error::Sys("sigaction SIGSYS");
  return Status::Ok();
}

// TSYNC: every thread that exists now gets the filter too.
Status Load(Filter& f) {
  if (int rc = seccomp_attr_set(f.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0)
    return Error::Sys("seccomp TSYNC attribute", -rc);
  if (int rc = seccomp_load(f.get()); rc < 0) return Error::Sys("loading the seccomp filter", -rc);
  return Status::Ok();
}

}  // namespace

Status InstallSandboxSeccomp(SeccompMode mode) {
  if (mode == SeccompMode::kOff) return Status::Ok();
  RETURN_IF_ERROR(InstallDeniedHandler(mode, "sandbox"));
  Filter f(mode == SeccompMode::kLog ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
  if (!f.ok()) return Error("seccomp_init failed (libseccomp)");
  RETURN_IF_ERROR(Build(f));
  return Load(f);
}

Status InstallZygoteSeccomp(SeccompMode mode) {
  if (mode == SeccompMode::kOff) return Status::Ok();
  RETURN_IF_ERROR(InstallDeniedHandler(mode, "zygote"));
  Filter f(SCMP_ACT_ALLOW);
  if (!f.ok()) return Error("seccomp_init failed (libseccomp)");
  RETURN_IF_ERROR(BuildZygote(f, mode == SeccompMode::kLog ? SCMP_ACT_LOG : SCMP_ACT_TRAP));
  return Load(f);
}

void NameSeccompReports(const char* who) { g_reporter = who; }

std::string SeccompUnavailableReason() {
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
    return std::string("the kernel has no seccomp (prctl PR_GET_SECCOMP: ") + std::strerror(errno) +
           ")";
  std::ifstream in("/proc/sys/kernel/seccomp/actions_avail");
  std::string actions;
  std::getline(in, actions);
  for (const char* needed : {"trap", "log"})
    if (!actions.empty() && (" " + actions + " ").find(std::string(" ") + needed + " ") ==
                                std::string::npos)
      return std::string("the kernel's seccomp lacks the ") + needed + " action (" + actions + ")";
  return "";
}

std::optional<SeccompMode> ParseSeccompMode(std::string_view name) {
  if (name == "enforce") return SeccompMode::kEnforce;
  if (name == "log") return SeccompMode::kLog;
  if (name == "off") return SeccompMode::kOff;
  return std::nullopt;
}

const char* SeccompModeName(SeccompMode mode) {
  switch (mode) {
    case SeccompMode::kEnforce: return "enforce";
    case SeccompMode::kLog: return "log";
    case SeccompMode::kOff: return "off";
  }
  return "?";
}

}  // namespace kf
