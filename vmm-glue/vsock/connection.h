// One vsock stream between a host Unix socket (the "client") and a guest
// port: the connection state machine and credit flow control of virtio
// 1.x 5.10.6.3, with the host's socket I/O.
//
// Credit, both ways:
// - guest -> host: the host advertises buf_alloc and fwd_cnt (bytes it has
//   written to the client). The guest may have at most buf_alloc bytes in
//   flight (rx_cnt - fwd_cnt); those that the client does not take at once
//   wait in a buffer that credit therefore bounds. A guest that sends more
//   than its credit is reset.
// - host -> guest: the host never sends more than
//   peer_buf_alloc - (tx_cnt - peer_fwd_cnt); with none left and data
//   waiting it asks once with CREDIT_REQUEST.
//
// Closing: a client that half-closes (read returns 0) makes the host send
// SHUTDOWN(SEND); a client that is gone (EPOLLHUP, EPIPE, a read or write
// error) resets the connection once its last bytes went to the guest. A
// guest SHUTDOWN(SEND) becomes shutdown(SHUT_WR) on the client once the
// buffer is flushed; when neither side can send any more the host sends RST
// and forgets the connection (as Linux does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/vsock_state.pb.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/unique_fd.h"
#include "vmm-glue/virtio/virtqueue.h"
#include "vmm-glue/vsock/packet.h"

namespace kf::vsock {

// The host's receive buffer per connection (what buf_alloc advertises).
inline constexpr uint32_t kHostBufAlloc = 256 * 1024;

class Connection {
 public:
  enum class Phase { kConnecting, kEstablished };

  // Host-initiated (a CONNECT line): REQUEST is queued for the guest.
  // Guest-initiated (a REQUEST that reached a listener): RESPONSE is queued.
  Connection(UniqueFd fd, uint32_t host_port, uint32_t guest_port, bool host_initiated);

  uint32_t host_port() const { return host_port_; }
  uint32_t guest_port() const { return guest_port_; }
  int fd() const { return fd_.get(); }
  // Bytes the client sent after its CONNECT line, delivered before the rest.
  void set_early_bytes(std::string bytes) { early_ = std::move(bytes); }

  // --- packets from the guest (tx queue) ---
  // Every packet of the connection carries the guest's credit.
  void UpdatePeerCredit(const PacketHeader& h);
  void OnResponse();
  // `chain` holds the packet; its payload is `len` bytes after the header.
  void OnData(GuestMemoryView mem, const virtio::DescChain& chain, uint32_t len);
  void OnShutdown(uint32_t flags);
  void OnCreditRequest() { credit_update_ = true; }
  // A protocol violation (or a bad packet): RST the guest, drop the client.
  void Reset();

  // --- the client socket ---
  // EPOLL* bits from the (edge-triggered) epoll.
  void OnSocketEvents(uint32_t events);

  // --- packets to the guest (rx queue) ---
  // Whether FillRx would (most likely) produce a packet now.
  bool WantsRx() const;
  // Writes one packet (header, then payload) into the writable part of
  // `chain`, which holds at least kHeaderSize bytes. Returns the bytes
  // written, 0 when there was nothing to send after all.
  uint32_t FillRx(GuestMemoryView mem, const virtio::DescChain& chain, uint64_t guest_cid);

  // The connection can be forgotten: RST went out (or is not needed).
  bool finished() const { return finished_; }
  // Whether the guest has heard of this connection (a REQUEST went out, or
  // it asked itself); the others survive a device reset.
  bool guest_knows() const { return !(phase_ == Phase::kConnecting && request_); }
  // The guest ended it with RST: nothing more to send.
  void Forget() { finished_ = true; fd_.Reset(); }

  katafactory::snapshot::v1::VsockConnectionState Save() const;

 private:
  uint32_t PeerCredit() const;
  bool CanSendData() const;
  bool Starved() const;
  bool HostDataWaiting() const { return !early_.empty() || readable_; }
  // Reads client bytes into the payload area; may change state on EOF/error.
  uint32_t ReadPayload(GuestMemoryView mem, const virtio::DescChain& chain, uint32_t max);
  void Flush();
  void AfterProgress();
  void StartReset();

  UniqueFd fd_;
  uint32_t host_port_;
  uint32_t guest_port_;
  bool host_initiated_;
  Phase phase_;

  // Credit (wrapping 32-bit counters, as on the wire).
  uint32_t fwd_cnt_ = 0;        // bytes written to the client
  uint32_t rx_cnt_ = 0;         // bytes received from the guest
  uint32_t last_fwd_sent_ = 0;  // fwd_cnt in the last packet to the guest
  uint32_t tx_cnt_ = 0;         // bytes sent to the guest
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;

  uint32_t guest_shutdown_ = 0;  // VIRTIO_VSOCK_SHUTDOWN_* received
  uint32_t host_shutdown_ = 0;   // VIRTIO_VSOCK_SHUTDOWN_* sent
  uint32_t shutdown_to_send_ = 0;
  bool client_wr_shut_ = false;  // shutdown(SHUT_WR) done on the client

  // Packets waiting for an rx buffer.
  bool request_ = false;
  bool response_ = false;
  bool rst_ = false;
  bool credit_update_ = false;
  bool credit_requested_ = false;  // a CREDIT_REQUEST went out, no answer yet

  // Client side.
  bool readable_ = false;    // an edge said so and no read drained it yet
  bool client_gone_ = false; // EPOLLHUP/EPOLLERR: reset after the last bytes
  std::string early_;
  std::string out_;          // guest bytes for the client: out_[out_off_..]
  size_t out_off_ = 0;
  size_t uncounted_ = 0;     // leading bytes of out_ that are ours ("OK n\n")
  bool finished_ = false;
  std::vector<iovec> iov_;   // scratch
};

}  // namespace kf::vsock
