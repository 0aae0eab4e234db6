// `kata-factory demo`: the main job on the embedded default. Creates a
// template of the embedded bare guest, clones it, checks the clones are
// distinct machines, prints a short summary.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "agent/bare/bare_image.h"
#include "factory/bare_template.h"
#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/clone_batch.h"
#include "factory/clone_report.h"
#include "factory/agent_client.h"

namespace kf::cli {

namespace {

constexpr char kDemoHelp[] =
    "Usage: kata-factory demo [--count N] [--mem-mib M] [--init-mib N] [--keep-template DIR] [--json]\n"
    "  Create a template of the embedded bare guest (default 128 MiB, 64 MiB\n"
    "  initialised at boot) in a temporary directory, clone it N times (default\n"
    "  20), check that the clones hold distinct identities and RNG streams, and\n"
    "  print latency and memory per clone. --keep-template DIR writes the\n"
    "  template to DIR and keeps it.\n";

// Clones must differ: distinct identity and distinct RNG output.
Status CheckDistinct(CloneBatch& batch) {
  std::vector<std::string> randoms;
  for (size_t i = 0; i < batch.agents().size() && i < 20; ++i) {
    AgentClient& c = batch.agents()[i];
    ASSIGN_OR_RETURN(Identity id, c.GetIdentity());
    if (id.sandbox_id != "clone-" + std::to_string(i))
      return Error("clone " + std::to_string(i) + " reports identity '" + id.sandbox_id + "'");
    ASSIGN_OR_RETURN(auto r, c.Random(64));
    for (const auto& other : randoms)
      if (other == r) return Error("two clones produced the same random bytes");
    randoms.push_back(std::move(r));
  }
  return Status::Ok();
}

}  // namespace

int DemoCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {"count", "mem-mib", "init-mib", "keep-template"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kDemoHelp, stdout), 0;
  auto count = args->GetUint("count", 20);
  auto mem = args->GetUint("mem-mib", 128);
  auto init = args->GetUint("init-mib", 64);
  for (auto* r : {&count, &mem, &init})
    if (!r->ok()) return Fail(r->error().message(), kExitUsage);
  if (*count < 1) return Fail("--count must be at least 1", kExitUsage);

  auto kvm = Kvm::Open();
  if (!kvm.ok())
    return Fail("KVM is not usable here (" + kvm.error().message() +
                "); scripts/nested-kvm runs kata-factory inside a VM with a real /dev/kvm");

  std::string dir = args->Get("keep-template");
  std::string scratch;
  if (dir.empty()) {
    char tmpl[] = "/tmp/kata-factory-demo-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Fail(Error::Sys("mkdtemp").message());
    scratch = tmpl;
    dir = scratch + "/template";
  }
  auto cleanup = [&] {
    if (!scratch.empty()) std::filesystem::remove_all(scratch);
  };
  BareTemplateOptions o;
  o.mem_bytes = *mem << 20;
  o.init_bytes = *init << 20;
  auto boot = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), dir);
  if (!boot.ok()) return cleanup(), Fail(boot.error().message());
  if (!args->Has("json"))
    std::printf("template: bare guest, %llu MiB, %llu MiB initialised at boot in %.2f ms\n",
                (unsigned long long)*mem, (unsigned long long)*init, boot->boot_ns / 1e6);
  auto tmpl = LoadTemplate(dir);
  if (!tmpl.ok()) return cleanup(), Fail(tmpl.error().message());
  CloneBatchOptions co;
  co.count = static_cast<int>(*count);
  auto batch = CloneBatch::Run(std::move(*tmpl), co);
  if (!batch.ok()) return cleanup(), Fail(batch.error().message());
  Status distinct = CheckDistinct(*batch);
  if (args->Has("json")) {
    std::cout << CloneReportJson(dir, *batch) << "\n";
  } else {
    std::cout << CloneReportText(dir, *batch, false);
    std::printf("clones are distinct machines (identity, RNG): %s\n",
                distinct.ok() ? "yes" : distinct.error().message().c_str());
  }
  Status released = batch->Release();
  cleanup();
  if (!distinct.ok()) return Fail(distinct.error().message());
  if (!released.ok()) return Fail(released.error().message());
  return 0;
}

}  // namespace kf::cli
