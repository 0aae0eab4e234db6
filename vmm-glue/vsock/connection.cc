#include "vmm-glue/vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "vmm-glue/vsock/uds_handshake.h"

namespace kf::vsock {
namespace {

constexpr uint32_t kShutdownBoth = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

Connection::Connection(UniqueFd fd, uint32_t host_port, uint32_t guest_port, bool host_initiated)
    : fd_(std::move(fd)),
      host_port_(host_port),
      guest_port_(guest_port),
      host_initiated_(host_initiated),
      phase_(host_initiated ? Phase::kConnecting : Phase::kEstablished) {
  (host_initiated ? request_ : response_) = true;
  readable_ = true;  // bytes may have arrived before epoll saw the socket
}

uint32_t Connection::PeerCredit() const {
  // Wrapping arithmetic as in the spec; a guest whose fwd_cnt runs ahead of
  // what we sent gets no credit rather than a huge one.
  const uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
  return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
}

void Connection::UpdatePeerCredit(const PacketHeader& h) {
  peer_buf_alloc_ = h.buf_alloc;
  peer_fwd_cnt_ = h.fwd_cnt;
  if (PeerCredit() > 0) credit_requested_ = false;
}

void Connection::OnResponse() {
  if (!host_initiated_ || phase_ != Phase::kConnecting || request_) {
    Reset();  // a RESPONSE to nothing we asked
    return;
  }
  phase_ = Phase::kEstablished;
  out_ = FormatConnectReply(host_port_);
  out_off_ = 0;
  uncounted_ = out_.size();
  Flush();
  AfterProgress();
}

void Connection::OnData(GuestMemoryView mem, const virtio::DescChain& chain, uint32_t len) {
  if (rst_ || finished_) return;  // already being torn down
  if (phase_ != Phase::kEstablished || (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND)) {
    Reset();
    return;
  }
  if (len == 0) return;
  const uint32_t buffered = rx_cnt_ - fwd_cnt_;
  if (uint64_t{buffered} + len > kHostBufAlloc) {
    Reset();  // more than the credit we gave
    return;
  }
  rx_cnt_ += len;
  if (client_gone_) return;  // the reset follows; keep the counters honest
  size_t done = 0;
  if (out_off_ == out_.size()) {  // nothing queued: straight from guest memory
    chain.Iovecs(mem, false, kHeaderSize, len, iov_);
    msghdr msg{};
    msg.msg_iov = iov_.data();
    msg.msg_iovlen = iov_.size();
    const ssize_t w = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && !WouldBlock(errno)) {
      StartReset();  // EPIPE, ECONNRESET: the client is gone
      return;
    }
    done = w > 0 ? static_cast<size_t>(w) : 0;
    fwd_cnt_ += static_cast<uint32_t>(done);
  }
  if (done < len) {
    const size_t old = out_.size();
    out_.resize(old + (len - done));
    chain.CopyFrom(mem, kHeaderSize + done,
                   std::span<uint8_t>(reinterpret_cast<uint8_t*>(out_.data()) + old, len - done));
  }
  AfterProgress();
}

void Connection::OnShutdown(uint32_t flags) {
  if (rst_ || finished_) return;
  if (phase_ != Phase::kEstablished) {
    Reset();
    return;
  }
  guest_shutdown_ |= flags & kShutdownBoth;
  Flush();
  AfterProgress();
}

void Connection::Reset() { StartReset(); }

void Connection::StartReset() {
  if (rst_ || finished_) return;
  fd_.Reset();
  out_.clear();
  out_off_ = 0;
  uncounted_ = 0;
  early_.clear();
  readable_ = false;
  if (!guest_knows()) {
    finished_ = true;  // the guest never saw the REQUEST: nothing to tell it
    return;
  }
  rst_ = true;
}

void Connection::OnSocketEvents(uint32_t events) {
  if (rst_ || finished_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLHUP | EPOLLERR)) {
    client_gone_ = true;
    out_.clear();  // nobody will read it
    out_off_ = 0;
    uncounted_ = 0;
  }
  if (phase_ == Phase::kConnecting && client_gone_) {
    StartReset();
    return;
  }
  if (events & EPOLLOUT) Flush();
  AfterProgress();
}

void Connection::Flush() {
  if (!fd_.valid() || client_gone_) return;
  while (out_off_ < out_.size()) {
    const ssize_t w = ::send(fd_.get(), out_.data() + out_off_, out_.size() - out_off_,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (WouldBlock(errno)) break;
      StartReset();
      return;
    }
    const size_t n = static_cast<size_t>(w);
    const size_t ours = std::min(n, uncounted_);
    uncounted_ -= ours;
    fwd_cnt_ += static_cast<uint32_t>(n - ours);
    out_off_ += n;
  }
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > out_.size() / 2) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  if (out_.empty() && (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) && !client_wr_shut_) {
    ::shutdown(fd_.get(), SHUT_WR);  // the client reads EOF
    client_wr_shut_ = true;
  }
}

void Connection::AfterProgress() {
  if (rst_ || finished_) return;
  if (phase_ == Phase::kEstablished && fwd_cnt_ - last_fwd_sent_ >= kHostBufAlloc / 2) {
    credit_update_ = true;  // the guest thinks our buffer is fuller than it is
  }
  const bool guest_done = (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) && out_.empty();
  const bool host_done =
      (host_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) || (guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_RCV);
  if (guest_done && host_done) {
    StartReset();  // nothing can flow either way any more
    return;
  }
  // A client that is gone is reset once the guest has its last bytes (or
  // will never take them).
  if (client_gone_ && (!HostDataWaiting() || host_done)) StartReset();
}

bool Connection::CanSendData() const {
  return phase_ == Phase::kEstablished && !response_ && !rst_ &&
         !(host_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) && !shutdown_to_send_ &&
         !(guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_RCV) && HostDataWaiting() && PeerCredit() > 0;
}

bool Connection::WantsRx() const {
  if (finished_) return false;
  if (rst_ || request_ || response_) return true;
  if (phase_ != Phase::kEstablished) return false;
  if (CanSendData() || shutdown_to_send_ || credit_update_) return true;
  return Starved();
}

bool Connection::Starved() const {
  // Data waits and the guest gave no credit: ask once.
  return phase_ == Phase::kEstablished && HostDataWaiting() && PeerCredit() == 0 &&
         !credit_requested_ && !(guest_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_RCV) &&
         !(host_shutdown_ & VIRTIO_VSOCK_SHUTDOWN_SEND) && !shutdown_to_send_;
}

uint32_t Connection::ReadPayload(GuestMemoryView mem, const virtio::DescChain& chain,
                                 uint32_t max) {
  if (!early_.empty()) {
    const size_t n = std::min<size_t>(max, early_.size());
    chain.CopyTo(mem, kHeaderSize,
                 std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(early_.data()), n));
    early_.erase(0, n);
    return static_cast<uint32_t>(n);
  }
  chain.Iovecs(mem, true, kHeaderSize, max, iov_);
  const ssize_t r = ::readv(fd_.get(), iov_.data(), static_cast<int>(iov_.size()));
  if (r > 0) {
    // A short read drained the socket; new bytes bring a new edge.
    if (static_cast<uint32_t>(r) < max) readable_ = false;
    return static_cast<uint32_t>(r);
  }
  if (r < 0 && errno == EINTR) return 0;
  readable_ = false;
  if (r < 0 && !WouldBlock(errno)) {
    StartReset();
  } else if (r == 0) {
    if (client_gone_) {
      StartReset();
    } else {
      shutdown_to_send_ |= VIRTIO_VSOCK_SHUTDOWN_SEND;  // half-close: EOF to the guest
    }
  }
  return 0;
}

uint32_t Connection::FillRx(GuestMemoryView mem, const virtio::DescChain& chain,
                            uint64_t guest_cid) {
  PacketHeader h;
  h.src_cid = kHostCid;
  h.dst_cid = guest_cid;
  h.src_port = host_port_;
  h.dst_port = guest_port_;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.buf_alloc = kHostBufAlloc;
  uint32_t payload = 0;
  if (CanSendData() && !request_) {
    const uint64_t room = chain.writable_len - kHeaderSize;
    const uint32_t max = static_cast<uint32_t>(
        std::min<uint64_t>({room, PeerCredit(), kMaxPayload}));
    if (max > 0) payload = ReadPayload(mem, chain, max);
  }
  if (payload > 0) {
    h.op = VIRTIO_VSOCK_OP_RW;
    h.len = payload;
    tx_cnt_ += payload;
  } else if (rst_) {
    h.op = VIRTIO_VSOCK_OP_RST;
    finished_ = true;
  } else if (request_) {
    h.op = VIRTIO_VSOCK_OP_REQUEST;
    request_ = false;
  } else if (response_) {
    h.op = VIRTIO_VSOCK_OP_RESPONSE;
    response_ = false;
  } else if (shutdown_to_send_) {
    h.op = VIRTIO_VSOCK_OP_SHUTDOWN;
    h.flags = shutdown_to_send_;
    host_shutdown_ |= shutdown_to_send_;
    shutdown_to_send_ = 0;
  } else if (credit_update_) {
    h.op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
  } else if (Starved()) {
    h.op = VIRTIO_VSOCK_OP_CREDIT_REQUEST;
    credit_requested_ = true;
  } else {
    return 0;
  }
  h.fwd_cnt = fwd_cnt_;
  last_fwd_sent_ = fwd_cnt_;
  credit_update_ = false;  // every packet carries our credit
  uint8_t raw[kHeaderSize];
  EncodeHeader(h, raw);
  chain.CopyTo(mem, 0, raw);
  if (h.op == VIRTIO_VSOCK_OP_SHUTDOWN) AfterProgress();
  return static_cast<uint32_t>(kHeaderSize + payload);
}

katafactory::snapshot::v1::VsockConnectionState Connection::Save() const {
  katafactory::snapshot::v1::VsockConnectionState s;
  s.set_host_port(host_port_);
  s.set_guest_port(guest_port_);
  s.set_phase(phase_ == Phase::kConnecting
                  ? katafactory::snapshot::v1::VSOCK_CONNECTION_PHASE_CONNECTING
                  : katafactory::snapshot::v1::VSOCK_CONNECTION_PHASE_ESTABLISHED);
  s.set_host_initiated(host_initiated_);
  s.set_buf_alloc(kHostBufAlloc);
  s.set_fwd_cnt(fwd_cnt_);
  s.set_rx_cnt(rx_cnt_);
  s.set_tx_cnt(tx_cnt_);
  s.set_peer_buf_alloc(peer_buf_alloc_);
  s.set_peer_fwd_cnt(peer_fwd_cnt_);
  s.set_guest_shutdown(guest_shutdown_);
  s.set_host_shutdown(host_shutdown_);
  s.set_buffered_bytes(out_.size() - out_off_);
  return s;
}

}  // namespace kf::vsock
