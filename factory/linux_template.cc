#include "factory/linux_template.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "factory/agent_client.h"
#include "factory/clock.h"
#include "factory/template_host.h"
#include "factory/linux_layout.h"
#include "factory/linux_machine.h"
#include "memshare/guest_backing.h"
#include "memshare/pmem_backing.h"
#include "snapshot/template_files.h"
#include "vmm-glue/acpi/tables.h"
#include "vmm-glue/linux/linux_loader.h"
#include "vmm-glue/pmem/pmem_device.h"

namespace kf {

namespace {

// A whole file, refused when larger than `max` (a kernel or an initramfs,
// not a disk image).
Result<std::vector<uint8_t>> ReadSmallFile(const std::string& path, uint64_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return Error::Sys("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max)
    return Error(path + " is " + std::to_string(st.st_size) + " bytes, more than " +
                 std::to_string(max));
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::Sys("read " + path);
    if (n == 0) return Error(path + " shrank while being read");
    done += static_cast<size_t>(n);
  }
  return data;
}

// The last lines of the boot console, for errors ("why did it not boot?").
std::string ConsoleTail(const std::string& path, size_t max_bytes = 1500) {
  std::ifstream f(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() > max_bytes) all = all.substr(all.size() - max_bytes);
  return all;
}

}  // namespace

Result<LinuxBootResult> CreateLinuxTemplate(const Kvm& kvm, const LinuxTemplateOptions& o,
                                            const std::string& out_dir) {
  if (::access(out_dir.c_str(), F_OK) == 0)
    return Error("template directory " + out_dir + " already exists");
  if (o.mem_bytes < linux_layout::kMinMemSize || o.mem_bytes > linux_layout::kMaxMemSize ||
      o.mem_bytes % (2ull << 20) != 0)
    return Error("linux guest memory must be a multiple of 2 MiB between 64 MiB and 3 GiB");
  ASSIGN_OR_RETURN(std::vector<uint8_t> kernel, ReadSmallFile(o.kernel_path, 512ull << 20));
  ASSIGN_OR_RETURN(std::vector<uint8_t> initrd, ReadSmallFile(o.initrd_path, 1ull << 30));
  std::string cmdline = o.cmdline.empty() ? linux_layout::kDefaultCmdline : o.cmdline;
  std::optional<PmemBacking> rootfs;
  uint64_t rootfs_checksum = 0;
  if (!o.rootfs_path.empty()) {
    auto mapped = MapPmemImage(o.rootfs_path, /*read_only=*/true);
    if (!mapped.ok()) return mapped.error().Context("rootfs image");
    rootfs = std::move(*mapped);
    rootfs_checksum = XXH3_64bits(rootfs->mapping.data(), rootfs->size);
    if (cmdline.find("kf_agent.rootfs=") == std::string::npos)
      cmdline += std::string(" ") + linux_layout::kRootfsCmdline;
  }
  const std::string console_log =
      o.console_log.empty() ? out_dir + ".boot-console.log" : o.console_log;
  ::unlink(console_log.c_str());

  ASSIGN_OR_RETURN(UniqueFd memfd, CreateMemfd("kf-template-boot", o.mem_bytes));
  ASSIGN_OR_RETURN(Mapping memory, MapShared(memfd.get(), o.mem_bytes));
  GuestMemoryView view(memory.data(), memory.size());

  acpi::AcpiConfig acpi_config;
  acpi_config.num_cpus = 1;
  acpi_config.virtio_mmio.push_back(
      {linux_layout::kVsockMmioGpa, static_cast<uint32_t>(vsock::kMmioWindowSize),
       linux_layout::kVsockGsi});
  if (rootfs) {
    acpi_config.virtio_mmio.push_back({linux_layout::kPmemMmioGpa,
                                       static_cast<uint32_t>(pmem::kMmioWindowSize),
                                       linux_layout::kPmemGsi});
  }
  ASSIGN_OR_RETURN(acpi::AcpiTables tables,
                   acpi::BuildAcpiTables(acpi_config, linux_layout::kAcpiGpa,
                                         linux_layout::kAcpiMaxSize));
  uint8_t* acpi_dst = view.At(tables.base_gpa, tables.bytes.size());
  if (acpi_dst == nullptr) return Error("ACPI tables do not fit in guest memory");
  std::memcpy(acpi_dst, tables.bytes.data(), tables.bytes.size());

  LinuxBootConfig boot;
  boot.kernel = kernel;
  boot.initrd = initrd;
  boot.cmdline = cmdline;
  boot.rsdp_gpa = tables.rsdp_gpa;
  boot.mem_size = o.mem_bytes;
  ASSIGN_OR_RETURN(LinuxBootInfo info, LoadLinux(view, boot));

  const uint64_t start_ns = MonotonicNs();
  LinuxMachineOptions mo;
  mo.console_log = console_log;
  if (rootfs) mo.rootfs = &*rootfs;
  ASSIGN_OR_RETURN(auto machine, LinuxMachine::Create(kvm, view, mo));
  RETURN_IF_ERROR(machine->PrepareBoot(kvm, view, info));
  RETURN_IF_ERROR(machine->Start());

  // Knock until the agent answers: before its vsock listener exists the
  // guest resets the connection, which ends the handshake at once.
  LinuxBootResult result;
  std::optional<AgentClient> probe;
  std::string last_error = "no attempt";
  const uint64_t deadline = start_ns + uint64_t(o.boot_timeout_s) * 1000000000ull;
  while (!probe && machine->running() && MonotonicNs() < deadline) {
    ++result.probes;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
      return Error::Sys("socketpair for the template probe");
    UniqueFd device_end(pair[0]), probe_end(pair[1]);
    Status added = machine->WithDevices(
        [&](vsock::HybridVsock& v) { return v.AddClient(std::move(device_end)); });
    if (!added.ok()) return added.error().Context("template agent probe");
    auto client = AgentClient::Handshake(std::move(probe_end), kAgentPort, 5000);
    if (client.ok()) {
      probe.emplace(std::move(*client));
      break;
    }
    last_error = client.error().message();
    if (o.verbose && result.probes % 10 == 1)
      std::fprintf(stderr, "waiting for the agent (%.0f s): %s\n",
                   (MonotonicNs() - start_ns) / 1e9, last_error.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (probe) {
    auto ping = probe->Ping(0x7e57);
    if (!ping.ok()) {
      probe.reset();
      last_error = "ping after Ready: " + ping.error().message();
    }
  }
  result.boot_ns = MonotonicNs() - start_ns;
  machine->RequestStop();
  auto stopped = machine->Join();
  if (!probe) {
    std::string why = !stopped.ok()                        ? stopped.error().message()
                      : *stopped == LinuxStop::kReset      ? "the guest reset itself"
                      : *stopped == LinuxStop::kShutdown   ? "the guest triple-faulted"
                      : MonotonicNs() >= deadline          ? "no answer within " +
                                                               std::to_string(o.boot_timeout_s) +
                                                               " s (last: " + last_error + ")"
                                                           : last_error;
    return Error("the Linux guest's agent did not come up: " + why + "\n--- console (" +
                 console_log + ") ---\n" + ConsoleTail(console_log));
  }
  if (!stopped.ok()) return stopped.error().Context("stopping the template VM");
  if (*stopped != LinuxStop::kRequested)
    return Error("the Linux guest stopped by itself before the snapshot");

  TemplateState state;
  state.guest_kind = kGuestKindLinux;
  state.created_unix_ns = RealtimeNs();
  state.mem_size = o.mem_bytes;
  state.vm_config.irqchip = true;
  state.vm_config.pit = true;
  state.linux_guest.cmdline = cmdline;
  state.linux_guest.kernel_checksum = XXH3_64bits(kernel.data(), kernel.size());
  state.linux_guest.initrd_checksum = XXH3_64bits(initrd.data(), initrd.size());
  if (rootfs) {
    state.linux_guest.rootfs_size = rootfs->size;
    state.linux_guest.rootfs_checksum = rootfs_checksum;
  }
  RETURN_IF_ERROR(machine->Capture(&state));
  state.host = DescribeTemplateHost(kvm);
  RETURN_IF_ERROR(WriteTemplate(out_dir, std::move(state),
                                std::span<const uint8_t>(memory.data(), memory.size()),
                                o.rootfs_path));
  // The boot log belongs with the template it explains.
  if (o.console_log.empty())
    (void)::rename(console_log.c_str(), (out_dir + "/boot-console.log").c_str());
  return result;
}

}  // namespace kf
