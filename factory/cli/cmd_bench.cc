// `kata-factory bench`: latency, throughput, density and working set of VMs
// from the daemon (issue #6), against a running daemon (--socket) or one
// started in this process (--self). The measuring is in bench/; this file
// parses the command line, checks what can be checked before any VM exists,
// runs the modes and prints the report.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "bench/density.h"
#include "bench/host_limits.h"
#include "bench/ksm.h"
#include "bench/latency.h"
#include "bench/machine.h"
#include "bench/compare.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "bench/target.h"
#include "bench/throughput.h"
#include "bench/working_set.h"
#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/daemon_client.h"
#include "factory/cli/json.h"

namespace kf::cli {

namespace {

constexpr char kBenchHelp[] =
    "Usage: kata-factory bench [--self | --socket PATH] [--guest bare|linux] [--template NAME]\n"
    "                          [--mode latency|throughput|density|working-set|soak|all]\n"
    "                          [--count N] [--clients K] [--pool-size P] [--mem-budget SIZE]\n"
    "                          [--dirty-pages LIST] [--ksm]\n"
    "                          [--guest-dir G] [--timeout S] [--compare [--qemu-clones N]]\n"
    "                          [--json] [--quiet]\n"
    "  Measure VMs from the factory daemon, as a client of its gRPC API gets them.\n"
    "  --self        (default) start a daemon in this process, with temporary run and\n"
    "                state directories and its own template: --guest bare (default;\n"
    "                128 MiB, 64 MiB written at boot) or linux (from G: vmlinuz,\n"
    "                initramfs.cpio.gz, rootfs.ext4; default $KF_GUEST_DIR, else\n"
    "                guest/ beside this binary); pool sizes are set per mode\n"
    "  --socket PATH a running daemon, its template (--template, needed when it has\n"
    "                several) and its pool: pool hits need a pool, misses none\n"
    "  --mode M      latency: GetVM -> first Ping over agent.sock, one VM at a time,\n"
    "                  p50/p90/p99/max, pool hits and pool misses (N each)\n"
    "                throughput: VMs per second, K clients looping GetVM + Ping +\n"
    "                  ReleaseVM, N VMs in all, pool misses\n"
    "                density: clone and keep alive until N live VMs or MemAvailable\n"
    "                  dropped by SIZE; memory per VM (MemAvailable delta, summed Pss,\n"
    "                  KVM estimate) and latency against live VMs. Plans host limits\n"
    "                  first: raises open files (as root also pid_max), refuses when N\n"
    "                  cannot fit\n"
    "                working-set: N VMs (at most 32) per value of --dirty-pages, each\n"
    "                  dirtying that many 4 KiB pages; memory per VM against pages\n"
    "                soak: N cycles of GetVM + Ping + ReleaseVM by K clients against\n"
    "                  a pool of P; the daemon's open fds, threads, RSS and child\n"
    "                  processes after a warm-up (N/10 cycles) and after the run,\n"
    "                  with the pool settled both times (--socket: the daemon's pid\n"
    "                  from SOCKET.lock; --self counts this process, clients included)\n"
    "                all (default): the first four in that order (not soak)\n"
    "  --count N     VMs per mode (defaults: latency 200, throughput 1000, density\n"
    "                1000, working-set 16, soak 10000)\n"
    "  --clients K   concurrent clients of throughput (default 2) and soak (default 32)\n"
    "  --pool-size P soak's warm pool (default 8; --self only sets it)\n"
    "  --mem-budget SIZE  density stops before MemAvailable drops by more (20G, 512M)\n"
    "  --dirty-pages LIST pages per VM for working-set (default 0,256,1024,4096)\n"
    "  --ksm         density also with KSM on: pages_shared/pages_sharing, bytes saved\n"
    "                (needs root; ksmd's settings are put back)\n"
    "  --timeout S   deadline of each GetVM (default 60)\n"
    "  --compare     the peers in this run, as ratios to our clones (pool-miss latency\n"
    "                and density's Pss per VM, when those modes ran): cold boot of the\n"
    "                guest by our VMM without a template (the --self template's boot),\n"
    "                and, for --guest linux, Kata-style QEMU templating (bench/peers:\n"
    "                a QEMU template with its RAM in a shared file, clones started with\n"
    "                -incoming and x-ignore-shared; qemu-system-x86_64, KVM when\n"
    "                usable); a peer that cannot run is reported as skipped, with why\n"
    "  --qemu-clones N  QEMU clones for --compare (default 5)\n"
    "  --json        one JSON object on stdout (docs/BENCHMARKS.md, \"How to run\")\n"
    "  --quiet       no progress bar, no notes on stderr\n"
    "  A progress bar goes to stderr when it is a terminal. Exit status: 0 measured,\n"
    "  1 failed (the report so far is still printed), 2 bad usage.\n";

constexpr uint64_t kMaxCount = 1000000;
constexpr uint64_t kMaxWorkingSetVms = 32;
constexpr uint64_t kMaxDirtyPages = 1ull << 24;

// Where scripts/build-guest put the Linux guest (as `template create`).
std::string DefaultGuestDir() {
  if (const char* env = std::getenv("KF_GUEST_DIR"); env != nullptr && *env != '\0') return env;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  const size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/guest";
}

std::string CommandLine(const Argv& argv) {
  std::string s = "kata-factory bench";
  for (const auto& a : argv)
    s += " " + (a.find_first_of(" \t'\"") == std::string::npos ? a : Json::Quote(a));
  return s;
}

struct Plan {
  bool latency = false, throughput = false, density = false, working_set = false;
  bool soak = false;  // not part of "all": it is long by design
};

}  // namespace

int BenchCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"self", "ksm", "json", "quiet", "compare", "help"},
                          {"socket", "guest", "template", "mode", "count", "clients", "mem-budget",
                           "dirty-pages", "guest-dir", "timeout", "qemu-clones", "pool-size"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kBenchHelp, stdout), 0;
  if (!args->positional().empty())
    return Fail("bench takes no positional arguments ('" + args->positional()[0] + "')",
                kExitUsage);
  if (args->Has("self") && args->Has("socket"))
    return Fail("--self and --socket exclude each other", kExitUsage);
  const bool self = !args->Has("socket");
  if (!self && args->Has("guest"))
    return Fail("--guest is for --self (a running daemon's template decides)", kExitUsage);
  if (!self && args->Has("guest-dir")) return Fail("--guest-dir is for --self", kExitUsage);
  const std::string guest = args->Get("guest", "bare");
  if (guest != "bare" && guest != "linux")
    return Fail("--guest must be bare or linux, not '" + guest + "'", kExitUsage);

  const std::string mode = args->Get("mode", "all");
  Plan plan;
  if (mode == "latency")
    plan.latency = true;
  else if (mode == "throughput")
    plan.throughput = true;
  else if (mode == "density")
    plan.density = true;
  else if (mode == "working-set")
    plan.working_set = true;
  else if (mode == "soak")
    plan.soak = true;
  else if (mode == "all")
    plan = Plan{true, true, true, true, false};
  else
    return Fail("--mode must be latency, throughput, density, working-set, soak or all, not '" +
                    mode + "'",
                kExitUsage);

  const bool count_given = args->Has("count");
  auto count = args->GetUint("count", 0);
  if (!count.ok()) return Fail(count.error().message(), kExitUsage);
  if (count_given && (*count < 1 || *count > kMaxCount))
    return Fail("--count must be 1.." + std::to_string(kMaxCount), kExitUsage);
  auto clients = args->GetUint("clients", plan.soak ? 32 : 2);
  if (!clients.ok()) return Fail(clients.error().message(), kExitUsage);
  if (*clients < 1 || *clients > 256) return Fail("--clients must be 1..256", kExitUsage);
  if (args->Has("clients") && !plan.throughput && !plan.soak)
    return Fail("--clients is for --mode throughput, soak (or all)", kExitUsage);
  auto soak_pool = args->GetUint("pool-size", 8);
  if (!soak_pool.ok()) return Fail(soak_pool.error().message(), kExitUsage);
  if (args->Has("pool-size") && !plan.soak) return Fail("--pool-size is for --mode soak", kExitUsage);
  if (*soak_pool > 1024) return Fail("--pool-size must be 0..1024", kExitUsage);
  auto timeout = args->GetUint("timeout", 60);
  if (!timeout.ok()) return Fail(timeout.error().message(), kExitUsage);
  if (*timeout < 1 || *timeout > 3600) return Fail("--timeout must be 1..3600", kExitUsage);
  uint64_t mem_budget = 0;
  if (args->Has("mem-budget")) {
    if (!plan.density) return Fail("--mem-budget is for --mode density (or all)", kExitUsage);
    auto b = bench::ParseBytes(args->Get("mem-budget"));
    if (!b.ok()) return Fail("--mem-budget: " + b.error().message(), kExitUsage);
    mem_budget = *b;
  }
  if (args->Has("ksm") && !plan.density)
    return Fail("--ksm is for --mode density (or all)", kExitUsage);
  std::vector<uint64_t> dirty_pages = {0, 256, 1024, 4096};
  if (args->Has("dirty-pages")) {
    if (!plan.working_set)
      return Fail("--dirty-pages is for --mode working-set (or all)", kExitUsage);
    auto l = bench::ParseUintList(args->Get("dirty-pages"), kMaxDirtyPages);
    if (!l.ok()) return Fail("--dirty-pages: " + l.error().message(), kExitUsage);
    dirty_pages = *l;
  }

  auto qemu_clones = args->GetUint("qemu-clones", 5);
  if (!qemu_clones.ok()) return Fail(qemu_clones.error().message(), kExitUsage);
  if (args->Has("qemu-clones") && !args->Has("compare"))
    return Fail("--qemu-clones is for --compare", kExitUsage);
  if (*qemu_clones < 1 || *qemu_clones > 100)
    return Fail("--qemu-clones must be 1 to 100", kExitUsage);

  // What can be refused before any VM exists.
  const uint64_t density_count = count_given ? *count : 1000;
  if (plan.density) {
    auto limits = bench::ReadHostLimits();
    if (!limits.ok()) return Fail(limits.error().message());
    // A running daemon's guest is known only once connected: planned as
    // bare here, and again with the real one before density starts.
    const auto lp =
        bench::PlanLimits(*limits, density_count, bench::CostsFor(self ? guest : "bare", self));
    if (!lp.refusal.empty()) return Fail("density: " + lp.refusal);
    if (args->Has("ksm")) {
      const std::string why = bench::Ksm().UnavailableReason();
      if (!why.empty()) return Fail("--ksm: " + why);
    }
  }

  const bool quiet = args->Has("quiet");
  bench::Progress progress(::isatty(2) && !quiet, !quiet);
  bench::BenchReport report;
  report.command = CommandLine(argv);
  report.date = bench::UtcNow();
  report.mode = mode;
  report.machine = bench::DescribeMachine();

  std::unique_ptr<bench::Target> target;
  if (self) {
    bench::SelfOptions so;
    so.guest = guest;
    so.template_name = args->Get("template");
    so.guest_dir = args->Get("guest-dir", DefaultGuestDir());
    so.log_warnings = !quiet;
    progress.Note("creating the " + guest + " template and starting a daemon in this process");
    auto t = bench::Target::StartSelf(so);
    if (!t.ok()) return Fail(t.error().message());
    target = std::move(*t);
  } else {
    auto t = bench::Target::Connect(DaemonSocket(*args), args->Get("template"));
    if (!t.ok()) return Fail(t.error().message());
    target = std::move(*t);
  }
  target->set_get_vm_deadline_ms(static_cast<int>(*timeout * 1000));
  report.self_daemon = target->self();
  report.socket = target->socket();
  report.template_name = target->template_name();
  report.guest = target->guest();
  report.template_mem_bytes = target->template_mem_bytes();
  report.template_vcpus = target->template_vcpus();
  report.template_boot_ns = target->template_boot_ns();

  auto run = [&]() -> Status {
    if (plan.latency) {
      bench::LatencyOptions o;
      if (count_given) o.count = *count;
      ASSIGN_OR_RETURN(report.latency, bench::RunLatency(*target, o, progress));
    }
    if (plan.throughput) {
      bench::ThroughputOptions o;
      if (count_given) o.count = *count;
      o.clients = static_cast<uint32_t>(*clients);
      ASSIGN_OR_RETURN(report.throughput, bench::RunThroughput(*target, o, progress));
    }
    if (plan.soak) {
      bench::SoakOptions o;
      if (count_given) o.count = *count;
      o.clients = static_cast<uint32_t>(*clients);
      o.pool_size = static_cast<uint32_t>(*soak_pool);
      ASSIGN_OR_RETURN(report.soak, bench::RunSoak(*target, o, progress));
    }
    if (plan.density) {
      bench::DensityOptions o;
      o.count = density_count;
      o.mem_budget = mem_budget;
      o.ksm = args->Has("ksm");
      ASSIGN_OR_RETURN(report.density, bench::RunDensity(*target, o, progress));
    }
    if (plan.working_set) {
      bench::WorkingSetOptions o;
      o.pages = dirty_pages;
      if (count_given) o.vms = std::min(*count, kMaxWorkingSetVms);
      ASSIGN_OR_RETURN(report.working_set, bench::RunWorkingSet(*target, o, progress));
    }
    if (args->Has("compare")) {
      bench::CompareOptions co;
      co.guest_dir = args->Get("guest-dir", DefaultGuestDir());
      co.qemu_clones = static_cast<uint32_t>(*qemu_clones);
      co.progress = !quiet;
      RETURN_IF_ERROR(bench::RunCompare(&report, co));
    }
    return Status::Ok();
  };
  Status s = run();
  progress.Done();
  if (!s.ok()) report.error = s.error().message();
  // The in-process daemon drains here: every VM released, zygotes stopped.
  target.reset();
  std::cout << (args->Has("json") ? bench::ReportJson(report) + "\n" : bench::ReportText(report));
  std::cout.flush();
  if (!s.ok()) return Fail(s.error().message());
  return 0;
}

}  // namespace kf::cli
