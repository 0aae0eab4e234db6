// `kata-factory daemon`: the factory daemon (factory/daemon/, docs/DAEMON.md).
// `kata-factory zygote`: internal, what the daemon runs per template.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/daemon/daemon_server.h"
#include "factory/zygote.h"

namespace kf::cli {

namespace {

constexpr char kDaemonHelp[] =
    "Usage: kata-factory daemon [--socket PATH] [--run-dir DIR] [--state-dir DIR]\n"
    "                           [--tcp-listen HOST:PORT] [--max-live-vms N]\n"
    "                           [--mem-floor-mib M] [--pool-size N] [--refill-per-second R]\n"
    "                           [--lease-seconds S] [--guest-dir G] [--no-mergeable]\n"
    "  Serve the katafactory.v1.Factory gRPC API (proto/factory.proto) with\n"
    "  grpc.health.v1 health checking and server reflection, until SIGTERM or\n"
    "  SIGINT, which drain: stop accepting, release every VM, stop the zygotes,\n"
    "  remove the socket. Templates are STATE/templates/<name>/ (CreateTemplate\n"
    "  makes them there); each gets a zygote process and a warm pool of ready\n"
    "  clones. Refuses to start when another daemon owns the socket or the run\n"
    "  directory; cleans what a daemon that died left in the run directory.\n"
    "  --socket PATH      Unix socket, mode 0600 (default /run/kata-factory/factory.sock)\n"
    "  --run-dir DIR      per-VM sockets DIR/vms/<id>/ and locks (default /run/kata-factory)\n"
    "  --state-dir DIR    templates (default /var/lib/kata-factory)\n"
    "  --tcp-listen HOST:PORT  also serve over TCP, without authentication (default: off)\n"
    "  --max-live-vms N   admission cap on live VMs, pooled ones included\n"
    "                     (default 1024; 0: no cap)\n"
    "  --mem-floor-mib M  refuse new clones while MemAvailable is below M MiB\n"
    "                     (default 1024; 0: off)\n"
    "  --pool-size N      warm VMs kept ready per template (default 0: clone on demand)\n"
    "  --refill-per-second R  pool clones per second at most, per template (default: no cap)\n"
    "  --lease-seconds S  GetVM leases without their own expire after S seconds\n"
    "                     (default 0: a VM lives until ReleaseVM)\n"
    "  --guest-dir G      Linux guest images for CreateTemplate (vmlinuz,\n"
    "                     initramfs.cpio.gz; default $KF_GUEST_DIR)\n"
    "  --no-mergeable     do not madvise(MADV_MERGEABLE) clone memory for KSM\n"
    "  Logs go to stderr, one line each. Exit status: 0 after a clean drain,\n"
    "  1 when it cannot start.\n";

constexpr char kZygoteHelp[] =
    "Usage: kata-factory zygote --template DIR --fd N [--run-dir RUN]\n"
    "  Internal: what the daemon starts, one per template. Loads the template in\n"
    "  DIR, reports on the SOCK_SEQPACKET socket N, then forks a sandbox VMM per\n"
    "  request on it until it closes. --run-dir only marks the process as the\n"
    "  daemon's (a restarted daemon finds leftovers by it).\n";

Result<double> ParseDouble(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || v < 0)
    return Error("--" + name + " wants a non-negative number, not '" + text + "'");
  return v;
}

}  // namespace

int DaemonCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"help", "no-mergeable"},
                          {"socket", "run-dir", "state-dir", "tcp-listen", "max-live-vms", "mem-floor-mib",
                           "pool-size", "refill-per-second", "lease-seconds", "guest-dir"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kDaemonHelp, stdout), 0;
  if (!args->positional().empty()) return Fail("daemon takes no positional arguments", kExitUsage);
  daemon::DaemonOptions o;
  o.socket = args->Get("socket", o.socket);
  o.run_dir = args->Get("run-dir", o.run_dir);
  o.state_dir = args->Get("state-dir", o.state_dir);
  o.tcp_listen = args->Get("tcp-listen");
  const char* guest_env = std::getenv("KF_GUEST_DIR");
  o.guest_dir = args->Get("guest-dir", guest_env ? guest_env : "");
  auto max_vms = args->GetUint("max-live-vms", 1024);
  auto floor = args->GetUint("mem-floor-mib", 1024);
  auto pool = args->GetUint("pool-size", 0);
  auto lease = args->GetUint("lease-seconds", 0);
  for (auto* r : {&max_vms, &floor, &pool, &lease})
    if (!r->ok()) return Fail(r->error().message(), kExitUsage);
  // As the config file's max_live_vms: 0 is no cap.
  if (*max_vms == 0) o.max_live_vms.reset();
  else o.max_live_vms = *max_vms;
  o.mem_floor_bytes = *floor << 20;
  if (*pool > 100000) return Fail("--pool-size must be 0..100000", kExitUsage);
  o.default_pool.size = static_cast<uint32_t>(*pool);
  o.default_pool.mergeable = !args->Has("no-mergeable");
  if (args->Has("refill-per-second")) {
    auto rate = ParseDouble("refill-per-second", args->Get("refill-per-second"));
    if (!rate.ok()) return Fail(rate.error().message(), kExitUsage);
    o.default_pool.refill_per_second = *rate;
  }
  if (*lease > 0xffffffffull) return Fail("--lease-seconds is too large", kExitUsage);
  o.default_lease_seconds = static_cast<uint32_t>(*lease);

  // Every thread the daemon starts inherits this mask; the main thread
  // takes the signals with sigwait() (no handler runs on a gRPC thread).
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto d = daemon::Daemon::Start(std::move(o));
  if (!d.ok()) return Fail("daemon: " + d.error().message());
  for (;;) {
    int sig = 0;
    if (sigwait(&stop, &sig) != 0) continue;
    if (sig == SIGHUP) continue;  // reserved: log reopen (ops)
    (*d)->core().Log(daemon::LogSeverity::kInfo,
                     std::string("draining on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    break;
  }
  (*d)->Drain();
  return 0;
}

int ZygoteCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"help"}, {"template", "fd", "run-dir"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kZygoteHelp, stdout), 0;
  auto fd = args->GetUint("fd", 0);
  if (!fd.ok()) return Fail(fd.error().message(), kExitUsage);
  if (!args->Has("template") || *fd < 3 || *fd > 1024)
    return Fail("zygote needs --template DIR and --fd N (N >= 3)", kExitUsage);
  RunZygoteProcess(args->Get("template"), static_cast<int>(*fd));
}

}  // namespace kf::cli
