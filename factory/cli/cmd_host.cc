// `kata-factory host`: what this host's KVM offers (and why not, if not).
#include <cstdio>
#include <iostream>

#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/json.h"
#include "vmm-glue/kvm.h"

namespace kf::cli {

int HostCommand(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help"))
    return std::fputs("Usage: kata-factory host [--json]\n  Report this host's KVM.\n", stdout), 0;
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
    std::cout << j.EndObject().str() << "\n";
    return kvm.ok() ? 0 : 1;
  }
  if (!kvm.ok()) return Fail("KVM is not usable here: " + kvm.error().message());
  const auto& i = kvm->info();
  std::printf("KVM API %d%s; XSAVE area %d bytes; irqchip %s, PIT %s; %zu MSRs, %zu CPUID entries\n",
              i.api_version, i.is_pvm ? " (PVM: guest kernels need PVM support)" : "",
              i.xsave_size, i.has_irqchip ? "yes" : "no", i.has_pit2 ? "yes" : "no",
              i.msr_indices.size(), i.supported_cpuid.size());
  return 0;
}

}  // namespace kf::cli
