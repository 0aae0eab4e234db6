// `kata-factory clone DIR --count N`: clone a template N times through a
// zygote, ping each clone, report latency and memory per clone.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/json.h"
#include "factory/clone_batch.h"
#include "factory/clone_report.h"

namespace kf::cli {

namespace {

constexpr char kCloneHelp[] =
    "Usage: kata-factory clone DIR [--count N] [--keep] [--run-dir RUN] [--pings K]\n"
    "                          [--mergeable] [--json] [--quiet]\n"
    "  Load the template in DIR (refused if damaged), start a zygote, and clone it\n"
    "  N times (default 1): each clone is a fork()ed VMM process with its own KVM VM\n"
    "  over a copy-on-write mapping of the template memory. Each clone is pinged\n"
    "  and given a fresh identity (id, hostname, entropy) over its agent socket,\n"
    "  RUN/clone-<i>/agent.sock (hybrid vsock: write 'CONNECT 1024\\n', read\n"
    "  'OK <port>\\n', then agent frames; docs/AGENT_PROTOCOL.md).\n"
    "  Prints per-clone latency (clone request -> first Ping answered) and memory,\n"
    "  then p50/p99 latency and host memory per clone (MemAvailable delta, summed\n"
    "  Pss, KVM kernel memory estimate).\n"
    "  --keep       keep the clones running until SIGINT/SIGTERM, then release them\n"
    "  --run-dir RUN  where the clones' sockets go (created if missing; each clone's\n"
    "               RUN/clone-<i>/ is removed on release). Default: a temporary\n"
    "               directory under $TMPDIR or /tmp, removed on release.\n"
    "  --pings K    after the first Ping, K more per clone, timed: the round trip\n"
    "               over agent.sock (p50/p99 in the summary; default 10)\n"
    "  --mergeable  madvise(MADV_MERGEABLE) clone memory, for KSM\n"
    "  --json       one JSON object on stdout\n"
    "  --quiet      no per-clone lines\n";

volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }

}  // namespace

int CloneCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"keep", "mergeable", "json", "quiet", "help"},
                            {"count", "run-dir", "pings"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kCloneHelp, stdout), 0;
  if (args->positional().size() != 1) return Fail("clone needs one template DIR", kExitUsage);
  auto count = args->GetUint("count", 1);
  if (!count.ok()) return Fail(count.error().message(), kExitUsage);
  if (*count < 1 || *count > 100000) return Fail("--count must be 1..100000", kExitUsage);
  const std::string dir = args->positional()[0];

  auto tmpl = LoadTemplate(dir);
  if (!tmpl.ok()) return Fail(dir + ": " + tmpl.error().message());
  const std::string kvm_reason = Kvm::UnavailableReason();
  if (!kvm_reason.empty()) return Fail("KVM is not usable here: " + kvm_reason);

  CloneBatchOptions o;
  o.count = static_cast<int>(*count);
  o.mergeable = args->Has("mergeable");
  o.run_dir = args->Get("run-dir");
  auto pings = args->GetUint("pings", 10);
  if (!pings.ok()) return Fail(pings.error().message(), kExitUsage);
  if (*pings > 100000) return Fail("--pings must be 0..100000", kExitUsage);
  o.pings = static_cast<int>(*pings);
  const bool tty = ::isatty(2);
  if (tty && !args->Has("json"))
    o.progress = [](int done, int total) {
      std::fprintf(stderr, "\rcloning %d/%d", done, total);
      if (done == total) std::fputs("\n", stderr);
    };
  auto batch = CloneBatch::Run(std::move(*tmpl), o);
  if (!batch.ok()) return Fail(batch.error().message());

  if (args->Has("json")) {
    std::cout << CloneReportJson(dir, *batch) << "\n";
  } else {
    std::cout << CloneReportText(dir, *batch, !args->Has("quiet"));
  }
  std::cout.flush();
  if (args->Has("keep")) {
    signal(SIGINT, OnStop);
    signal(SIGTERM, OnStop);
    std::fprintf(stderr, "%zu clones running, sockets in %s/clone-*/agent.sock; Ctrl-C to release them\n",
                 batch->clones().size(), batch->run_dir().c_str());
    while (!g_stop) ::pause();
  }
  Status released = batch->Release();
  if (!released.ok()) return Fail(released.error().message());
  return 0;
}

}  // namespace kf::cli
