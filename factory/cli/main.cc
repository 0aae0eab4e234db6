// kata-factory: the command-line entry point.
#include <cstdio>
#include <cstring>

#include "factory/cli/commands.h"

namespace kf::cli {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "kata-factory: %s\n", message.c_str());
  return code;
}

}  // namespace kf::cli

namespace {

constexpr char kUsage[] =
    "kata-factory: a VM-template fork server for Kata-style sandboxes\n"
    "\n"
    "Usage: kata-factory VERB [OPTIONS]\n"
    "  demo                     template of the embedded bare guest, clones, summary\n"
    "  template create|inspect  make a template (boot + snapshot), or check one\n"
    "  clone DIR --count N      clone a template N times and measure each clone\n"
    "  host                     what this host's /dev/kvm offers, and the jail it can enforce\n"
    "  daemon                   serve the gRPC API: templates, zygotes, warm pools\n"
    "  get TEMPLATE             a ready VM from the daemon (GetVM)\n"
    "  release ID...            stop VMs the daemon handed out\n"
    "  status                   the daemon's pools, VMs, memory, KSM\n"
    "  ls                       the daemon's VMs\n"
    "  run [--rm] -- CMD ARG... a container in a VM from the daemon\n"
    "  bench [--mode M]         latency, throughput, density, working set of VMs\n"
    "  version                  print the version\n"
    "Each verb takes --help. Exit status: 0 ok, 1 failed, 2 bad usage (run: the\n"
    "container's; 125 its own failures, see run --help).\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace kf::cli;
  if (argc < 2) return std::fputs(kUsage, stderr), kExitUsage;
  const std::string verb = argv[1];
  Argv rest(argv + 2, argv + argc);
  if (verb == "--help" || verb == "-h" || verb == "help") return std::fputs(kUsage, stdout), 0;
  if (verb == "version" || verb == "--version") return std::puts("kata-factory 0.1.0"), 0;
  if (verb == "template") return TemplateCommand(rest);
  if (verb == "clone") return CloneCommand(rest);
  if (verb == "demo") return DemoCommand(rest);
  if (verb == "host") return HostCommand(rest);
  if (verb == "daemon") return DaemonCommand(rest);
  if (verb == "zygote") return ZygoteCommand(rest);  // internal (the daemon's)
  if (verb == "get") return GetCommand(rest);
  if (verb == "release") return ReleaseCommand(rest);
  if (verb == "status") return StatusCommand(rest);
  if (verb == "ls") return LsCommand(rest);
  if (verb == "run") return RunCommand(rest);
  if (verb == "bench") return BenchCommand(rest);
  return Fail("unknown verb '" + verb + "' (see kata-factory --help)", kExitUsage);
}
