#include "vmm-glue/vsock/vsock_device.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include <cstring>
#include <string>

namespace kf::vsock {

using virtio::ChainDirection;
using virtio::PopStatus;
using virtio::Virtqueue;

uint32_t VsockDevice::device_id() const { return VIRTIO_ID_VSOCK; }

// VERSION_1 only: no indirect descriptors, no event idx, no SEQPACKET.
uint64_t VsockDevice::device_features() const { return uint64_t{1} << VIRTIO_F_VERSION_1; }

void VsockDevice::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  virtio_vsock_config config{guest_cid_};  // little endian, as the host
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = at < sizeof config ? reinterpret_cast<const uint8_t*>(&config)[at] : 0;
  }
}

bool VsockDevice::active() const { return transport_ != nullptr && transport_->active(); }

void VsockDevice::Activate(virtio::VirtioTransport* transport) {
  transport_ = transport;
  if (poll_mode_) {
    for (uint32_t i = 0; i < num_queues(); ++i)
      transport_->queue(i).SetUsedFlags(transport_->memory(), virtio::kUsedFlagNoNotify);
  }
  DeliverEvents();
  ProcessRx();  // host connections may have queued before the driver was ready
}

void VsockDevice::Reset() {
  transport_ = nullptr;
  reset_event_pending_ = false;
  awaiting_reset_ack_ = false;
  backend_->OnDeviceReset();
}

void VsockDevice::QueueNotify(uint32_t index) {
  switch (index) {
    case kRxQueue: ProcessRx(); break;
    case kTxQueue: ProcessTx(); break;
    case kEventQueue:
      if (awaiting_reset_ack_ && !reset_event_pending_) {
        awaiting_reset_ack_ = false;
        ProcessRx();  // what waited behind the event
      }
      DeliverEvents();
      break;
    default: break;
  }
}

void VsockDevice::PollQueues() {
  if (!active()) return;
  ProcessTx();  // also moves rx
  DeliverEvents();
}

void VsockDevice::BadChain(Virtqueue& q, uint16_t head, const std::string& why) {
  ++counters_.bad_chains;
  transport_->NoteBadInput(why);
  q.PushUsed(transport_->memory(), head, 0);  // dropped, but the driver gets it back
}

void VsockDevice::BadPacket(const std::string& why) {
  ++counters_.bad_packets;
  transport_->NoteBadInput(why);
}

void VsockDevice::SignalIfUsed(Virtqueue& q) {
  if (q.TakeUsedFlag()) transport_->SignalUsed();
}

void VsockDevice::ProcessTx() {
  if (!active()) return;
  Virtqueue& q = transport_->queue(kTxQueue);
  const GuestMemoryView mem = transport_->memory();
  std::string why;
  // At most queue-size chains: Pop refuses an avail idx further ahead.
  while (active()) {
    const PopStatus st = q.Pop(mem, ChainDirection::kDeviceReadable, &chain_, &why);
    if (st == PopStatus::kEmpty) break;
    if (st == PopStatus::kBroken) {
      transport_->DeviceNeedsReset("tx queue: " + why);
      break;
    }
    if (st == PopStatus::kBadChain) {
      BadChain(q, chain_.head, "tx queue: " + why);
      continue;
    }
    HandleTxPacket(chain_);
    q.PushUsed(mem, chain_.head, 0);  // the device wrote nothing
  }
  SignalIfUsed(q);
  ProcessRx();  // replies (RESPONSE, RST, credit) and data the new credit allows
}

void VsockDevice::HandleTxPacket(const virtio::DescChain& chain) {
  const GuestMemoryView mem = transport_->memory();
  uint8_t raw[kHeaderSize];
  if (chain.CopyFrom(mem, 0, raw) != kHeaderSize) {
    BadPacket("tx packet of " + std::to_string(chain.readable_len) + " bytes, shorter than its header");
    return;
  }
  const PacketHeader h = DecodeHeader(raw);
  if (h.src_cid != guest_cid_ || h.dst_cid != kHostCid) {
    BadPacket("tx packet from cid " + std::to_string(h.src_cid) + " to cid " +
              std::to_string(h.dst_cid) + " (expected " + std::to_string(guest_cid_) + " to 2)");
    return;
  }
  const uint64_t payload = chain.readable_len - kHeaderSize;
  if (h.len > kMaxPayload || h.len != payload ||
      (h.len != 0 && h.op != VIRTIO_VSOCK_OP_RW)) {
    BadPacket("tx packet " + std::string(OpName(h.op)) + " with len " + std::to_string(h.len) +
              " and " + std::to_string(payload) + " payload bytes");
    backend_->RejectPacket(h);
    return;
  }
  ++counters_.tx_packets;
  if (h.type != VIRTIO_VSOCK_TYPE_STREAM) {
    backend_->RejectPacket(h);  // RST: only streams here
    return;
  }
  backend_->OnGuestPacket(h, mem, chain);
}

void VsockDevice::ProcessRx() {
  // After a restore the guest first hears TRANSPORT_RESET, then anything
  // new; otherwise it could take a fresh REQUEST for a stale one and reset it.
  if (!active() || reset_event_pending_ || awaiting_reset_ack_) return;
  Virtqueue& q = transport_->queue(kRxQueue);
  const GuestMemoryView mem = transport_->memory();
  std::string why;
  while (active() && backend_->HasRx()) {
    const PopStatus st = q.Pop(mem, ChainDirection::kDeviceWritable, &chain_, &why);
    if (st == PopStatus::kEmpty) break;
    if (st == PopStatus::kBroken) {
      transport_->DeviceNeedsReset("rx queue: " + why);
      break;
    }
    if (st == PopStatus::kBadChain) {
      BadChain(q, chain_.head, "rx queue: " + why);
      continue;
    }
    if (chain_.writable_len < kHeaderSize) {
      BadChain(q, chain_.head, "rx buffer of " + std::to_string(chain_.writable_len) +
                                   " bytes, smaller than a packet header");
      continue;
    }
    const uint32_t n = backend_->FillRx(mem, chain_, guest_cid_);
    if (n == 0) {
      q.UndoPop();  // nothing to say after all; the buffer stays the driver's
      break;
    }
    q.PushUsed(mem, chain_.head, n);
    ++counters_.rx_packets;
  }
  SignalIfUsed(q);
}

void VsockDevice::QueueTransportReset() {
  reset_event_pending_ = true;
  DeliverEvents();
}

void VsockDevice::DeliverEvents() {
  if (!active() || !reset_event_pending_) return;
  Virtqueue& q = transport_->queue(kEventQueue);
  const GuestMemoryView mem = transport_->memory();
  std::string why;
  while (active() && reset_event_pending_) {
    const PopStatus st = q.Pop(mem, ChainDirection::kDeviceWritable, &chain_, &why);
    if (st == PopStatus::kEmpty) break;
    if (st == PopStatus::kBroken) {
      transport_->DeviceNeedsReset("event queue: " + why);
      break;
    }
    if (st == PopStatus::kBadChain || chain_.writable_len < sizeof(virtio_vsock_event)) {
      BadChain(q, chain_.head, st == PopStatus::kBadChain ? "event queue: " + why
                                                           : std::string("event buffer too small"));
      continue;
    }
    virtio_vsock_event event{VIRTIO_VSOCK_EVENT_TRANSPORT_RESET};
    chain_.CopyTo(mem, 0, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&event), sizeof event));
    q.PushUsed(mem, chain_.head, sizeof event);
    reset_event_pending_ = false;
    awaiting_reset_ack_ = hold_rx_until_reset_ack_;
  }
  SignalIfUsed(q);
  if (!reset_event_pending_) ProcessRx();  // what waited behind the event
}

}  // namespace kf::vsock
