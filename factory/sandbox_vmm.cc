#include "factory/sandbox_vmm.h"

#include <sys/socket.h>

#include <cstddef>
#include <cstdio>
#include <cstring>

#include "factory/clock.h"
#include "memshare/guest_backing.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/run_loop.h"
#include "vmm-glue/vm.h"

namespace kf {

namespace {

// The agent's paravirtual ports in a running clone. Requests come from the
// control socket only while the guest waits on KF_PORT_WAIT, so one thread
// serves both the vCPU and the socket, and an idle clone sleeps in recv().
class SandboxAgentPort : public IoDevice {
 public:
  SandboxAgentPort(GuestMemoryView mem, int control_fd, SandboxTimings* timings)
      : mb_(mem.As<kf_mailbox>(KF_BARE_MAILBOX_GPA)), control_fd_(control_fd),
        timings_(timings) {}

  const Error* failure() const { return failed_ ? &failure_ : nullptr; }

  IoAction Read(uint64_t port, std::span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
    if (port != KF_PORT_WAIT || data.size() != 4) return IoAction::kContinue;
    if (timings_->first_wait_ns == 0) timings_->first_wait_ns = MonotonicNs();
    for (;;) {
      SandboxRequest req;
      ssize_t n = ::recv(control_fd_, &req, sizeof req, 0);
      if (n == 0) return IoAction::kStop;  // requester released us
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(Error::Sys("recv on control socket"));
      }
      if (static_cast<size_t>(n) != sizeof req || req.magic != kSandboxMsgMagic ||
          req.len > KF_MAILBOX_DATA_MAX) {
        ReplyError(kVmmStatusBadRequest);
        continue;
      }
      if (req.op == kHostOpTimings) {
        SandboxReply reply;
        reply.len = sizeof(SandboxTimings);
        std::memcpy(reply.data, timings_, sizeof(SandboxTimings));
        Send(reply);
        continue;
      }
      // A guest request: into the mailbox, then wake the guest.
      mb_->op = req.op;
      std::memcpy(mb_->arg, req.arg, sizeof req.arg);
      std::memset(mb_->ret, 0, sizeof mb_->ret);
      mb_->len = req.len;
      std::memcpy(mb_->data, req.data, req.len);
      mb_->seq = ++seq_;
      uint32_t one = 1;
      std::memcpy(data.data(), &one, 4);
      return IoAction::kContinue;
    }
  }

  IoAction Write(uint64_t port, std::span<const uint8_t> data) override {
    if (port != KF_PORT_SIGNAL || data.size() != 4) return IoAction::kContinue;
    uint32_t signal;
    std::memcpy(&signal, data.data(), 4);
    if (signal == KF_SIGNAL_PANIC)
      return Fail(Error("guest panicked (status " + std::to_string(mb_->status) + ")"));
    if (signal != KF_SIGNAL_DONE) return IoAction::kContinue;
    // The answer is guest-written: copy it out once, then check it.
    SandboxReply reply;
    const uint64_t done_seq = mb_->done_seq;
    const uint32_t len = mb_->len;
    if (done_seq != seq_ || len > KF_MAILBOX_DATA_MAX) {
      ReplyError(kVmmStatusGuestProtocol);
      return IoAction::kContinue;
    }
    reply.status = mb_->status;
    std::memcpy(reply.ret, mb_->ret, sizeof reply.ret);
    reply.len = len;
    std::memcpy(reply.data, mb_->data, len);
    Send(reply);
    return IoAction::kContinue;
  }

 private:
  IoAction Fail(Error e) {
    failed_ = true;
    failure_ = std::move(e);
    return IoAction::kStop;
  }
  void ReplyError(uint32_t status) {
    SandboxReply reply;
    reply.status = status;
    Send(reply);
  }
  void Send(const SandboxReply& reply) {
    // Only the header and the used part of data travel.
    size_t size = offsetof(SandboxReply, data) + reply.len;
    while (::send(control_fd_, &reply, size, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }

  kf_mailbox* mb_;
  int control_fd_;
  SandboxTimings* timings_;
  uint64_t seq_ = 0;
  bool failed_ = false;
  Error failure_;
};

}  // namespace

Status RunSandboxVmm(const Kvm& kvm, const LoadedTemplate& tmpl, int control_fd,
                     const SandboxOptions& options, SandboxTimings timings) {
  const TemplateState& st = tmpl.state;
  PrivateMapOptions map_options;
  map_options.mergeable = options.mergeable;
  ASSIGN_OR_RETURN(Mapping memory, MapPrivate(tmpl.memory.get(), st.mem_size, map_options));
  timings.mapped_ns = MonotonicNs();

  ASSIGN_OR_RETURN(Vm vm, Vm::Create(kvm, st.vm_config));
  RETURN_IF_ERROR(vm.SetMemorySlot(0, 0, st.mem_size, memory.data()));
  if (st.vcpus.size() != 1) return Error("bare templates have exactly one vCPU");
  ASSIGN_OR_RETURN(Vcpu vcpu, vm.CreateVcpu(0));
  timings.vm_created_ns = MonotonicNs();
  RETURN_IF_ERROR(vcpu.RestoreState(st.vcpus[0]));
  RETURN_IF_ERROR(vm.RestoreState(st.vm));
  timings.restored_ns = MonotonicNs();

  GuestMemoryView view(memory.data(), memory.size());
  SandboxAgentPort port(view, control_fd, &timings);
  IoBus bus;
  RETURN_IF_ERROR(bus.AddPio(KF_PORT_SIGNAL, 8, &port, "bare-agent"));
  ASSIGN_OR_RETURN(StopReason why, RunVcpu(vcpu, bus));
  if (port.failure() != nullptr) return *port.failure();
  if (why == StopReason::kShutdown) return Error("guest shut down (triple fault)");
  return Status::Ok();
}

}  // namespace kf
