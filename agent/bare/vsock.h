/*
 * A polling virtio-vsock driver (virtio 1.x, 5.10) for stream connections
 * that the host opens to one listening port. Queues: rx 0, tx 1, event 2.
 * Every packet is one descriptor holding the 44-byte header and its payload.
 *
 * Connections are served through two byte buffers each: `in` (what the
 * peer sent, not yet consumed) and `out` (what the user queued, not yet sent
 * for lack of credit). Flow control follows 5.10.6.3: we advertise
 * buf_alloc = KF_CONN_IN_SIZE and our fwd_cnt (bytes consumed), and never
 * send more than the peer's buf_alloc - (tx_cnt - peer fwd_cnt).
 */
#ifndef KF_AGENT_BARE_VSOCK_H_
#define KF_AGENT_BARE_VSOCK_H_

#include <stdint.h>

#include "agent/bare/virtqueue.h"

#define KF_VSOCK_QUEUE_RX 0u
#define KF_VSOCK_QUEUE_TX 1u
#define KF_VSOCK_QUEUE_EVENT 2u

#define KF_VSOCK_CID_HOST 2u
#define KF_VSOCK_TYPE_STREAM 1u
#define KF_VSOCK_OP_INVALID 0u
#define KF_VSOCK_OP_REQUEST 1u
#define KF_VSOCK_OP_RESPONSE 2u
#define KF_VSOCK_OP_RST 3u
#define KF_VSOCK_OP_SHUTDOWN 4u
#define KF_VSOCK_OP_RW 5u
#define KF_VSOCK_OP_CREDIT_UPDATE 6u
#define KF_VSOCK_OP_CREDIT_REQUEST 7u
#define KF_VSOCK_SHUTDOWN_RCV 1u
#define KF_VSOCK_SHUTDOWN_SEND 2u
#define KF_VSOCK_EVENT_TRANSPORT_RESET 0u

/* struct virtio_vsock_hdr: little-endian, packed (x86 is little-endian). */
struct kf_vsock_hdr {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct kf_vsock_hdr) == KF_PKT_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

struct kf_conn {
  uint8_t live;         /* slot in use */
  uint8_t closing;      /* the user asked to close once `out` drains */
  uint8_t peer_done;    /* the peer sent SHUTDOWN(SEND): no more input */
  uint8_t credit_asked; /* a CREDIT_REQUEST went out since credit last changed */
  uint64_t peer_cid;
  uint32_t peer_port;
  uint32_t peer_buf_alloc, peer_fwd_cnt; /* from the peer's latest header */
  uint32_t tx_cnt;                       /* payload bytes sent */
  uint32_t fwd_cnt;                      /* payload bytes consumed from `in` */
  uint32_t fwd_cnt_sent;                 /* fwd_cnt as last told to the peer */
  uint8_t* in;
  uint32_t in_head, in_len; /* unconsumed input: in[in_head, in_len) */
  uint8_t* out;
  uint32_t out_head, out_len; /* unsent output: out[out_head, out_len) */
};

/* The user of the connections (the agent). Both may queue output. */
struct kf_vsock_ops {
  void (*on_open)(struct kf_conn* c);  /* accepted; the RESPONSE is queued */
  void (*on_input)(struct kf_conn* c); /* may have new input; consume what you can */
};

/* Brings the device up (virtio 3.1.1): attach, negotiate, queues, guest CID,
 * rx and event buffers, DRIVER_OK, notify. Then packets to `port` on our CID
 * are accepted. Panics (bare_abi.h codes) if the device is not usable. */
void kf_vsock_init(uint64_t mmio_gpa, uint32_t port, const struct kf_vsock_ops* ops);

/* Does all pending work: events, received packets, completed sends, user
 * input and output, buffer reposting and notifies. Call after every WAIT
 * with what it returned: a nonzero wake that finds nothing used makes it
 * check for DEVICE_NEEDS_RESET, and set the device up again if so. */
void kf_vsock_poll(uint32_t woken);

/* Resets the device and sets it up again (counted in the boot info's
 * device_resets); every connection is forgotten without RST. */
void kf_vsock_restart(void);

uint64_t kf_vsock_cid(void);

/* The queues, for the hostile test mode. */
struct kf_vq* kf_vsock_queue(uint32_t index);

/* ---- for the user of a connection ---- */

static inline const uint8_t* kf_conn_input(const struct kf_conn* c, uint32_t* len) {
  *len = c->in_len - c->in_head;
  return c->in + c->in_head;
}

/* Drops n (<= the input length) bytes from the front of the input. */
void kf_conn_consume(struct kf_conn* c, uint32_t n);

/* n contiguous bytes at the end of the output, or NULL if they do not fit
 * now (the peer has not read enough yet). Valid until the next call. */
uint8_t* kf_conn_reserve(struct kf_conn* c, uint32_t n);
void kf_conn_commit(struct kf_conn* c, uint32_t n);

/* Stops input; once the output is sent, SHUTDOWN(RCV|SEND) and forget. */
void kf_conn_close(struct kf_conn* c);

#endif /* KF_AGENT_BARE_VSOCK_H_ */
