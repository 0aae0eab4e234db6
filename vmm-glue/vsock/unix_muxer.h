// The hybrid-vsock backend (as Firecracker's): guest vsock streams carried
// over host Unix sockets.
//
// - Host-initiated: a client of `uds_path` writes `CONNECT <port>\n`
//   (uds_handshake.h); the muxer picks a host port (counting from 2^30),
//   sends REQUEST, and on RESPONSE the client reads `OK <host-port>\n`.
// - Guest-initiated: a REQUEST to host port P becomes a non-blocking
//   connect() to `<uds_path>_<P>`; success answers RESPONSE, failure RST.
//
// Connections are keyed by (host port, guest port). Client sockets are
// non-blocking, in one edge-triggered epoll (the listener is
// level-triggered); each epoll item carries a token that is never reused, so
// a late event for a closed socket cannot reach a newer one.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "proto/vsock_state.pb.h"
#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"
#include "vmm-glue/vsock/connection.h"
#include "vmm-glue/vsock/uds_handshake.h"
#include "vmm-glue/vsock/vsock_device.h"

namespace kf::vsock {

// Clients plus connections at once: keeps the VMM clear of fd exhaustion.
inline constexpr size_t kMaxConnections = 1024;
inline constexpr uint32_t kFirstHostPort = 1u << 30;

class UnixMuxer final : public VsockBackend {
 public:
  // Binds and listens on `uds_path` unless it is empty. A stale socket file
  // there is replaced; any other file is an error.
  static Result<std::unique_ptr<UnixMuxer>> Create(std::string uds_path);
  ~UnixMuxer() override;  // closes every socket, unlinks uds_path

  int epoll_fd() const { return epoll_.get(); }
  // Handles one round of ready sockets without blocking. Errors only for
  // what the VMM cannot go on without (the epoll itself failing).
  Status ProcessEvents();
  // A connected stream socket, treated as if accepted on uds_path.
  Status AddClient(UniqueFd fd);

  // VsockBackend.
  void OnGuestPacket(const PacketHeader& h, GuestMemoryView mem,
                     const virtio::DescChain& chain) override;
  void RejectPacket(const PacketHeader& h) override;
  bool HasRx() const override { return !stray_rsts_.empty() || !rx_list_.empty(); }
  uint32_t FillRx(GuestMemoryView mem, const virtio::DescChain& chain,
                  uint64_t guest_cid) override;
  void OnDeviceReset() override;

  size_t connection_count() const { return conns_.size(); }
  size_t client_count() const { return clients_.size(); }
  uint64_t connections_opened() const { return opened_; }
  uint64_t connections_reset() const { return reset_; }
  uint32_t next_host_port() const { return next_host_port_; }
  void set_next_host_port(uint32_t port) { next_host_port_ = port; }
  void SaveConnections(katafactory::snapshot::v1::VsockDeviceState* state) const;

 private:
  using Key = std::pair<uint32_t, uint32_t>;  // (host port, guest port)
  struct Entry {
    std::unique_ptr<Connection> conn;
    uint64_t token = 0;
    bool in_rx_list = false;
  };
  struct Client {  // a socket still sending its CONNECT line
    UniqueFd fd;
    ConnectLineParser parser;
  };

  UnixMuxer() = default;
  Status AcceptAll();
  void OnClientEvent(uint64_t token, uint32_t events);
  void StartHostConnection(uint64_t token, UniqueFd fd, uint32_t guest_port, std::string early);
  void ConnectToHost(const PacketHeader& h);
  bool Register(int fd, uint64_t token);
  void Touch(const Key& key);
  void Remove(std::map<Key, Entry>::iterator it);
  void QueueStrayRst(const PacketHeader& h);
  bool at_capacity() const { return clients_.size() + conns_.size() >= kMaxConnections; }

  UniqueFd epoll_;
  UniqueFd listener_;
  std::string uds_path_;
  std::unordered_map<uint64_t, Client> clients_;
  std::map<Key, Entry> conns_;
  std::unordered_map<uint64_t, Key> token_keys_;
  std::deque<Key> rx_list_;  // connections that want an rx buffer, in turn
  struct StrayRst {
    uint32_t host_port, guest_port;
    uint16_t type;
  };
  std::deque<StrayRst> stray_rsts_;  // answers for packets without a connection
  uint64_t next_token_ = 1;          // 0 is the listener
  uint32_t next_host_port_ = kFirstHostPort;
  uint64_t opened_ = 0;
  uint64_t reset_ = 0;
};

}  // namespace kf::vsock
