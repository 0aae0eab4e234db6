// `kata-factory run [OPTIONS] -- CMD ARGS...`: a VM from the daemon, a
// container in it, its output on the terminal, its exit status as ours
// (issue #7; docs/CONTAINERS.md). The protocol work is ContainerSession's
// (factory/container_session.h); this file is options, the daemon, signals
// and the report.
#include <signal.h>
#include <sys/random.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "factory/cli/commands.h"
#include "factory/cli/daemon_client.h"
#include "factory/cli/json.h"
#include "factory/clock.h"
#include "factory/container_session.h"
#include "factory/oci_bundle.h"

namespace kf::cli {

namespace pb = katafactory::v1;

namespace {

constexpr char kRunHelp[] =
    "Usage: kata-factory run [--template T] [--rm] [-i] [--bundle DIR] [--env K=V]...\n"
    "                        [--cwd DIR] [--user UID[:GID]] [--hostname H] [--timeout S]\n"
    "                        [--socket PATH] [--json] [--] CMD [ARG...]\n"
    "  Run CMD in a container in a VM of its own: ask the daemon for a VM of template T\n"
    "  (GetVM), create the container through the VM's agent (its root: an overlay\n"
    "  of the guest's /rootfs, the shared pmem image, with a private tmpfs upper\n"
    "  layer), start it, copy its stdout and stderr here as they come, and exit\n"
    "  with its exit status. Options end at the first argument that is not one,\n"
    "  or at `--`.\n"
    "  --template T    the daemon's template (default linux; a Linux guest)\n"
    "  --rm            remove the container and release the VM at the end, also\n"
    "                  after errors and Ctrl-C. Without it the VM stays leased\n"
    "                  (its id is printed on stderr: `kata-factory release ID`)\n"
    "  -i, --interactive  forward stdin to the process (EOF closes its stdin);\n"
    "                  without it the process's stdin is closed at start\n"
    "  --bundle DIR    take the process, hostname, mounts and namespaces from\n"
    "                  DIR/config.json (OCI runtime spec subset). Its root.path\n"
    "                  must be a directory inside the guest: a host directory\n"
    "                  (DIR/rootfs) cannot be shared into the VM yet. CMD, if\n"
    "                  given, replaces process.args; the options below override\n"
    "  --env K=V       an environment variable (repeatable); --env K copies ours\n"
    "  --cwd DIR       working directory in the container (absolute; default /)\n"
    "  --user UID[:GID]  numeric user and group (default 0:0)\n"
    "  --hostname H    the container's hostname (default its id, run-<hex>)\n"
    "  --timeout S     deadline of each daemon call (GetVM, ReleaseVM; default 30)\n"
    "  --json          at the end, one JSON object on stdout (its last line): exit\n"
    "                  status, VM and container ids, bytes, and timings in ns from\n"
    "                  the start of `kata-factory run` (get_vm, connect, create,\n"
    "                  start, first_output, first_line, exit, total)\n"
    "  --socket PATH   the daemon's socket (default $KATA_FACTORY_SOCKET, else\n"
    "                  /run/kata-factory/factory.sock)\n"
    "  Ctrl-C (SIGINT, SIGTERM, SIGHUP): SIGTERM to the process, SIGKILL 3 s later\n"
    "  or at a second Ctrl-C, then clean up as above.\n"
    "Exit status: the process's exit code, or 128+N when signal N killed it;\n"
    "125 when kata-factory failed (bad usage, daemon, VM, agent: one line on\n"
    "stderr says why); 126 the command cannot be executed; 127 it does not exist.\n";

const std::set<std::string> kFlags = {"rm", "json", "interactive", "help"};
const std::set<std::string> kOptions = {"template", "socket", "bundle", "env",
                                        "cwd",      "user",   "hostname", "timeout"};

struct RunArgs {
  std::map<std::string, std::string> values;
  std::vector<std::string> env;  // --env, in order
  std::vector<std::string> command;
  bool Has(const std::string& k) const { return values.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& fallback = "") const {
    auto it = values.find(k);
    return it == values.end() ? fallback : it->second;
  }
};

// Options up to `--` or the first non-option; the rest is the command.
// (Args::Parse would read the command's own --flags as ours.)
Result<RunArgs> ParseRunArgs(const Argv& argv) {
  RunArgs a;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      a.command.assign(argv.begin() + i + 1, argv.end());
      break;
    }
    if (arg == "-i") {
      a.values["interactive"] = "1";
      continue;
    }
    if (arg == "-h") {
      a.values["help"] = "1";
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (arg.size() > 1 && arg[0] == '-') return Error("unknown option " + arg + " (see --help)");
      a.command.assign(argv.begin() + i, argv.end());
      break;
    }
    ASSIGN_OR_RETURN(ParsedOption o, ParseOption(argv, &i, kFlags, kOptions));
    if (o.name == "env")
      a.env.push_back(o.value);  // repeatable
    else
      a.values[o.name] = o.value;
  }
  return a;
}

Result<uint32_t> ParseId(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
    return Error("--user wants numeric UID[:GID], not a " + what + " '" + s + "'");
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (v > 0xffffffffull) return Error("--user: " + what + " " + s + " is out of range");
  return static_cast<uint32_t>(v);
}

// NAME=value replaces NAME in env; a bare NAME takes ours (dropped if unset).
Status ApplyEnv(const std::string& kv, agentpb::Process* p) {
  std::string entry = kv;
  size_t eq = kv.find('=');
  if (eq == std::string::npos) {
    const char* ours = std::getenv(kv.c_str());
    if (ours == nullptr) return Status::Ok();
    entry = kv + "=" + ours;
    eq = kv.size();
  }
  if (eq == 0) return Error("--env wants K=V, not '" + kv + "'");
  const std::string prefix = entry.substr(0, eq + 1);
  auto* env = p->mutable_env();
  for (int i = 0; i < env->size();) {
    if (env->Get(i).rfind(prefix, 0) == 0) env->erase(env->begin() + i);
    else ++i;
  }
  p->add_env(entry);
  return Status::Ok();
}

Result<std::string> NewContainerId() {
  uint8_t b[6];
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) return Error::Sys("getrandom");
  char id[32];
  std::snprintf(id, sizeof id, "run-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
  return std::string(id);
}

// Everything but the command and the VM: the CreateContainer request.
Result<agentpb::CreateContainerRequest> BuildRequest(const RunArgs& a) {
  agentpb::CreateContainerRequest req;
  if (a.Has("bundle")) {
    ASSIGN_OR_RETURN(req, LoadOciBundle(a.Get("bundle")));
  }
  agentpb::Process* p = req.mutable_process();
  if (!a.command.empty()) {
    p->clear_args();
    for (const auto& arg : a.command) p->add_args(arg);
  }
  if (p->args_size() == 0)
    return Error(a.Has("bundle") ? "no command: the bundle's process.args is empty and none "
                                   "was given after --"
                                 : "run needs a command: kata-factory run [OPTIONS] -- CMD [ARG...]");
  for (const auto& kv : a.env) RETURN_IF_ERROR(ApplyEnv(kv, p));
  if (a.Has("cwd")) {
    const std::string cwd = a.Get("cwd");
    if (cwd.empty() || cwd[0] != '/') return Error("--cwd wants an absolute path, not '" + cwd + "'");
    p->set_cwd(cwd);
  }
  if (a.Has("user")) {
    const std::string u = a.Get("user");
    const size_t colon = u.find(':');
    ASSIGN_OR_RETURN(uint32_t uid, ParseId(u.substr(0, colon), "UID"));
    p->set_uid(uid);
    p->set_gid(0);
    if (colon != std::string::npos) {
      ASSIGN_OR_RETURN(uint32_t gid, ParseId(u.substr(colon + 1), "GID"));
      p->set_gid(gid);
    }
  }
  if (a.Has("hostname")) {
    const std::string h = a.Get("hostname");
    if (h.empty() || h.size() > 63) return Error("--hostname wants 1..63 bytes");
    req.set_hostname(h);
  }
  if (p->terminal())
    return Error("the bundle asks for a terminal (process.terminal): not supported, stdio "
                 "is pipes; set it to false");
  ASSIGN_OR_RETURN(std::string id, NewContainerId());
  req.set_container_id(id);
  return req;
}

std::atomic<int> g_interrupts{0};
void OnInterrupt(int) { g_interrupts.fetch_add(1); }

void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // our stdout closed: the copy stops, the run goes on
}

struct Report {
  std::string vm_id, template_name, container_id, error;
  bool pool_hit = false, released = false;
  int status = kExitOwnFailure;
  uint64_t get_vm_ns = 0, daemon_get_vm_ns = 0, clone_ns = 0, release_ns = 0, total_ns = 0;
  ContainerRunResult run;
};

std::string ReportJson(const Report& r) {
  Json j;
  j.BeginObject();
  j.Uint("exit_code", static_cast<uint64_t>(r.status));
  j.Str("error", r.error);
  j.Str("template", r.template_name).Str("vm_id", r.vm_id).Str("container_id", r.container_id);
  j.Bool("pool_hit", r.pool_hit);
  j.Bool("started", r.run.started).Bool("exited", r.run.exited);
  j.Uint("process_exit_code", static_cast<uint64_t>(r.run.exit_code));
  j.Uint("signal", static_cast<uint64_t>(r.run.signal));
  j.Uint("interrupts", static_cast<uint64_t>(r.run.interrupts_seen));
  j.Bool("removed", r.run.removed).Bool("released", r.released);
  j.Uint("stdout_bytes", r.run.stdout_bytes).Uint("stderr_bytes", r.run.stderr_bytes);
  // Durations of each step, and *_at: since `kata-factory run` started.
  j.BeginObjectIn("timings_ns");
  j.Uint("get_vm", r.get_vm_ns);
  j.Uint("daemon_get_vm", r.daemon_get_vm_ns);
  j.Uint("clone", r.clone_ns);
  j.Uint("connect", r.run.connect_ns);
  j.Uint("create", r.run.create_ns);
  j.Uint("start", r.run.start_ns);
  j.Uint("first_output_at", r.run.first_output_at_ns);
  j.Uint("first_line_at", r.run.first_line_at_ns);
  j.Uint("exit_at", r.run.exit_at_ns);
  j.Uint("release", r.release_ns);
  j.Uint("total", r.total_ns);
  j.EndObject();
  j.EndObject();
  return j.str();
}

}  // namespace

int RunCommand(const Argv& argv) {
  const uint64_t t0 = MonotonicNs();
  auto args = ParseRunArgs(argv);
  if (!args.ok()) return Fail(args.error().message(), kExitOwnFailure);
  if (args->Has("help")) return std::fputs(kRunHelp, stdout), 0;
  int timeout = 30;
  if (args->Has("timeout")) {
    const std::string s = args->Get("timeout");
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(s) == 0)
      return Fail("--timeout wants seconds, 1..999999, not '" + s + "'", kExitOwnFailure);
    timeout = static_cast<int>(std::stoul(s));
  }
  auto req = BuildRequest(*args);
  if (!req.ok()) return Fail("run: " + req.error().message(), kExitOwnFailure);

  const bool json = args->Has("json"), rm = args->Has("rm");
  Report rep;
  rep.template_name = args->Get("template", "linux");
  rep.container_id = req->container_id();
  bool printed = false;  // the error line is out already
  auto finish = [&]() {
    rep.total_ns = MonotonicNs() - t0;
    if (!rep.error.empty() && !printed) Fail("run: " + rep.error);
    if (json) {
      std::fflush(stdout);
      // Its own line, whatever the container's output ended with.
      if (rep.run.stdout_last_byte >= 0 && rep.run.stdout_last_byte != '\n') std::cout << "\n";
      std::cout << ReportJson(rep) << std::endl;
    }
    return rep.status;
  };

  InstallSignals();
  const std::string sock = args->Has("socket") ? args->Get("socket") : DaemonSocket(Args());
  auto stub = DaemonStub(sock);
  auto deadline = [&] { return std::chrono::system_clock::now() + std::chrono::seconds(timeout); };

  // GetVM; a Ctrl-C meanwhile cancels the call (the daemon then keeps nothing).
  pb::GetVMRequest get;
  get.set_template_(rep.template_name);
  (*get.mutable_labels())["kata-factory-run"] = rep.container_id;
  pb::GetVMResponse got;
  grpc::ClientContext get_ctx;
  get_ctx.set_deadline(deadline());
  std::atomic<bool> get_done{false};
  std::thread canceller([&] {
    while (!get_done.load()) {
      if (g_interrupts.load() > 0) return get_ctx.TryCancel();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  uint64_t t = MonotonicNs();
  grpc::Status s = stub->GetVM(&get_ctx, get, &got);
  rep.get_vm_ns = MonotonicNs() - t;
  get_done = true;
  canceller.join();
  if (!s.ok()) {
    if (g_interrupts.load() > 0) {
      rep.error = "interrupted while waiting for a VM";
      rep.status = 128 + SIGINT;
    } else {
      FailRpc("run: GetVM of template '" + rep.template_name + "'", s, sock);
      rep.error = "GetVM: " + s.error_message();
      printed = true;
      rep.status = kExitOwnFailure;
    }
    return finish();
  }
  const pb::VM& vm = got.vm();
  rep.vm_id = vm.id();
  rep.pool_hit = got.pool_hit();
  rep.daemon_get_vm_ns = vm.timings().total_ns();
  rep.clone_ns = vm.timings().clone_ns();

  ContainerRunOptions o;
  o.create = *req;
  o.interactive = args->Has("interactive");
  o.remove = rm;
  o.interrupts = &g_interrupts;
  o.t0_ns = t0;
  rep.run = RunContainerSession(VsockAgentConnector(vm.agent_socket()), o);
  rep.status = rep.run.status;
  rep.error = rep.run.error;

  if (rm) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    pb::ReleaseVMRequest rel;
    rel.set_id(vm.id());
    pb::ReleaseVMResponse relr;
    t = MonotonicNs();
    grpc::Status rs = stub->ReleaseVM(&ctx, rel, &relr);
    rep.release_ns = MonotonicNs() - t;
    rep.released = rs.ok();
    if (!rs.ok()) FailRpc("run: ReleaseVM " + vm.id(), rs, sock);
  } else {
    std::fprintf(stderr, "kata-factory: run: VM %s kept (container %s); `kata-factory release %s` "
                 "stops it\n", vm.id().c_str(), rep.container_id.c_str(), vm.id().c_str());
  }
  return finish();
}

}  // namespace kf::cli
