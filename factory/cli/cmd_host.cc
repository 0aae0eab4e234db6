// `kata-factory host`: what this host's KVM offers (and why not, if not),
// and which parts of the sandbox jail it can enforce (docs/RELIABILITY.md).
#include <cstdio>
#include <iostream>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/json.h"
#include "factory/jail/capabilities.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/sandbox_uids.h"
#include "factory/jail/seccomp_filter.h"
#include "vmm-glue/kvm.h"
#include "vmm-glue/nx_huge_pages.h"

namespace kf::cli {

namespace {

struct JailSupport {
  std::string seccomp_unavailable;  // "" = enforceable
  bool has_capabilities = false;    // this process holds some (sandboxes drop them)
  CgroupProbe cgroup;
  std::string uids_unavailable;     // "" = a uid per sandbox (sandbox_uids = auto)
};

JailSupport ProbeJail() {
  return {SeccompUnavailableReason(), HasAnyCapability(), ProbeSandboxCgroups(),
          SandboxUidsUnavailableReason()};
}

void JailJson(Json& j, const JailSupport& s) {
  j.BeginObjectIn("jail").Bool("seccomp", s.seccomp_unavailable.empty());
  if (!s.seccomp_unavailable.empty()) j.Str("seccomp_reason", s.seccomp_unavailable);
  j.Bool("capabilities_to_drop", s.has_capabilities).Bool("cgroup", s.cgroup.usable);
  if (s.cgroup.usable) j.Str("cgroup_dir", s.cgroup.base + "/kf-sandboxes");
  else j.Str("cgroup_reason", s.cgroup.reason);
  j.Bool("sandbox_uids", s.uids_unavailable.empty());
  if (s.uids_unavailable.empty())
    j.Str("sandbox_uid_range",
          SandboxUidSpecText({SandboxUidSpec::kRange, kDefaultSandboxUidFirst,
                              kDefaultSandboxUidCount}));
  else j.Str("sandbox_uids_reason", s.uids_unavailable);
  j.EndObject();
}

void JailText(const JailSupport& s) {
  std::printf("jail: seccomp allow-list: %s\n",
              s.seccomp_unavailable.empty() ? "enforceable" : s.seccomp_unavailable.c_str());
  std::printf("jail: capabilities: %s\n",
              s.has_capabilities ? "this process has some; sandboxes drop them all"
                                 : "none held here (nothing to drop)");
  if (s.cgroup.usable)
    std::printf("jail: cgroup v2 per sandbox: usable, under %s/kf-sandboxes\n",
                s.cgroup.base.c_str());
  else
    std::printf("jail: cgroup v2 per sandbox: not usable: %s\n", s.cgroup.reason.c_str());
  if (s.uids_unavailable.empty())
    std::printf("jail: a uid per sandbox: yes, from %u (sandbox_uids = auto)\n",
                kDefaultSandboxUidFirst);
  else
    std::printf("jail: a uid per sandbox: no: %s\n", s.uids_unavailable.c_str());
}

void NxJson(Json& j, const NxHugePages& n) {
  j.BeginObjectIn("kvm_nx_huge_pages").Bool("present", n.present);
  if (n.present) j.Str("value", n.value);
  j.Str("itlb_multihit", n.itlb_multihit).Bool("thread_per_vm", n.ThreadPerVm());
  const std::string why = n.WhyNotTunable();
  j.Bool("tunable", why.empty());
  if (!why.empty()) j.Str("not_tunable_because", why);
  j.EndObject();
}

void NxText(const NxHugePages& n) {
  if (!n.present) return;
  if (!n.ThreadPerVm()) {
    std::printf("kvm.nx_huge_pages: never (no kernel thread per VM)\n");
    return;
  }
  std::printf("kvm.nx_huge_pages: %s: every new VM starts a kvm-nx-lpage-recovery kernel thread "
              "and waits for it (ms per clone)\n",
              n.value.c_str());
  const std::string why = n.WhyNotTunable();
  if (why.empty())
    std::printf("  the CPU is not affected by iTLB multihit (%s): `kata-factory host --tune` as "
                "root sets it to never, with no VM running\n",
                n.itlb_multihit.c_str());
  else
    std::printf("  left as it is: %s\n", why.c_str());
}

}  // namespace

int HostCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "tune", "help"}, {});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help"))
    return std::fputs(
               "Usage: kata-factory host [--json] [--tune]\n"
               "  Report this host's KVM, and which parts of the sandbox jail it can\n"
               "  enforce (seccomp, capabilities, a cgroup v2 and a uid per sandbox) for a\n"
               "  daemon started as this user here. Exit status 1 when KVM is not usable.\n"
               "  --tune  (root, with no VM running on the host) set kvm.nx_huge_pages to\n"
               "          never where that changes no protection (the mitigation is off and\n"
               "          the CPU is not affected by iTLB multihit): KVM then starts no\n"
               "          kernel thread per VM, which saves each clone milliseconds. It\n"
               "          lasts until the kvm module is reloaded. Exit status 1 when it\n"
               "          cannot; already never is success.\n",
               stdout),
           0;
  if (args->Has("tune")) {
    // With --json the report below is stdout's only content.
    std::FILE* said = args->Has("json") ? stderr : stdout;
    const NxHugePages now = ReadNxHugePages();
    if (now.present && !now.ThreadPerVm()) {
      std::fprintf(said, "kvm.nx_huge_pages: already never\n");
    } else {
      auto done = SetNxHugePagesNever();
      if (!done.ok()) return Fail("host --tune: " + done.error().message());
      std::fprintf(said, "%s\n", done->c_str());
    }
    if (!args->Has("json")) return 0;
  }
  auto kvm = Kvm::Open();
  if (args->Has("json")) {
    Json j;
    j.BeginObject().Bool("kvm", kvm.ok());
    if (!kvm.ok()) j.Str("reason", kvm.error().message());
    else {
      const auto& i = kvm->info();
      j.Bool("pvm", i.is_pvm).Uint("api_version", i.api_version).Uint("xsave_size", i.xsave_size)
          .Bool("irqchip", i.has_irqchip).Bool("pit2", i.has_pit2)
          .Uint("msrs", i.msr_indices.size()).Uint("cpuid_entries", i.supported_cpuid.size())
          .Uint("max_vcpus", i.max_vcpus);
    }
    NxJson(j, ReadNxHugePages());
    JailJson(j, ProbeJail());
    std::cout << j.EndObject().str() << "\n";
    return kvm.ok() ? 0 : 1;
  }
  const JailSupport jail = ProbeJail();
  if (!kvm.ok()) {
    JailText(jail);
    return Fail("KVM is not usable here: " + kvm.error().message());
  }
  const auto& i = kvm->info();
  std::printf("KVM API %d%s; XSAVE area %d bytes; irqchip %s, PIT %s; %zu MSRs, %zu CPUID entries\n",
              i.api_version, i.is_pvm ? " (PVM: guest kernels need PVM support)" : "",
              i.xsave_size, i.has_irqchip ? "yes" : "no", i.has_pit2 ? "yes" : "no",
              i.msr_indices.size(), i.supported_cpuid.size());
  NxText(ReadNxHugePages());
  JailText(jail);
  return 0;
}

}  // namespace kf::cli
