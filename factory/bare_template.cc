#include "factory/bare_template.h"

#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <xxhash.h>

#include "agent/bare/bare_abi.h"
#include "factory/clock.h"
#include "memshare/guest_backing.h"
#include "snapshot/template_files.h"
#include "vmm-glue/bare_loader.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/run_loop.h"

namespace kf {

namespace {

volatile bool g_boot_timed_out = false;
void OnAlarm(int) { g_boot_timed_out = true; }

// Ports while the template boots: READY ends the boot; the first wait after
// it is where we stop (with "no work" as the value of the pending `in`).
class BootPort : public IoDevice {
 public:
  explicit BootPort(const kf_mailbox* mb) : mb_(mb) {}
  bool ready() const { return ready_; }
  bool panicked() const { return panicked_; }
  uint64_t ready_ns() const { return ready_ns_; }
  uint64_t init_hash() const { return init_hash_; }

  IoAction Read(uint64_t port, std::span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());  // 0 = no request
    return port == KF_PORT_WAIT && ready_ ? IoAction::kStop : IoAction::kContinue;
  }
  IoAction Write(uint64_t port, std::span<const uint8_t> data) override {
    if (port != KF_PORT_SIGNAL || data.size() != 4) return IoAction::kContinue;
    uint32_t signal;
    std::memcpy(&signal, data.data(), 4);
    if (signal == KF_SIGNAL_READY) {
      ready_ = true;
      ready_ns_ = MonotonicNs();
      init_hash_ = mb_->ret[1];
    } else if (signal == KF_SIGNAL_PANIC) {
      panicked_ = true;
      return IoAction::kStop;
    }
    return IoAction::kContinue;
  }

 private:
  const kf_mailbox* mb_;
  bool ready_ = false;
  bool panicked_ = false;
  uint64_t ready_ns_ = 0;
  uint64_t init_hash_ = 0;
};

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

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
  RETURN_IF_ERROR(LoadBareImage(view, image, boot));

  const uint64_t start_ns = MonotonicNs();
  ASSIGN_OR_RETURN(Vm vm, Vm::Create(kvm, o.vm));
  RETURN_IF_ERROR(vm.SetMemorySlot(0, 0, o.mem_bytes, memory.data()));
  ASSIGN_OR_RETURN(Vcpu vcpu, vm.CreateVcpu(0));
  RETURN_IF_ERROR(SetupBareVcpu(vcpu, kvm.info().supported_cpuid));

  BootPort port(view.As<kf_mailbox>(KF_BARE_MAILBOX_GPA));
  IoBus bus;
  RETURN_IF_ERROR(bus.AddPio(KF_PORT_SIGNAL, 8, &port, "bare-agent"));
  g_boot_timed_out = false;
  struct sigaction sa {}, old {};
  sa.sa_handler = OnAlarm;  // no SA_RESTART: KVM_RUN returns EINTR
  ::sigaction(SIGALRM, &sa, &old);
  ::alarm(static_cast<unsigned>(o.boot_timeout_s));
  auto stopped = RunVcpu(vcpu, bus, &g_boot_timed_out);
  ::alarm(0);
  ::sigaction(SIGALRM, &old, nullptr);
  if (!stopped.ok()) return stopped.error().Context("booting the bare guest");
  if (*stopped == StopReason::kInterrupted)
    return Error("the bare guest did not signal READY within " +
                 std::to_string(o.boot_timeout_s) + " s");
  if (*stopped == StopReason::kShutdown)
    return Error("the bare guest crashed while booting (triple fault)");
  if (port.panicked())
    return Error("the bare guest panicked while booting (status " +
                 std::to_string(view.As<kf_mailbox>(KF_BARE_MAILBOX_GPA)->status) + ")");

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
  utsname uts{};
  ::uname(&uts);
  state.host.kernel_release = uts.release;
  state.host.cpu_model = CpuModel();
  state.host.is_pvm = kvm.info().is_pvm;
  RETURN_IF_ERROR(WriteTemplate(out_dir, std::move(state),
                                std::span<const uint8_t>(memory.data(), memory.size())));
  BareBootResult result;
  result.boot_ns = port.ready_ns() - start_ns;
  result.init_hash = port.init_hash();
  return result;
}

}  // namespace kf
