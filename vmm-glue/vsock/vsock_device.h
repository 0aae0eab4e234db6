// The virtio-vsock device (virtio 1.x 5.10): queues rx=0, tx=1, event=2,
// the guest_cid config field, and the checks every guest packet passes
// before a backend sees it. Where the bytes go (Unix sockets) is the
// backend's business (unix_muxer.h).
//
// Tx packets: the chain holds a 44-byte header (possibly split across
// descriptors) and exactly hdr.len <= kMaxPayload payload bytes. A packet
// with a wrong source or destination CID or a bad length is dropped and
// counted (and its connection, if any, reset); a type other than STREAM is
// answered with RST.
//
// Hostile rings: a broken ring (see virtqueue.h) sets DEVICE_NEEDS_RESET and
// the device stops touching guest memory until the driver resets it; a bad
// chain is returned with used len 0 and counted.
#pragma once

#include <cstdint>
#include <span>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/virtio/virtio_device.h"
#include "vmm-glue/vsock/packet.h"

namespace kf::vsock {

inline constexpr uint16_t kQueueMaxSize = 256;
inline constexpr uint32_t kRxQueue = 0, kTxQueue = 1, kEventQueue = 2;

// The other end of the device.
class VsockBackend {
 public:
  virtual ~VsockBackend() = default;
  // A validated STREAM packet from the guest; its payload is the chain's
  // readable bytes after the header.
  virtual void OnGuestPacket(const PacketHeader& h, GuestMemoryView mem,
                             const virtio::DescChain& chain) = 0;
  // A packet refused as a whole: reset its connection, or answer RST.
  virtual void RejectPacket(const PacketHeader& h) = 0;
  // Whether FillRx may have a packet.
  virtual bool HasRx() const = 0;
  // Writes one packet into `chain` (>= kHeaderSize writable bytes); returns
  // the bytes written, 0 if there was nothing after all.
  virtual uint32_t FillRx(GuestMemoryView mem, const virtio::DescChain& chain,
                          uint64_t guest_cid) = 0;
  // The device was reset: every connection the guest knew is gone.
  virtual void OnDeviceReset() = 0;
};

class VsockDevice final : public virtio::VirtioDevice {
 public:
  VsockDevice(uint64_t guest_cid, VsockBackend* backend)
      : guest_cid_(guest_cid), backend_(backend) {}

  uint64_t guest_cid() const { return guest_cid_; }
  void set_guest_cid(uint64_t cid) { guest_cid_ = cid; }

  // VirtioDevice.
  uint32_t device_id() const override;
  uint64_t device_features() const override;
  size_t num_queues() const override { return 3; }
  uint16_t queue_max_size() const override { return kQueueMaxSize; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  void Activate(virtio::VirtioTransport* transport) override;
  void QueueNotify(uint32_t index) override;
  void Reset() override;

  // Moves whatever the backend has into rx buffers (called after host
  // socket events; notifies do it themselves).
  void ProcessRx();
  // Polling mode: the VMM calls PollQueues() whenever the guest stops to
  // wait, so the driver need not notify; every queue's used ring then
  // carries VRING_USED_F_NO_NOTIFY (set on activation), which saves the
  // guest an MMIO exit per notify. Off by default (drivers that never wait
  // on a port, e.g. Linux, must notify).
  void set_poll_mode(bool on) { poll_mode_ = on; }
  // After delivering TRANSPORT_RESET, hold rx until the driver notifies the
  // event queue again. Linux handles the event in one work item and rx in
  // another, so a REQUEST delivered right behind the event can be accepted
  // first and then reset with the stale sockets, leaving the host end
  // waiting forever. Linux refills and kicks the event queue only after it
  // has handled the event: that kick is the acknowledgement.
  void set_hold_rx_until_reset_ack(bool on) { hold_rx_until_reset_ack_ = on; }
  bool awaiting_reset_ack() const { return awaiting_reset_ack_; }
  // Processes tx, events and rx as if each queue had been notified.
  void PollQueues();
  // Queues VIRTIO_VSOCK_EVENT_TRANSPORT_RESET; it goes out as soon as the
  // driver is OK and an event buffer is posted, and rx waits until it has.
  void QueueTransportReset();
  bool transport_reset_pending() const { return reset_event_pending_; }

  struct Counters {
    uint64_t bad_chains = 0;
    uint64_t bad_packets = 0;
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  bool active() const;
  void ProcessTx();
  void HandleTxPacket(const virtio::DescChain& chain);
  void DeliverEvents();
  void BadChain(virtio::Virtqueue& q, uint16_t head, const std::string& why);
  void BadPacket(const std::string& why);
  void SignalIfUsed(virtio::Virtqueue& q);

  uint64_t guest_cid_;
  VsockBackend* backend_;
  virtio::VirtioTransport* transport_ = nullptr;  // while active
  bool reset_event_pending_ = false;
  bool poll_mode_ = false;
  bool hold_rx_until_reset_ack_ = false;
  bool awaiting_reset_ack_ = false;
  virtio::DescChain chain_;  // scratch, kept for its capacity
  Counters counters_;
};

}  // namespace kf::vsock
