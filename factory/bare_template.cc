#include "factory/bare_template.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include <xxhash.h>

#include "agent/bare/bare_abi.h"
#include "factory/agent_client.h"
#include "factory/bare_ports.h"
#include "factory/clock.h"
#include "factory/template_host.h"
#include "memshare/guest_backing.h"
#include "snapshot/template_files.h"
#include "vmm-glue/bare_loader.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/run_loop.h"

namespace kf {

namespace {

volatile bool g_boot_timed_out = false;
void OnAlarm(int) { g_boot_timed_out = true; }

// The template's own agent connection, made from a second thread while the
// vCPU thread serves the device: it proves the agent answers over vsock
// before the snapshot, and leaves one live connection in the captured table
// that every clone must reset.
class TemplateProbe {
 public:
  explicit TemplateProbe(UniqueFd client_end) : fd_(std::move(client_end)) {}
  ~TemplateProbe() {
    if (thread_.joinable()) thread_.join();
  }

  Status Start(int wake_fd) {
    wake_fd_ = wake_fd;
    thread_ = std::thread([this] { Run(); });
    return Status::Ok();
  }
  bool done() const { return done_.load(); }
  // Valid once done(): the agent's Ready, or why it could not be reached.
  const Result<AgentClient>& client() const { return *client_; }
  Result<uint64_t> ping_result() const { return ping_; }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    // SIGALRM (the boot timeout) must interrupt the vCPU thread's KVM_RUN.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    client_.emplace(AgentClient::Handshake(std::move(fd_)));
    if (client_->ok()) ping_ = (*client_)->Ping(0x7e57);
    done_.store(true);
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  UniqueFd fd_;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::optional<Result<AgentClient>> client_;
  Result<uint64_t> ping_ = Error("not run");
};

}  // namespace

std::string DescribeBarePanic(const GuestMemoryView& mem) {
  const auto* boot = mem.As<kf_boot_info>(KF_BARE_BOOT_GPA);
  if (boot == nullptr) return "no boot info";
  // Guest-written: copied once, used only as numbers.
  const uint32_t code = boot->panic_code;
  const uint64_t detail = boot->panic_detail;
  static const char* const kNames[] = {
      "none", "bad boot info", "init range outside memory", "wrong MMIO window address",
      "no virtio-mmio magic", "virtio-mmio version is not 2", "device is not vsock",
      "device reset did not complete", "VIRTIO_F_VERSION_1 not offered",
      "FEATURES_OK refused", "queue busy before setup", "queue missing",
      "queue not ready after setup", "bad guest CID", "device failed after DRIVER_OK"};
  const char* name = code < std::size(kNames) ? kNames[code] : "unknown";
  char buf[160];
  std::snprintf(buf, sizeof buf, "panic code %u: %s, detail 0x%llx", code, name,
                static_cast<unsigned long long>(detail));
  return buf;
}

Result<BareBootResult> CreateBareTemplate(const Kvm& kvm, const BareTemplateOptions& o,
                                          std::span<const uint8_t> image,
                                          const std::string& out_dir) {
  if (::access(out_dir.c_str(), F_OK) == 0)
    return Error("template directory " + out_dir + " already exists");
  ASSIGN_OR_RETURN(UniqueFd memfd, CreateMemfd("kf-template-boot", o.mem_bytes));
  ASSIGN_OR_RETURN(Mapping memory, MapShared(memfd.get(), o.mem_bytes));
  GuestMemoryView view(memory.data(), memory.size());
  BareBootConfig boot;
  boot.init_size = o.init_bytes;
  boot.seed = o.seed;
  boot.flags = o.hostile ? KF_BOOT_FLAG_HOSTILE : 0;
  RETURN_IF_ERROR(LoadBareImage(view, image, boot));

  const uint64_t start_ns = MonotonicNs();
  ASSIGN_OR_RETURN(Vm vm, Vm::Create(kvm, o.vm));
  RETURN_IF_ERROR(vm.SetMemorySlot(0, 0, o.mem_bytes, memory.data()));
  ASSIGN_OR_RETURN(Vcpu vcpu, vm.CreateVcpu(0));
  RETURN_IF_ERROR(SetupBareVcpu(vcpu, kvm.info().supported_cpuid));
  vsock::HybridVsockOptions vsock_options;
  vsock_options.poll_on_wait = true;  // the bare guest waits on KF_PORT_WAIT
  ASSIGN_OR_RETURN(auto vsock,
                   vsock::HybridVsock::Create(view, KF_BARE_VSOCK_MMIO_GPA, vsock_options));

  // The probe's socketpair: its far end is a client of the device, as if it
  // had connected to agent.sock.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    return Error::Sys("socketpair for the template probe");
  UniqueFd device_end(pair[0]);
  TemplateProbe probe{UniqueFd(pair[1])};
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return Error::Sys("eventfd");
  bool probe_started = false;

  BareGuestPorts* ports_ptr = nullptr;
  BareGuestPorts::Hooks hooks;
  hooks.interrupt = &g_boot_timed_out;
  hooks.extra_fd = wake.get();
  hooks.on_extra_fd = [&]() -> Result<bool> {
    uint64_t n;
    (void)!::read(wake.get(), &n, sizeof n);
    return false;  // the next idle wait decides
  };
  // Stop at the first idle wait after READY (hostile guests), or after the
  // probe has its answers.
  hooks.stop_when_idle = [&]() {
    if (!ports_ptr->ready()) return false;
    if (o.hostile) return true;
    if (!probe_started) {
      probe_started = true;
      Status s = vsock->AddClient(std::move(device_end));
      if (!s.ok()) return true;  // reported below: the probe never finishes
      (void)probe.Start(wake.get());
      return false;
    }
    return probe.done();
  };
  BareGuestPorts ports(vsock.get(), std::move(hooks));
  ports_ptr = &ports;
  IoBus bus;
  RETURN_IF_ERROR(bus.AddPio(KF_PORT_SIGNAL, 8, &ports, "bare-ports"));
  RETURN_IF_ERROR(bus.AddMmio(KF_BARE_VSOCK_MMIO_GPA, vsock::kMmioWindowSize, vsock->mmio(),
                              "virtio-vsock"));

  g_boot_timed_out = false;
  struct sigaction sa {}, old {};
  sa.sa_handler = OnAlarm;  // no SA_RESTART: KVM_RUN and poll return EINTR
  ::sigaction(SIGALRM, &sa, &old);
  ::alarm(static_cast<unsigned>(o.boot_timeout_s));
  auto stopped = RunVcpu(vcpu, bus, &g_boot_timed_out);
  ::alarm(0);
  ::sigaction(SIGALRM, &old, nullptr);
  if (!stopped.ok()) return stopped.error().Context("booting the bare guest");
  if (ports.failure() != nullptr) return ports.failure()->Context("booting the bare guest");
  if (ports.panicked())
    return Error("the bare guest panicked while booting (" + DescribeBarePanic(view) + ")");
  if (*stopped == StopReason::kShutdown)
    return Error("the bare guest crashed while booting (triple fault; " +
                 vcpu.DescribeForCrash() + ")");
  if (g_boot_timed_out || *stopped == StopReason::kInterrupted)
    return Error(std::string(ports.ready() ? "the agent did not answer over vsock"
                                           : "the bare guest did not signal READY") +
                 " within " + std::to_string(o.boot_timeout_s) + " s");

  BareBootResult result;
  result.boot_ns = ports.ready_ns() - start_ns;
  if (!o.hostile) {
    probe.Join();
    if (!probe.client().ok()) return probe.client().error().Context("template agent probe");
    if (!probe.ping_result().ok())
      return probe.ping_result().error().Context("template agent probe");
    const auto& ready = probe.client()->ready();
    if (ready.init_bytes() != (o.init_bytes & ~7ull) || ready.mem_total() != o.mem_bytes)
      return Error("the agent's Ready does not match the boot parameters");
    result.init_hash = ready.init_hash();
  }

  // Finish the pending `in` so the vCPU sits at an instruction boundary.
  RETURN_IF_ERROR(vcpu.CompletePendingExit());

  TemplateState state;
  state.guest_kind = "bare";
  state.created_unix_ns = RealtimeNs();
  state.mem_size = o.mem_bytes;
  state.vm_config = o.vm;
  state.bare.init_bytes = o.init_bytes;
  state.bare.seed = o.seed;
  state.bare.image_checksum = XXH3_64bits(image.data(), image.size());
  ASSIGN_OR_RETURN(auto msrs, vcpu.ProbeSavableMsrs());
  ASSIGN_OR_RETURN(VcpuState vs, vcpu.CaptureState(msrs, kvm.info().supported_cpuid));
  state.vcpus.push_back(std::move(vs));
  ASSIGN_OR_RETURN(state.vm, vm.CaptureState());
  state.vsock = vsock->Save();
  state.host = DescribeTemplateHost(kvm);
  RETURN_IF_ERROR(WriteTemplate(out_dir, std::move(state),
                                std::span<const uint8_t>(memory.data(), memory.size())));
  return result;
}

}  // namespace kf
