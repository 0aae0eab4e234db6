// The sandbox VMM's seccomp allow-list (libseccomp): the system calls and
// KVM ioctls a restored clone's VMM makes while its guest runs, and nothing
// else. Notably absent: open/openat, execve, fork (only threads may be
// created), bind/listen, sockets other than AF_UNIX, kill of other
// processes, ptrace, mount, and executable mappings. unlink/unlinkat fail
// with EPERM instead of ending the sandbox: a jailed VMM leaves removing its
// sockets to its owner (the daemon removes RUN/vms/<id>/).
//
// In kEnforce mode a denied call raises SIGSYS; the handler installed here
// writes "kata-factory sandbox PID: seccomp denied system call N" to stderr
// and exits with kSeccompDeniedExit, so an operator sees which call it was.
#pragma once

#include <string>

#include "factory/jail/jail_options.h"
#include "vmm-glue/result.h"

namespace kf {

inline constexpr int kSeccompDeniedExit = 159;  // 128 + SIGSYS

// Loads the filter into every thread of the calling process (TSYNC) and
// sets no_new_privs. Irreversible. kOff does nothing.
Status InstallSandboxSeccomp(SeccompMode mode);

// The zygote's filter (factory/zygote.cc), loaded once its template is
// loaded and /dev/kvm open, so it covers the zygote and every sandbox from
// its fork until its own filter stacks on top: a deny-list, since a
// sandbox being set up must still open its cgroup, bind its sockets and
// build its VM. Denied: execve, ptrace and reading other processes,
// mount and namespaces, modules, kexec, BPF, perf, keys, the host clock and
// name, sockets other than AF_UNIX. Reports say "zygote" until a sandbox
// calls NameSeccompReports("sandbox") after its fork.
Status InstallZygoteSeccomp(SeccompMode mode);
void NameSeccompReports(const char* who);

// Whether this kernel can enforce the filter (seccomp filters with the trap
// and log actions); empty when it can, else why not.
std::string SeccompUnavailableReason();

}  // namespace kf
