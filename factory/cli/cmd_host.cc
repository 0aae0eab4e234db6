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

}  // namespace

int HostCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help"))
    return std::fputs("Usage: kata-factory host [--json]\n"
                      "  Report this host's KVM, and which parts of the sandbox jail it can\n"
                      "  enforce (seccomp, capabilities, a cgroup v2 and a uid per sandbox) for a\n"
                      "  daemon started as this user here. Exit status 1 when KVM is not usable.\n",
                      stdout),
           0;
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
  JailText(jail);
  return 0;
}

}  // namespace kf::cli
