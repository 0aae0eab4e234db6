// UnixMuxer, guest side: packets from the tx queue, packets for the rx
// queue, and the connection table's life cycle.
#include <sys/socket.h>
#include <sys/un.h>

#include "vmm-glue/vsock/unix_muxer.h"

namespace kf::vsock {
namespace {

// Replies to packets without a connection wait here for rx buffers; a guest
// that floods us with such packets loses the excess (it learns nothing new).
constexpr size_t kMaxStrayRsts = 256;

}  // namespace

void UnixMuxer::StartHostConnection(uint64_t token, UniqueFd fd, uint32_t guest_port,
                                    std::string early) {
  // The next free host port for this guest port, counting from 2^30 and
  // wrapping within [2^30, 2^32).
  uint32_t port = next_host_port_;
  while (conns_.count({port, guest_port})) port = port == UINT32_MAX ? kFirstHostPort : port + 1;
  next_host_port_ = port == UINT32_MAX ? kFirstHostPort : port + 1;

  auto conn = std::make_unique<Connection>(std::move(fd), port, guest_port, true);
  conn->set_early_bytes(std::move(early));
  const Key key{port, guest_port};
  conns_.emplace(key, Entry{std::move(conn), token, false});
  token_keys_.emplace(token, key);  // the epoll item keeps its token
  ++opened_;
  Touch(key);
}

void UnixMuxer::ConnectToHost(const PacketHeader& h) {
  if (uds_path_.empty() || at_capacity()) {
    QueueStrayRst(h);
    return;
  }
  const std::string path = uds_path_ + "_" + std::to_string(h.dst_port);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    QueueStrayRst(h);
    return;
  }
  path.copy(addr.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  // A Unix connect() completes or fails at once (EAGAIN: backlog full);
  // every failure is the guest's RST.
  if (!fd.valid() ||
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    QueueStrayRst(h);
    return;
  }
  const uint64_t token = next_token_++;
  if (!Register(fd.get(), token)) {
    QueueStrayRst(h);
    return;
  }
  auto conn = std::make_unique<Connection>(std::move(fd), h.dst_port, h.src_port, false);
  conn->UpdatePeerCredit(h);
  const Key key{h.dst_port, h.src_port};
  conns_.emplace(key, Entry{std::move(conn), token, false});
  token_keys_.emplace(token, key);
  ++opened_;
  Touch(key);
}

void UnixMuxer::OnGuestPacket(const PacketHeader& h, GuestMemoryView mem,
                              const virtio::DescChain& chain) {
  const Key key{h.dst_port, h.src_port};
  auto it = conns_.find(key);
  if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
    if (it == conns_.end()) {
      ConnectToHost(h);
    } else {
      it->second.conn->Reset();  // a second REQUEST on a live connection
      Touch(key);
    }
    return;
  }
  if (it == conns_.end()) {
    if (h.op != VIRTIO_VSOCK_OP_RST) QueueStrayRst(h);
    return;
  }
  Connection& c = *it->second.conn;
  c.UpdatePeerCredit(h);
  switch (h.op) {
    case VIRTIO_VSOCK_OP_RST:
      c.Forget();
      ++reset_;
      Remove(it);
      return;
    case VIRTIO_VSOCK_OP_RESPONSE: c.OnResponse(); break;
    case VIRTIO_VSOCK_OP_RW: c.OnData(mem, chain, h.len); break;
    case VIRTIO_VSOCK_OP_SHUTDOWN: c.OnShutdown(h.flags); break;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE: break;  // the credit was taken above
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST: c.OnCreditRequest(); break;
    default: c.Reset(); break;  // an unknown op
  }
  Touch(key);
}

void UnixMuxer::RejectPacket(const PacketHeader& h) {
  const Key key{h.dst_port, h.src_port};
  if (conns_.count(key)) {
    conns_.at(key).conn->Reset();
    Touch(key);
  } else if (h.op != VIRTIO_VSOCK_OP_RST) {
    QueueStrayRst(h);
  }
}

void UnixMuxer::QueueStrayRst(const PacketHeader& h) {
  if (stray_rsts_.size() < kMaxStrayRsts) {
    stray_rsts_.push_back(StrayRst{h.dst_port, h.src_port, h.type});
  }
}

void UnixMuxer::Touch(const Key& key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  Entry& e = it->second;
  if (e.conn->finished()) {
    Remove(it);
  } else if (!e.in_rx_list && e.conn->WantsRx()) {
    e.in_rx_list = true;
    rx_list_.push_back(key);
  }
}

void UnixMuxer::Remove(std::map<Key, Entry>::iterator it) {
  // Closing the socket takes it out of the epoll; a stale rx_list_ entry
  // finds nothing under its key.
  token_keys_.erase(it->second.token);
  conns_.erase(it);
}

uint32_t UnixMuxer::FillRx(GuestMemoryView mem, const virtio::DescChain& chain,
                           uint64_t guest_cid) {
  if (!stray_rsts_.empty()) {
    const StrayRst r = stray_rsts_.front();
    stray_rsts_.pop_front();
    PacketHeader h;
    h.src_cid = kHostCid;
    h.dst_cid = guest_cid;
    h.src_port = r.host_port;
    h.dst_port = r.guest_port;
    h.type = r.type;
    h.op = VIRTIO_VSOCK_OP_RST;
    uint8_t raw[kHeaderSize];
    EncodeHeader(h, raw);
    chain.CopyTo(mem, 0, raw);
    return kHeaderSize;
  }
  // One pass at most: a connection that had nothing after all (its socket
  // was drained, the buffer holds no payload) goes to the back for later.
  for (size_t pass = rx_list_.size(); pass > 0 && !rx_list_.empty(); --pass) {
    const Key key = rx_list_.front();
    rx_list_.pop_front();
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    Entry& e = it->second;
    e.in_rx_list = false;
    const uint32_t n = e.conn->FillRx(mem, chain, guest_cid);
    if (e.conn->finished()) {
      if (n > 0) ++reset_;  // that packet was its RST
      Remove(it);
    } else if (e.conn->WantsRx()) {
      e.in_rx_list = true;
      rx_list_.push_back(key);  // round robin
    }
    if (n > 0) return n;
  }
  return 0;
}

void UnixMuxer::OnDeviceReset() {
  stray_rsts_.clear();
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.conn->guest_knows()) {
      auto gone = it++;
      Remove(gone);
    } else {
      ++it;
    }
  }
}

void UnixMuxer::SaveConnections(katafactory::snapshot::v1::VsockDeviceState* state) const {
  for (const auto& [key, e] : conns_) *state->add_connections() = e.conn->Save();
  state->set_next_host_port(next_host_port_);
}

}  // namespace kf::vsock
