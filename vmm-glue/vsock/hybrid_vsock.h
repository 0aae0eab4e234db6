// The agent channel's device as the sandbox VMM sees it: a virtio-vsock
// device behind a virtio-mmio window, whose host side is hybrid vsock over
// Unix sockets (docs/AGENT_CHANNEL.md).
//
//   auto vsock = HybridVsock::Create(mem, 0xd0000000, {.uds_path = run + "/agent.sock"});
//   bus.AddMmio(0xd0000000, kMmioWindowSize, (*vsock)->mmio(), "virtio-vsock");
//   poll(...(*vsock)->poll_fd()...);  then ProcessHostEvents();
//   WAIT port: return TakeGuestWork() ? 1 : 0 (after ProcessHostEvents).
//
// Single-threaded: every call comes from the VMM's one thread, while the
// guest is not running.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "proto/vsock_state.pb.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::virtio {
class MmioTransport;
}

namespace kf::vsock {

class UnixMuxer;
class VsockDevice;

inline constexpr uint64_t kMmioWindowSize = 0x1000;

struct HybridVsockOptions {
  uint64_t guest_cid = 3;
  // agent.sock: bound and listening by Create(), unlinked by the destructor.
  // Empty: no host listener (clients may still be added with AddClient), and
  // guest-initiated connections are refused.
  std::string uds_path;
  // The guest idles on a wait port and the VMM calls PollGuestQueues() each
  // time it does: the device sets VRING_USED_F_NO_NOTIFY and the driver's
  // notifies (MMIO exits) become unnecessary. For the bare guest.
  bool poll_on_wait = false;
  // Linux guests: after a restore, host connections reach the guest only
  // once it has acknowledged TRANSPORT_RESET (VsockDevice::
  // set_hold_rx_until_reset_ack).
  bool hold_rx_until_reset_ack = false;
};

class HybridVsock {
 public:
  static Result<std::unique_ptr<HybridVsock>> Create(GuestMemoryView mem, uint64_t mmio_base,
                                                     HybridVsockOptions options);
  ~HybridVsock();  // closes every socket, unlinks uds_path

  // Register with IoBus::AddMmio(mmio_base, kMmioWindowSize, mmio(), ...).
  IoDevice* mmio();
  // An epoll fd, readable when host sockets have events.
  int poll_fd() const;
  // Non-blocking: accepts clients, parses CONNECT lines, moves client bytes
  // into rx buffers as guest credit allows, flushes queued client writes.
  // Errors only for VMM-fatal conditions; a bad client is just closed.
  Status ProcessHostEvents();
  // poll_on_wait: the guest stopped to wait; take what it queued (tx,
  // buffers) as if it had notified every queue.
  void PollGuestQueues();
  // As if `connected_stream_socket` had been accepted on uds_path.
  Status AddClient(UniqueFd connected_stream_socket);
  // True if, since the last call, the device put anything in a used ring
  // (or needs a reset); clears the flag.
  bool TakeGuestWork();
  // DEVICE_NEEDS_RESET after hostile input.
  bool needs_reset() const;

  struct Counters {
    uint64_t bad_chains, bad_packets, rx_packets, tx_packets, connections_opened,
        connections_reset;
  };
  Counters counters() const;

  // Transport registers, queue configuration and indices, features, status,
  // guest CID, the connection table (informational: see Restore).
  katafactory::snapshot::v1::VsockDeviceState Save() const;
  // Validates `state` (CID, status bits and their order, features, queue
  // sizes and ring placement in guest memory) and refuses a bad one with an
  // Error, changing nothing. Then every connection the guest knew is dropped
  // (their host ends belonged to another process: the saved table is not
  // revived) and, whenever the restored driver is OK,
  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET is queued - always, whether or not
  // the template had connections (as Firecracker does) - and delivered as
  // soon as an event buffer is available. Guest memory must already hold
  // the template's contents.
  Status Restore(const katafactory::snapshot::v1::VsockDeviceState& state);

  // For tests and diagnostics.
  virtio::MmioTransport& transport() { return *transport_; }
  UnixMuxer& muxer() { return *muxer_; }
  bool transport_reset_pending() const;

 private:
  HybridVsock() = default;

  GuestMemoryView mem_;
  std::unique_ptr<UnixMuxer> muxer_;
  std::unique_ptr<VsockDevice> device_;
  std::unique_ptr<virtio::MmioTransport> transport_;
};

}  // namespace kf::vsock
