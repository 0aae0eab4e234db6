// `kata-factory daemon`: the factory daemon (factory/daemon/, docs/DAEMON.md).
// `kata-factory zygote`: internal, what the daemon runs per template.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/daemon/daemon_server.h"
#include "factory/daemon/ops/config_flags.h"
#include "factory/daemon/ops/host_port.h"
#include "factory/daemon/ops_bridge.h"
#include "factory/zygote.h"
#include "vmm-glue/nx_huge_pages.h"

namespace kf::cli {

namespace {

constexpr char kDaemonHelp[] =
    "Usage: kata-factory daemon [--config FILE] [--KEY VALUE ...]\n"
    "  Serve the katafactory.v1.Factory gRPC API (proto/factory.proto) with\n"
    "  grpc.health.v1 health checking and server reflection, until SIGTERM or\n"
    "  SIGINT, which drain: stop accepting, release every VM, stop the zygotes,\n"
    "  remove the socket. Templates are STATE/templates/<name>/ (CreateTemplate\n"
    "  makes them there) and those the config names; each gets a zygote process\n"
    "  and a warm pool of ready clones. Refuses to start when another daemon\n"
    "  owns the socket or the run directory; cleans what a daemon that died left\n"
    "  in the run directory.\n"
    "  --config FILE      a TOML file (docs/config.example.toml has every key);\n"
    "                     without it, the defaults and the flags only\n"
    "  Every key of the file is also a flag, and flags win over the file\n"
    "  ('-' or '_'; --KEY VALUE or --KEY=VALUE):\n"
    "  --socket PATH      Unix socket, mode 0600 (default /run/kata-factory/factory.sock)\n"
    "  --run-dir DIR      per-VM sockets DIR/vms/<id>/ and locks (default /run/kata-factory)\n"
    "  --state-dir DIR    templates: DIR/templates/<name>/ (default /var/lib/kata-factory)\n"
    "  --tcp-listen HOST:PORT  also serve gRPC over TCP, without authentication\n"
    "                     (default \"\": off)\n"
    "  --metrics-listen HOST:PORT  Prometheus GET /metrics over HTTP, no\n"
    "                     authentication (default 127.0.0.1:9464; \"\": off; an\n"
    "                     address beyond loopback is served, with a warning logged)\n"
    "  --log-level L      debug, info, warn or error (default info)\n"
    "  --log-file PATH    JSON lines appended to PATH, reopened on SIGHUP\n"
    "                     (default \"\": JSON lines on stderr)\n"
    "  --max-live-vms N   admission cap on live VMs, pooled ones included\n"
    "                     (default 1024; 0: no cap)\n"
    "  --mem-floor SIZE   refuse new clones while MemAvailable is below SIZE:\n"
    "                     bytes, or K/M/G/T (default 1G; 0: off)\n"
    "  --lease-seconds S  GetVM leases without their own expire after S seconds\n"
    "                     (default 0: a VM lives until ReleaseVM)\n"
    "  --guest-dir G      Linux guest images for CreateTemplate and guest = linux\n"
    "                     (vmlinuz, initramfs.cpio.gz; default $KF_GUEST_DIR)\n"
    "  --pool-size N      warm VMs kept ready, for each template without its own\n"
    "                     [templates.NAME] (default 0: clone on demand)\n"
    "  --refill-per-second R  their pool clones per second at most (default 0: no cap)\n"
    "  --mergeable BOOL   their clone memory madvise(MADV_MERGEABLE) for KSM\n"
    "                     (default true)\n"
    "  --seccomp MODE     each sandbox VMM's system call allow-list: enforce (a\n"
    "                     call outside it ends the sandbox), log (allowed, logged\n"
    "                     by the kernel's audit) or off (default enforce)\n"
    "  --drop-capabilities BOOL  sandboxes give up every capability (default true)\n"
    "  --cgroup MODE      a cgroup v2 per sandbox (memory.max, pids.max): auto\n"
    "                     (where cgroup v2 is writable; logged when not), off or\n"
    "                     required (refuse to start without) (default auto)\n"
    "  --sandbox-uids R   a uid and gid of its own for each sandbox VMM: auto (when\n"
    "                     root: 2000000000:65536; logged when not), off, or\n"
    "                     FIRST:COUNT (default auto)\n"
    "  --sandbox-memory-headroom SIZE  memory.max = guest memory + SIZE (default 64M)\n"
    "  --sandbox-pids-max N  pids.max of each sandbox (default 64; 0: no limit)\n"
    "  --kvm-nx-huge-pages keep|never  never: at start, as root, set the kvm\n"
    "                     module's nx_huge_pages to never where that changes no\n"
    "                     protection (see kata-factory host --help), so KVM starts\n"
    "                     no kernel thread per clone; logged either way (default keep)\n"
    "  --templates.NAME.KEY VALUE  one template: KEY is path (a template\n"
    "                     directory) or guest (bare or linux: created at start\n"
    "                     under STATE unless there, with mem_mib), and pool_size,\n"
    "                     refill_per_second, mergeable (defaults 0, 0, true)\n"
    "  Older spellings: --mem-floor-mib M (= --mem-floor M MiB), --no-mergeable\n"
    "  (= --mergeable false).\n"
    "  Logs are JSON lines (time, level, msg, sandbox, template). SIGHUP reopens\n"
    "  the log file. Exit status: 0 after a clean drain, 1 when it cannot start,\n"
    "  2 for a bad flag or config file.\n";

constexpr char kZygoteHelp[] =
    "Usage: kata-factory zygote --template DIR --fd N [--run-dir RUN]\n"
    "                           [--seccomp enforce|log|off] [--keep-capabilities]\n"
    "  Internal: what the daemon starts, one per template. Loads the template in\n"
    "  DIR, reports on the SOCK_SEQPACKET socket N, then forks a sandbox VMM per\n"
    "  request on it until it closes. --run-dir only marks the process as the\n"
    "  daemon's (a restarted daemon finds leftovers by it). Each sandbox enters\n"
    "  the jail before its guest runs: the seccomp allow-list (default enforce)\n"
    "  and, unless --keep-capabilities, no capabilities (docs/RELIABILITY.md).\n";

// kvm.nx_huge_pages=never where asked and harmless; otherwise a note when it
// would be. Never fatal: it is a start-up cost per clone, not a protection.
void TuneKvm(bool never, ops::JsonLogger& log) {
  const NxHugePages now = ReadNxHugePages();
  if (!now.ThreadPerVm()) return;
  const std::string why_not = now.WhyNotTunable();
  if (!never) {
    if (why_not.empty())
      log.Info("kvm.nx_huge_pages is " + now.value +
               ": KVM starts a kernel thread per VM (ms per clone); this CPU is not affected by "
               "iTLB multihit, so kvm_nx_huge_pages = never would stop that");
    return;
  }
  auto done = SetNxHugePagesNever();
  if (done.ok()) log.Info(*done);
  else log.Warn("kvm_nx_huge_pages = never not applied: " + done.error().message());
}

}  // namespace

int DaemonCommand(const Argv& argv) {
  for (const auto& a : argv)
    if (a == "--help" || a == "-h") return std::fputs(kDaemonHelp, stdout), 0;
  auto flags = daemon::ExpandDaemonFlagAliases(argv);
  if (!flags.ok()) return Fail(flags.error().message(), kExitUsage);
  auto config = ops::DaemonConfigFromArgs(*flags);
  if (!config.ok()) return Fail(config.error().message(), kExitUsage);
  auto options = daemon::DaemonOptionsFromConfig(*config);
  if (!options.ok()) return Fail(options.error().message(), kExitUsage);
  daemon::DaemonOptions& o = *options;
  if (o.guest_dir.empty()) {
    const char* guest_env = std::getenv("KF_GUEST_DIR");
    if (guest_env) o.guest_dir = guest_env;
  }

  // Every thread the daemon starts (the /metrics server's too) inherits this
  // mask; the main thread takes the signals with sigwait() (no handler runs
  // on a gRPC thread).
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto bridge = daemon::OpsBridge::Create(*config);
  if (!bridge.ok()) return Fail("daemon: " + bridge.error().message());
  daemon::OpsBridge& ops = **bridge;
  o.hooks = ops.Hooks();
  if (Status s = ops.StartMetrics(); !s.ok()) {
    ops.logger().Error("cannot start: " + s.error().message());
    return Fail("daemon: " + s.error().message());
  }
  if (!o.tcp_listen.empty()) {
    auto hp = ops::ParseHostPort(o.tcp_listen);
    if (hp.ok() && !daemon::IsLoopbackHost(hp->host))
      ops.logger().Warn("serving gRPC on TCP beyond loopback, without authentication",
                        ops::LogFields().Str("listen", o.tcp_listen));
  }
  TuneKvm(o.kvm_nx_huge_pages_never, ops.logger());  // before the first VM
  auto d = daemon::Daemon::Start(std::move(o));
  if (!d.ok()) {
    ops.logger().Error("cannot start: " + d.error().message());
    return Fail("daemon: " + d.error().message());
  }
  ops.Attach(&(*d)->core());
  for (;;) {
    int sig = 0;
    if (sigwait(&stop, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (Status s = ops.ReopenLog(); !s.ok())
        (*d)->core().Log(daemon::LogSeverity::kError, "reopening the log: " + s.error().message());
      continue;
    }
    (*d)->core().Log(daemon::LogSeverity::kInfo,
                     std::string("draining on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    break;
  }
  ops.Attach(nullptr);  // /metrics keeps serving counters while the core drains
  (*d)->Drain();
  d->reset();           // before the bridge its hooks point at
  return 0;
}

int ZygoteCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"help", "keep-capabilities"}, {"template", "fd", "run-dir", "seccomp"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kZygoteHelp, stdout), 0;
  auto fd = args->GetUint("fd", 0);
  if (!fd.ok()) return Fail(fd.error().message(), kExitUsage);
  if (!args->Has("template") || *fd < 3 || *fd > 1024)
    return Fail("zygote needs --template DIR and --fd N (N >= 3)", kExitUsage);
  JailOptions jail;
  if (args->Has("seccomp")) {
    auto mode = ParseSeccompMode(args->Get("seccomp"));
    if (!mode) return Fail("--seccomp: '" + args->Get("seccomp") + "' is not enforce, log or off",
                           kExitUsage);
    jail.seccomp = *mode;
  }
  jail.drop_capabilities = !args->Has("keep-capabilities");
  RunZygoteProcess(args->Get("template"), static_cast<int>(*fd), jail);
}

}  // namespace kf::cli
