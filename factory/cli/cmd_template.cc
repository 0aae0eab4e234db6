// `kata-factory template create|inspect`.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "agent/bare/bare_image.h"
#include "factory/bare_template.h"
#include "factory/linux_template.h"
#include "factory/cli/args.h"
#include "factory/cli/commands.h"
#include "factory/cli/json.h"
#include "snapshot/template_files.h"

namespace kf::cli {

namespace {

constexpr char kTemplateHelp[] =
    "Usage:\n"
    "  kata-factory template create --guest bare --out DIR [--mem-mib M] [--init-mib N]\n"
    "                               [--seed S] [--pit] [--no-irqchip] [--json]\n"
    "      Boot the guest, wait for its agent's READY, snapshot it into DIR\n"
    "      (DIR must not exist). Defaults: --mem-mib 128 --init-mib 64.\n"
    "      --init-mib is the memory the bare guest writes at boot: the stand-in\n"
    "      for the start-up work a template saves every clone.\n"
    "  kata-factory template create --guest linux --out DIR [--guest-dir G]\n"
    "                               [--kernel K] [--initrd I] [--cmdline C]\n"
    "                               [--rootfs R | --no-rootfs]\n"
    "                               [--mem-mib M] [--boot-timeout S] [--json]\n"
    "      Boot a Linux kernel whose initramfs /init is the agent, wait until the\n"
    "      agent answers on vsock port 1024, snapshot it into DIR. The kernel and\n"
    "      initramfs come from G (the output of scripts/build-guest: vmlinuz and\n"
    "      initramfs.cpio.gz; default $KF_GUEST_DIR, else guest/ beside this\n"
    "      binary) unless --kernel/--initrd name them. The rootfs image (G's\n"
    "      rootfs.ext4 unless --rootfs names one; a multiple of 2 MiB) becomes a\n"
    "      read-only virtio-pmem device the agent mounts at /rootfs with -o dax;\n"
    "      DIR keeps a copy (rootfs.img) that every clone maps, shared.\n"
    "      --no-rootfs boots without one. Defaults: --mem-mib 256\n"
    "      --boot-timeout 300. The boot console is kept as DIR/boot-console.log.\n"
    "  kata-factory template inspect DIR [--json]\n"
    "      Validate DIR's state (version, sizes, checksums) and describe it.\n";

// Where scripts/build-guest put the Linux guest, when not given.
std::string DefaultGuestDir() {
  if (const char* env = std::getenv("KF_GUEST_DIR"); env != nullptr && *env != '\0') return env;
  std::string self;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) self.assign(buf, static_cast<size_t>(n));
  const size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/guest";
}

int CreateLinux(const Args& args) {
  const std::string out = args.Get("out");
  if (out.empty()) return Fail("template create needs --out DIR", kExitUsage);
  for (const char* bare_only : {"init-mib", "seed"})
    if (args.Has(bare_only))
      return Fail(std::string("--") + bare_only + " is for --guest bare", kExitUsage);
  auto mem = args.GetUint("mem-mib", 256);
  auto timeout = args.GetUint("boot-timeout", 300);
  for (auto* r : {&mem, &timeout})
    if (!r->ok()) return Fail(r->error().message(), kExitUsage);
  const std::string guest_dir = args.Get("guest-dir", DefaultGuestDir());
  LinuxTemplateOptions o;
  o.kernel_path = args.Get("kernel", guest_dir + "/vmlinuz");
  o.initrd_path = args.Get("initrd", guest_dir + "/initramfs.cpio.gz");
  o.cmdline = args.Get("cmdline", "");
  if (args.Has("rootfs") && args.Has("no-rootfs"))
    return Fail("--rootfs and --no-rootfs exclude each other", kExitUsage);
  if (!args.Has("no-rootfs")) o.rootfs_path = args.Get("rootfs", guest_dir + "/rootfs.ext4");
  o.mem_bytes = *mem << 20;
  o.boot_timeout_s = static_cast<int>(*timeout);
  o.verbose = !args.Has("json");
  for (const std::string* path : {&o.kernel_path, &o.initrd_path, &o.rootfs_path})
    if (!path->empty() && ::access(path->c_str(), R_OK) != 0)
      return Fail(*path + ": not readable (build the guest with scripts/build-guest --out " +
                  guest_dir + ", or pass --guest-dir/--kernel/--initrd/--rootfs)");
  auto kvm = Kvm::Open();
  if (!kvm.ok()) return Fail("KVM is not usable here: " + kvm.error().message());
  auto result = CreateLinuxTemplate(*kvm, o, out);
  if (!result.ok()) return Fail(result.error().message());
  if (args.Has("json")) {
    Json j;
    j.BeginObject().Str("template", out).Str("guest", "linux").Uint("mem_bytes", o.mem_bytes)
        .Str("kernel", o.kernel_path).Str("initrd", o.initrd_path).Str("rootfs", o.rootfs_path)
        .Num("boot_ms", result->boot_ns / 1e6).Uint("agent_probes", result->probes).EndObject();
    std::cout << j.str() << "\n";
  } else {
    std::printf("template %s: linux guest, %llu MiB, agent answered after %.2f s (%llu probes)\n",
                out.c_str(), (unsigned long long)(o.mem_bytes >> 20), result->boot_ns / 1e9,
                (unsigned long long)result->probes);
  }
  return 0;
}

int Create(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "pit", "no-irqchip", "no-rootfs", "help"},
                          {"guest", "out", "mem-mib", "init-mib", "seed", "boot-timeout",
                           "guest-dir", "kernel", "initrd", "cmdline", "rootfs"});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kTemplateHelp, stdout), 0;
  const std::string guest = args->Get("guest", "bare");
  if (guest == "linux") return CreateLinux(*args);
  if (guest != "bare") return Fail("--guest " + guest + ": want bare or linux", kExitUsage);
  for (const char* linux_only : {"guest-dir", "kernel", "initrd", "cmdline", "rootfs", "no-rootfs"})
    if (args->Has(linux_only))
      return Fail(std::string("--") + linux_only + " is for --guest linux", kExitUsage);
  const std::string out = args->Get("out");
  if (out.empty()) return Fail("template create needs --out DIR", kExitUsage);
  auto mem = args->GetUint("mem-mib", 128);
  auto init = args->GetUint("init-mib", 64);
  auto seed = args->GetUint("seed", 0x6b66);
  auto timeout = args->GetUint("boot-timeout", 120);
  for (auto* r : {&mem, &init, &seed, &timeout})
    if (!r->ok()) return Fail(r->error().message(), kExitUsage);
  BareTemplateOptions o;
  o.mem_bytes = *mem << 20;
  o.init_bytes = *init << 20;
  o.seed = *seed;
  o.vm.pit = args->Has("pit");
  o.vm.irqchip = !args->Has("no-irqchip");
  o.boot_timeout_s = static_cast<int>(*timeout);
  auto kvm = Kvm::Open();
  if (!kvm.ok()) return Fail("KVM is not usable here: " + kvm.error().message());
  auto result = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), out);
  if (!result.ok()) return Fail(result.error().message());
  if (args->Has("json")) {
    Json j;
    j.BeginObject().Str("template", out).Str("guest", "bare").Uint("mem_bytes", o.mem_bytes)
        .Uint("init_bytes", o.init_bytes).Num("boot_ms", result->boot_ns / 1e6)
        .Uint("init_hash", result->init_hash).EndObject();
    std::cout << j.str() << "\n";
  } else {
    std::printf("template %s: bare guest, %llu MiB (%llu MiB initialised), booted in %.2f ms\n",
                out.c_str(), (unsigned long long)(o.mem_bytes >> 20),
                (unsigned long long)(o.init_bytes >> 20), result->boot_ns / 1e6);
  }
  return 0;
}

int Inspect(const Argv& argv) {
  auto args = Args::Parse(argv, {"json", "help"}, {});
  if (!args.ok()) return Fail(args.error().message(), kExitUsage);
  if (args->Has("help")) return std::fputs(kTemplateHelp, stdout), 0;
  if (args->positional().size() != 1) return Fail("template inspect needs one DIR", kExitUsage);
  const std::string dir = args->positional()[0];
  auto state = ReadTemplateState(dir);
  if (!state.ok()) return Fail(dir + ": " + state.error().message());
  if (args->Has("json")) {
    Json j;
    j.BeginObject().Str("template", dir).Str("guest", state->guest_kind)
        .Uint("mem_bytes", state->mem_size).Uint("vcpus", state->vcpus.size())
        .Bool("irqchip", state->vm_config.irqchip).Bool("pit", state->vm_config.pit)
        .Str("host_kernel", state->host.kernel_release).Bool("host_is_pvm", state->host.is_pvm);
    j.BeginArray("unsupported");
    for (const auto& u : state->vm.unsupported) j.BeginObject().Str("what", u).EndObject();
    for (const auto& v : state->vcpus)
      for (const auto& u : v.unsupported) j.BeginObject().Str("what", u).EndObject();
    j.EndArray().EndObject();
    std::cout << j.str() << "\n";
  } else {
    std::cout << DescribeTemplate(*state);
  }
  return 0;
}

}  // namespace

int TemplateCommand(const Argv& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help")
    return std::fputs(kTemplateHelp, argv.empty() ? stderr : stdout), argv.empty() ? kExitUsage : 0;
  Argv rest(argv.begin() + 1, argv.end());
  if (argv[0] == "create") return Create(rest);
  if (argv[0] == "inspect") return Inspect(rest);
  return Fail("unknown template verb '" + argv[0] + "' (create, inspect)", kExitUsage);
}

}  // namespace kf::cli
