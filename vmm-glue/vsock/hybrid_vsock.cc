#include "vmm-glue/vsock/hybrid_vsock.h"

#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/vsock/unix_muxer.h"
#include "vmm-glue/vsock/vsock_device.h"

namespace kf::vsock {

namespace pb = katafactory::snapshot::v1;

namespace {

// CIDs 0-2 are the hypervisor, local and host; 2^32-1 is VMADDR_CID_ANY.
Status ValidateCid(uint64_t cid) {
  if (cid <= kHostCid || cid >= 0xffffffffull) {
    return Error("vsock: guest CID " + std::to_string(cid) + " is not in [3, 2^32-2]");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<HybridVsock>> HybridVsock::Create(GuestMemoryView mem, uint64_t mmio_base,
                                                         HybridVsockOptions options) {
  RETURN_IF_ERROR(ValidateCid(options.guest_cid));
  if (mmio_base + kMmioWindowSize < mmio_base) {
    return Error("vsock: MMIO window at " + std::to_string(mmio_base) + " wraps");
  }
  std::unique_ptr<HybridVsock> v(new HybridVsock());
  v->mem_ = mem;
  ASSIGN_OR_RETURN(v->muxer_, UnixMuxer::Create(options.uds_path));
  v->device_ = std::make_unique<VsockDevice>(options.guest_cid, v->muxer_.get());
  v->device_->set_poll_mode(options.poll_on_wait);
  v->device_->set_hold_rx_until_reset_ack(options.hold_rx_until_reset_ack);
  v->transport_ =
      std::make_unique<virtio::MmioTransport>(mem, mmio_base, v->device_.get(), "virtio-vsock");
  return v;
}

HybridVsock::~HybridVsock() = default;

IoDevice* HybridVsock::mmio() { return transport_.get(); }

int HybridVsock::poll_fd() const { return muxer_->epoll_fd(); }

Status HybridVsock::ProcessHostEvents() {
  RETURN_IF_ERROR(muxer_->ProcessEvents());
  device_->ProcessRx();
  return Status::Ok();
}

void HybridVsock::PollGuestQueues() { device_->PollQueues(); }

Status HybridVsock::AddClient(UniqueFd connected_stream_socket) {
  return muxer_->AddClient(std::move(connected_stream_socket));
}

bool HybridVsock::TakeGuestWork() { return transport_->TakeGuestWork(); }

bool HybridVsock::needs_reset() const { return transport_->needs_reset(); }

bool HybridVsock::transport_reset_pending() const { return device_->transport_reset_pending(); }

HybridVsock::Counters HybridVsock::counters() const {
  const VsockDevice::Counters& d = device_->counters();
  return Counters{d.bad_chains, d.bad_packets, d.rx_packets, d.tx_packets,
                  muxer_->connections_opened(), muxer_->connections_reset()};
}

pb::VsockDeviceState HybridVsock::Save() const {
  pb::VsockDeviceState s;
  s.set_guest_cid(device_->guest_cid());
  *s.mutable_transport() = transport_->Save();
  muxer_->SaveConnections(&s);
  return s;
}

Status HybridVsock::Restore(const pb::VsockDeviceState& state) {
  // Everything is checked before anything changes.
  RETURN_IF_ERROR(ValidateCid(state.guest_cid()));
  if (!state.has_transport()) return Error("vsock state: no transport state");
  RETURN_IF_ERROR(transport_->ValidateState(state.transport()));
  if (static_cast<size_t>(state.connections_size()) > kMaxConnections) {
    return Error("vsock state: " + std::to_string(state.connections_size()) +
                 " connections, more than " + std::to_string(kMaxConnections));
  }
  if (state.next_host_port() != 0 && state.next_host_port() < kFirstHostPort) {
    return Error("vsock state: next host port " + std::to_string(state.next_host_port()) +
                 " below 2^30");
  }

  device_->set_guest_cid(state.guest_cid());
  if (state.next_host_port() != 0) muxer_->set_next_host_port(state.next_host_port());
  // Resets the device (which drops the connections the guest knew) and,
  // if the driver was OK, re-activates it on the saved queues.
  transport_->Restore(state.transport());
  if (transport_->active()) device_->QueueTransportReset();
  return Status::Ok();
}

}  // namespace kf::vsock
