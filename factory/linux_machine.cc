#include "factory/linux_machine.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include <cstring>
#include <vector>

#include "factory/clock.h"
#include "factory/linux_layout.h"
#include "snapshot/state_codec.h"
#include "vmm-glue/devices/i8042.h"
#include "vmm-glue/devices/serial.h"
#include "vmm-glue/virtio/mmio_transport.h"

namespace kf {

namespace {

// Kicks the vCPU thread out of KVM_RUN. The handler does nothing: the point
// is the EINTR (installed without SA_RESTART).
constexpr int kKickSignal = SIGUSR2;

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    ::sigaction(kKickSignal, &sa, nullptr);
  });
}

// A bus entry that serialises the vCPU thread's accesses with the device
// thread's.
class LockedDevice : public IoDevice {
 public:
  LockedDevice(std::mutex* mu, IoDevice* inner) : mu_(mu), inner_(inner) {}
  IoAction Read(uint64_t addr, std::span<uint8_t> data) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Read(addr, data);
  }
  IoAction Write(uint64_t addr, std::span<const uint8_t> data) override {
    std::lock_guard<std::mutex> lock(*mu_);
    return inner_->Write(addr, data);
  }

 private:
  std::mutex* mu_;
  IoDevice* inner_;
};

}  // namespace

Result<std::unique_ptr<LinuxMachine>> LinuxMachine::Create(const Kvm& kvm, GuestMemoryView mem,
                                                           const LinuxMachineOptions& options) {
  InstallKickHandler();
  std::unique_ptr<LinuxMachine> m(new LinuxMachine());
  m->mem_ = mem;
  VmConfig config;
  config.irqchip = true;
  config.pit = true;
  ASSIGN_OR_RETURN(m->vm_, Vm::Create(kvm, config));
  RETURN_IF_ERROR(m->vm_.SetMemorySlot(0, 0, mem.size(), mem.base()));
  ASSIGN_OR_RETURN(m->vcpu_, m->vm_.CreateVcpu(0));
  m->wake_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!m->wake_.valid()) return Error::Sys("eventfd");

  LinuxMachine* self = m.get();
  vsock::HybridVsockOptions vo;
  vo.uds_path = options.agent_sock;
  vo.hold_rx_until_reset_ack = true;
  ASSIGN_OR_RETURN(m->vsock_, vsock::HybridVsock::Create(mem, linux_layout::kVsockMmioGpa, vo));
  // Edge-triggered (the DSDT says so): a pulse per notification. Linux's
  // handler reads InterruptStatus, so pulses that merge lose nothing.
  m->vsock_->transport().set_interrupt_hook([self] { self->PulseGsi(linux_layout::kVsockGsi); });

  if (options.rootfs != nullptr) {
    const PmemBacking& b = *options.rootfs;
    pmem::PmemOptions po;
    po.gpa = linux_layout::kPmemGpa;
    po.size = b.size;
    po.backing_fd = b.fd.get();
    po.read_only = b.read_only;
    // Guest stores into a read-only slot exit as MMIO writes to no device,
    // which the bus drops (and counts): the image is never written.
    RETURN_IF_ERROR(m->vm_.SetMemorySlot(linux_layout::kPmemSlot, linux_layout::kPmemGpa, b.size,
                                         b.mapping.data(), b.read_only));
    ASSIGN_OR_RETURN(m->pmem_, pmem::VirtioPmem::Create(mem, linux_layout::kPmemMmioGpa, po));
    m->pmem_->transport().set_interrupt_hook([self] { self->PulseGsi(linux_layout::kPmemGsi); });
  }

  ASSIGN_OR_RETURN(m->console_, LinuxConsole::Open(options.console_log, options.console_sock));
  m->serial_ = std::make_unique<Serial8250>(
      [self](std::span<const uint8_t> bytes) { self->console_->Output(bytes); },
      [self](bool level) {
        Status s = self->vm_.SetIrqLine(linux_layout::kCom1Gsi, level);
        if (!s.ok()) self->Fail(s.error());
      });
  m->i8042_ = std::make_unique<I8042>([self] {
    // Stop after this exit: the guest wants a reset, which for a sandbox
    // means it is done.
    self->reset_.store(true);
    self->RequestStop();
  });

  auto add = [&](IoDevice* d) {
    m->locked_.push_back(std::make_unique<LockedDevice>(&m->mu_, d));
    return m->locked_.back().get();
  };
  RETURN_IF_ERROR(m->bus_.AddMmio(linux_layout::kVsockMmioGpa, vsock::kMmioWindowSize,
                                  add(m->vsock_->mmio()), "virtio-vsock"));
  if (m->pmem_) {
    RETURN_IF_ERROR(m->bus_.AddMmio(linux_layout::kPmemMmioGpa, pmem::kMmioWindowSize,
                                    add(m->pmem_->mmio()), "virtio-pmem"));
  }
  RETURN_IF_ERROR(m->bus_.AddPio(linux_layout::kCom1Port, 8, add(m->serial_.get()), "com1"));
  IoDevice* kbd = add(m->i8042_.get());
  RETURN_IF_ERROR(m->bus_.AddPio(0x60, 1, kbd, "i8042-data"));
  RETURN_IF_ERROR(m->bus_.AddPio(0x64, 1, kbd, "i8042-command"));
  return m;
}

LinuxMachine::~LinuxMachine() {
  RequestStop();
  if (vcpu_thread_.joinable()) vcpu_thread_.join();
  if (device_thread_.joinable()) device_thread_.join();
}

Status LinuxMachine::PrepareBoot(const Kvm& kvm, GuestMemoryView mem, const LinuxBootInfo& info) {
  std::vector<kvm_cpuid_entry2> cpuid = kvm.info().supported_cpuid;
  for (kvm_cpuid_entry2& e : cpuid) {
    if (e.function == 1) {
      // Initial APIC id 0, one logical processor: the one vCPU we create.
      e.ebx = (e.ebx & 0x0000ffffu) | (1u << 16);
      // The hypervisor bit: without it Linux never looks at the KVM leaves
      // (0x40000000), so no kvmclock, and with no PIT/HPET reference it
      // cannot calibrate the TSC and stalls early in boot.
      e.ecx |= 1u << 31;
    } else if (e.function == 0xb || e.function == 0x1f) {
      e.edx = 0;  // x2APIC id
    }
  }
  cpuid_ = std::move(cpuid);
  RETURN_IF_ERROR(vcpu_.SetCpuid(cpuid_));
  RETURN_IF_ERROR(vcpu_.SetupLapicVirtualWire());
  RETURN_IF_ERROR(vm_.MaskLegacyPic());
  return SetupLinuxVcpu(vcpu_, mem, info);
}

Status LinuxMachine::Restore(const TemplateState& state) {
  if (state.vcpus.size() != 1) return Error("linux templates have exactly one vCPU");
  RETURN_IF_ERROR(vcpu_.RestoreState(state.vcpus[0]));
  RETURN_IF_ERROR(vm_.RestoreState(state.vm));
  if (!state.vsock.has_value()) return Error("template has no vsock device state");
  std::lock_guard<std::mutex> lock(mu_);
  if (state.linux_guest.serial.has_value()) {
    ASSIGN_OR_RETURN(SerialState serial, DecodeSerialState(*state.linux_guest.serial));
    Status restored = serial_->Restore(serial);
    if (!restored.ok()) return restored.error().Context("serial state");
  }
  const auto& pmem_state = state.linux_guest.pmem;
  if (pmem_state.has_value() != (pmem_ != nullptr))
    return Error(pmem_state.has_value() ? "the template has a pmem rootfs, the clone none"
                                        : "the clone has a pmem rootfs, the template none");
  if (pmem_) {
    Status restored = pmem_->Restore(*pmem_state);
    if (!restored.ok()) return restored.error().Context("pmem state");
  }
  // Drops the template's connections and queues TRANSPORT_RESET, delivered
  // with an interrupt as soon as the guest runs.
  return vsock_->Restore(*state.vsock);
}

void LinuxMachine::SetExtraFd(int fd, std::function<bool()> on_readable) {
  extra_fd_ = fd;
  on_extra_ = std::move(on_readable);
}

Status LinuxMachine::Start() {
  started_ns_ = MonotonicNs();
  ASSIGN_OR_RETURN(vcpu_thread_, VmmThread::Start([this] { VcpuThread(); }));
  auto device = VmmThread::Start([this] { DeviceThread(); });
  if (!device.ok()) {
    RequestStop();
    vcpu_thread_.join();
    return device.error().Context("device thread");
  }
  device_thread_ = std::move(*device);
  return Status::Ok();
}

void LinuxMachine::RequestStop() {
  stop_ = true;
  if (vcpu_.run() != nullptr) vcpu_.run()->immediate_exit = 1;
  if (vcpu_thread_.joinable()) ::pthread_kill(vcpu_thread_.native_handle(), kKickSignal);
  const uint64_t one = 1;
  if (wake_.valid()) (void)!::write(wake_.get(), &one, sizeof one);
}

void LinuxMachine::PulseGsi(uint32_t gsi) {
  Status s = vm_.SetIrqLine(gsi, true);
  if (s.ok()) s = vm_.SetIrqLine(gsi, false);
  if (!s.ok()) Fail(s.error());
}

void LinuxMachine::Fail(Error e) {
  {
    std::lock_guard<std::mutex> lock(fail_mu_);
    if (!failure_) failure_ = std::move(e);
  }
  RequestStop();
}

void LinuxMachine::VcpuThread() {
  vcpu_result_ = RunVcpu(vcpu_, bus_, &stop_);
  // However the vCPU ended, the device thread ends with it.
  stop_ = true;
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void LinuxMachine::DeviceThread() {
  // Signals meant for the vCPU thread (or the process) are not ours.
  sigset_t set;
  sigfillset(&set);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::vector<pollfd> fds;
  while (!stop_) {
    fds.clear();
    fds.push_back({wake_.get(), POLLIN, 0});
    fds.push_back({vsock_->poll_fd(), POLLIN, 0});
    if (extra_fd_ >= 0) fds.push_back({extra_fd_, POLLIN, 0});
    const size_t console_first = fds.size();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : console_->PollFds()) fds.push_back({fd, POLLIN, 0});
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail(Error::Sys("poll in the device thread"));
      return;
    }
    if (stop_) return;
    if (fds[1].revents != 0) {
      std::lock_guard<std::mutex> lock(mu_);
      Status s = vsock_->ProcessHostEvents();
      if (!s.ok()) {
        Fail(s.error().Context("vsock"));
        return;
      }
    }
    if (extra_fd_ >= 0 && fds[2].revents != 0 && on_extra_()) {
      RequestStop();
      return;
    }
    for (size_t i = console_first; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      console_->OnReadable(fds[i].fd, [this](std::span<const uint8_t> in) {
        return serial_->EnqueueInput(in);
      });
    }
    if (fds[0].revents != 0) {
      uint64_t v;
      (void)!::read(wake_.get(), &v, sizeof v);
    }
  }
}

Result<LinuxStop> LinuxMachine::Join() {
  if (vcpu_thread_.joinable()) vcpu_thread_.join();
  RequestStop();  // the device thread, if the vCPU ended on its own
  if (device_thread_.joinable()) device_thread_.join();
  vcpu_.run()->immediate_exit = 0;
  {
    std::lock_guard<std::mutex> lock(fail_mu_);
    if (failure_) return *failure_;
  }
  if (!vcpu_result_.ok()) return vcpu_result_.error();
  if (reset_.load()) return LinuxStop::kReset;
  if (*vcpu_result_ == StopReason::kShutdown) return LinuxStop::kShutdown;
  return LinuxStop::kRequested;
}

Status LinuxMachine::Capture(TemplateState* state) {
  RETURN_IF_ERROR(vcpu_.CompletePendingExit());
  ASSIGN_OR_RETURN(auto msrs, vcpu_.ProbeSavableMsrs());
  ASSIGN_OR_RETURN(VcpuState vs, vcpu_.CaptureState(msrs, cpuid_));
  state->vcpus.clear();
  state->vcpus.push_back(std::move(vs));
  ASSIGN_OR_RETURN(state->vm, vm_.CaptureState());
  std::lock_guard<std::mutex> lock(mu_);
  state->vsock = vsock_->Save();
  if (pmem_) state->linux_guest.pmem = pmem_->Save();
  state->linux_guest.serial = EncodeSerialState(serial_->Save());
  return Status::Ok();
}

}  // namespace kf
