// virtio-vsock packet headers (virtio 1.x 5.10.6): struct virtio_vsock_hdr,
// 44 little-endian bytes, decoded into host-order fields and back.
#pragma once

#include <linux/virtio_vsock.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace kf::vsock {

inline constexpr uint64_t kHostCid = 2;  // VMADDR_CID_HOST
inline constexpr size_t kHeaderSize = sizeof(virtio_vsock_hdr);
static_assert(kHeaderSize == 44);
// The largest payload the device takes from or gives to the guest in one
// packet (Linux uses the same cap, VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
inline constexpr uint32_t kMaxPayload = 64 * 1024;

struct PacketHeader {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;
};

// The host is little endian (checked in virtqueue.cc), so the wire layout
// is the packed struct's.
inline PacketHeader DecodeHeader(const uint8_t (&in)[kHeaderSize]) {
  virtio_vsock_hdr h;
  std::memcpy(&h, in, kHeaderSize);
  return PacketHeader{h.src_cid, h.dst_cid, h.src_port, h.dst_port, h.len,
                      h.type,    h.op,      h.flags,    h.buf_alloc, h.fwd_cnt};
}

inline void EncodeHeader(const PacketHeader& p, uint8_t (&out)[kHeaderSize]) {
  virtio_vsock_hdr h;
  h.src_cid = p.src_cid;
  h.dst_cid = p.dst_cid;
  h.src_port = p.src_port;
  h.dst_port = p.dst_port;
  h.len = p.len;
  h.type = p.type;
  h.op = p.op;
  h.flags = p.flags;
  h.buf_alloc = p.buf_alloc;
  h.fwd_cnt = p.fwd_cnt;
  std::memcpy(out, &h, kHeaderSize);
}

inline const char* OpName(uint16_t op) {
  switch (op) {
    case VIRTIO_VSOCK_OP_REQUEST: return "REQUEST";
    case VIRTIO_VSOCK_OP_RESPONSE: return "RESPONSE";
    case VIRTIO_VSOCK_OP_RST: return "RST";
    case VIRTIO_VSOCK_OP_SHUTDOWN: return "SHUTDOWN";
    case VIRTIO_VSOCK_OP_RW: return "RW";
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE: return "CREDIT_UPDATE";
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST: return "CREDIT_REQUEST";
    default: return "INVALID";
  }
}

}  // namespace kf::vsock
