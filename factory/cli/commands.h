// The kata-factory verbs. Each returns the process exit code: 0 success,
// 1 the operation failed (one-line reason on stderr), 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace kf::cli {

using Argv = std::vector<std::string>;

int TemplateCommand(const Argv& args);
int CloneCommand(const Argv& args);
int DemoCommand(const Argv& args);
int HostCommand(const Argv& args);
// The daemon (cmd_daemon.cc) and the verbs that talk to it (cmd_vm.cc).
int DaemonCommand(const Argv& args);
int ZygoteCommand(const Argv& args);  // internal: returns only on bad usage
int GetCommand(const Argv& args);
int ReleaseCommand(const Argv& args);
int StatusCommand(const Argv& args);
int LsCommand(const Argv& args);
// A container in a VM from the daemon (cmd_run.cc). Exit status: the
// process's, or 125 (its own failure), 126, 127, as docker run.
int RunCommand(const Argv& args);
// Latency, throughput, density, working set of VMs from the daemon (cmd_bench.cc).
int BenchCommand(const Argv& args);

// Prints "kata-factory: <message>" to stderr and returns `code`.
int Fail(const std::string& message, int code = 1);

inline constexpr int kExitUsage = 2;

}  // namespace kf::cli
