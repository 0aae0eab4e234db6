// The verbs that talk to a running daemon: `get`, `release`, `status`, `ls`.
#include <cstdio>
#include <iostream>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/daemon_client.h"
#include "factory/clock.h"

namespace kf::cli {

namespace pb = katafactory::v1;

namespace {

constexpr char kSocketHelp[] =
    "  --socket PATH  the daemon's socket (default $KATA_FACTORY_SOCKET, else\n"
    "                 /run/kata-factory/factory.sock)\n";

constexpr char kGetHelp[] =
    "Usage: kata-factory get TEMPLATE [--label K=V[,K=V...]] [--lease-seconds S]\n"
    "                        [--timeout S] [--socket PATH] [--json]\n"
    "  Ask the daemon for a ready VM of TEMPLATE (GetVM): from its warm pool when\n"
    "  it has one, else cloned now. The VM's agent has its fresh identity (id,\n"
    "  hostname, entropy, clock). Prints the VM's id, VMM pid, agent socket\n"
    "  (hybrid vsock: write 'CONNECT 1024\\n', read 'OK <port>\\n', then agent\n"
    "  frames), console socket (linux guests) and how long it took. The VM runs\n"
    "  until `kata-factory release ID`, its lease expires, or the daemon drains.\n"
    "  --label K=V     labels kept with the VM (shown by ls --json)\n"
    "  --lease-seconds S  release the VM after S seconds (default: the daemon's)\n"
    "  --timeout S     the call's deadline (default 30)\n"
    "  --json          the GetVMResponse as one JSON object\n";

constexpr char kReleaseHelp[] =
    "Usage: kata-factory release ID... [--timeout S] [--socket PATH]\n"
    "  Stop leased VMs (ReleaseVM): each VMM process exits and its sockets go.\n"
    "  Exit status 1 if any ID was not a leased VM.\n"
    "  --timeout S     each call's deadline (default 30)\n";

constexpr char kStatusHelp[] =
    "Usage: kata-factory status [--timeout S] [--socket PATH] [--json]\n"
    "  The daemon's state (Status): live VMs and the cap, host MemAvailable and\n"
    "  the floor, KSM counters, whether KVM is usable, and per template its pool\n"
    "  (ready/target, clones under way, leased VMs, clones and failures so far).\n"
    "  --timeout S     the call's deadline (default 10)\n"
    "  --json          the StatusResponse as one JSON object\n";

constexpr char kLsHelp[] =
    "Usage: kata-factory ls [--all] [--template T] [--timeout S] [--socket PATH] [--json]\n"
    "  The daemon's leased VMs (ListVMs), one line each: id, template, state,\n"
    "  pid, age, lease expiry, agent socket.\n"
    "  --all           the warm pools' VMs too\n"
    "  --template T    only VMs of template T\n"
    "  --timeout S     the call's deadline (default 10)\n"
    "  --json          the ListVMsResponse as one JSON object\n";

std::string Help(const char* text) { return std::string(text) + kSocketHelp; }

const char* StateName(pb::VMState s) {
  switch (s) {
    case pb::VM_STATE_POOLED: return "pooled";
    case pb::VM_STATE_LEASED: return "leased";
    default: return "?";
  }
}

std::string Ago(int64_t unix_ns) {
  const int64_t now = static_cast<int64_t>(RealtimeNs());
  return unix_ns <= 0 || unix_ns > now ? "-" : FormatDuration(uint64_t(now - unix_ns));
}

std::string MiB(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

int GetCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {"label", "lease-seconds", "timeout", "socket"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(Help(kGetHelp).c_str(), stdout), 0;
  if (args->positional().size() != 1) return Fail("get needs one TEMPLATE", kExitUsage);
  pb::GetVMRequest req;
  req.set_template_(args->positional()[0]);
  auto lease = args->GetUint("lease-seconds", 0);
  if (!lease.ok() || *lease > 0xffffffffull)
    return Fail("--lease-seconds wants 0..4294967295", kExitUsage);
  req.set_lease_seconds(static_cast<uint32_t>(*lease));
  const std::string labels = args->Get("label");
  for (size_t start = 0; !labels.empty() && start <= labels.size();) {
    size_t comma = labels.find(',', start);
    if (comma == std::string::npos) comma = labels.size();
    const std::string kv = labels.substr(start, comma - start);
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return Fail("--label wants K=V, not '" + kv + "'", kExitUsage);
    (*req.mutable_labels())[kv.substr(0, eq)] = kv.substr(eq + 1);
    start = comma + 1;
  }
  const std::string socket = DaemonSocket(*args);
  grpc::ClientContext ctx;
  if (int rc = SetDeadline(ctx, *args, 30)) return rc;
  pb::GetVMResponse resp;
  grpc::Status s = DaemonStub(socket)->GetVM(&ctx, req, &resp);
  if (!s.ok()) return FailRpc("get", s, socket);
  if (args->Has("json")) {
    std::cout << ToJson(resp) << "\n";
    return 0;
  }
  const pb::VM& vm = resp.vm();
  std::printf("%s  pid %d  template %s  %s in %s (clone %s, identity %s)\n", vm.id().c_str(),
              vm.pid(), vm.template_().c_str(), resp.pool_hit() ? "pool hit" : "cloned",
              FormatDuration(vm.timings().total_ns()).c_str(),
              FormatDuration(vm.timings().clone_ns()).c_str(),
              FormatDuration(vm.timings().identity_ns()).c_str());
  std::printf("agent    %s\n", vm.agent_socket().c_str());
  if (!vm.console_socket().empty()) std::printf("console  %s\n", vm.console_socket().c_str());
  return 0;
}

int ReleaseCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"help"}, {"timeout", "socket"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(Help(kReleaseHelp).c_str(), stdout), 0;
  if (args->positional().empty()) return Fail("release needs at least one VM ID", kExitUsage);
  const std::string socket = DaemonSocket(*args);
  auto stub = DaemonStub(socket);
  int rc = 0;
  for (const auto& id : args->positional()) {
    grpc::ClientContext ctx;
    if (int bad = SetDeadline(ctx, *args, 30)) return bad;
    pb::ReleaseVMRequest req;
    req.set_id(id);
    pb::ReleaseVMResponse resp;
    grpc::Status s = stub->ReleaseVM(&ctx, req, &resp);
    if (!s.ok()) {
      rc = FailRpc("release " + id, s, socket);
      continue;
    }
    std::printf("released %s\n", id.c_str());
  }
  return rc;
}

int StatusCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {"timeout", "socket"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(Help(kStatusHelp).c_str(), stdout), 0;
  if (!args->positional().empty()) return Fail("status takes no positional arguments", kExitUsage);
  const std::string socket = DaemonSocket(*args);
  grpc::ClientContext ctx;
  if (int rc = SetDeadline(ctx, *args, 10)) return rc;
  pb::StatusResponse r;
  grpc::Status s = DaemonStub(socket)->Status(&ctx, pb::StatusRequest(), &r);
  if (!s.ok()) return FailRpc("status", s, socket);
  if (args->Has("json")) {
    std::cout << ToJson(r) << "\n";
    return 0;
  }
  std::printf("daemon   %s, up %s, version %s\n", r.socket().c_str(),
              FormatDuration(r.uptime_ns()).c_str(), r.version().c_str());
  std::printf("vms      %u live (%s)\n", r.live_vms(),
              r.has_max_vms() ? ("cap " + std::to_string(r.max_vms())).c_str() : "no cap");
  std::printf("memory   MemAvailable %s (floor %s)\n", MiB(r.mem_available_bytes()).c_str(),
              MiB(r.mem_floor_bytes()).c_str());
  if (r.ksm().available())
    std::printf("ksm      run %llu, pages_shared %llu, pages_sharing %llu\n",
                (unsigned long long)r.ksm().run(), (unsigned long long)r.ksm().pages_shared(),
                (unsigned long long)r.ksm().pages_sharing());
  else
    std::printf("ksm      not available\n");
  std::printf("kvm      %s\n",
              r.kvm_unavailable().empty() ? "usable" : ("not usable: " + r.kvm_unavailable()).c_str());
  std::printf("\n%-24s %7s %7s %7s %8s %8s  %s\n", "TEMPLATE", "READY", "TARGET", "CLONING",
              "LEASED", "FAILURES", "LAST ERROR");
  for (const auto& p : r.pools())
    std::printf("%-24s %7u %7u %7u %8u %8llu  %s\n", p.template_().c_str(), p.ready(), p.target(),
                p.cloning(), p.leased(), (unsigned long long)p.clone_failures_total(),
                p.last_error().empty() ? "-" : p.last_error().c_str());
  return 0;
}

int LsCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "all", "help"}, {"template", "timeout", "socket"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(Help(kLsHelp).c_str(), stdout), 0;
  if (!args->positional().empty()) return Fail("ls takes no positional arguments", kExitUsage);
  const std::string socket = DaemonSocket(*args);
  grpc::ClientContext ctx;
  if (int rc = SetDeadline(ctx, *args, 10)) return rc;
  pb::ListVMsRequest req;
  req.set_template_(args->Get("template"));
  req.set_include_pool(args->Has("all"));
  pb::ListVMsResponse r;
  grpc::Status s = DaemonStub(socket)->ListVMs(&ctx, req, &r);
  if (!s.ok()) return FailRpc("ls", s, socket);
  if (args->Has("json")) {
    std::cout << ToJson(r) << "\n";
    return 0;
  }
  std::printf("%-16s %-16s %-7s %8s %10s %10s  %s\n", "ID", "TEMPLATE", "STATE", "PID", "AGE",
              "LEASE", "AGENT SOCKET");
  const int64_t now = static_cast<int64_t>(RealtimeNs());
  for (const auto& vm : r.vms()) {
    std::string lease = "-";
    if (vm.lease_expires_unix_ns() > now)
      lease = FormatDuration(uint64_t(vm.lease_expires_unix_ns() - now));
    std::printf("%-16s %-16s %-7s %8d %10s %10s  %s\n", vm.id().c_str(), vm.template_().c_str(),
                StateName(vm.state()), vm.pid(), Ago(vm.created_unix_ns()).c_str(), lease.c_str(),
                vm.agent_socket().c_str());
  }
  return 0;
}

}  // namespace kf::cli
