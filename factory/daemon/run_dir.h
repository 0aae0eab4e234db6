// What the daemon owns on the file system while it runs, and what a daemon
// that died may have left there:
//
//   SOCKET            the gRPC Unix socket (mode 0600)
//   SOCKET.lock       flock()ed while a daemon serves SOCKET
//   RUN/daemon.lock   flock()ed while a daemon uses RUN (holds its pid)
//   RUN/vms/<id>/     one per live VM: agent.sock, console.sock (linux)
//
// Locks are released by the kernel when a daemon dies, so a lock that can
// be taken means nobody is there: a socket file without a listener is stale
// and removed. Zygotes run as `kata-factory zygote ... --run-dir RUN` and
// their sandboxes inherit that command line, which is how a restarted
// daemon recognises processes an earlier one left behind.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::daemon {

// mkdir -p with mode 0700 for what it creates.
Status MakeDirs(const std::string& path);

// flock(LOCK_EX | LOCK_NB) on `path` (created 0600), writing our pid into
// it. Fails naming the pid inside when another process holds it.
Result<UniqueFd> LockFile(const std::string& path);

// True when something accepts connections on the Unix socket at `path`.
bool SocketAnswers(const std::string& path);

// Takes SOCKET for this daemon: its lock, then refuses if a daemon answers
// there, else removes a stale socket file. The lock fd is held until the
// daemon removes the socket.
Result<UniqueFd> ClaimSocket(const std::string& socket_path);

// A process's state letter ('R', 'S', 'Z', ...) and parent, from
// /proc/PID/stat; nullopt when it is gone.
struct ProcStat {
  char state = 0;
  pid_t ppid = 0;
};
std::optional<ProcStat> ReadProcStat(pid_t pid);

// Processes whose command line is a zygote (or sandbox) of a daemon using
// `run_dir`: argv[1] == "zygote" and "--run-dir" `run_dir`.
std::vector<pid_t> FindOurProcesses(const std::string& run_dir);

// What a daemon that died left in RUN: SIGKILLs FindOurProcesses (waiting
// up to a second for them to go) and removes RUN/vms/*. Returns a line per
// thing cleaned, for the log.
std::vector<std::string> CleanLeftovers(const std::string& run_dir);

}  // namespace kf::daemon
