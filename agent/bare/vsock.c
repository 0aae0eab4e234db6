/*
 * The vsock driver (vsock.h): device bring-up, the three queues and the
 * connection table. Single-threaded and interrupt-free: the device touches
 * the rings only while this code is stopped in an exit (a notify or WAIT),
 * so every ring read here sees a settled state; it is still untrusted.
 */
#include "agent/bare/vsock.h"

#include "agent/bare/bare.h"
#include "agent/bare/virtio_mmio.h"

#define POLL_ROUNDS 8

static struct kf_vq g_rx, g_tx, g_ev;
static uint64_t g_cid;
static uint32_t g_port;
static const struct kf_vsock_ops* g_ops;
static struct kf_conn g_conns[KF_CONN_MAX];

static uint64_t rx_gpa(uint16_t id) { return KF_RX_BUF_GPA + id * KF_PKT_BUF_STRIDE; }
static uint64_t tx_gpa(uint16_t id) { return KF_TX_BUF_GPA + id * KF_PKT_BUF_STRIDE; }
static uint64_t ev_gpa(uint16_t id) { return KF_EVENT_BUF_GPA + id * KF_EVENT_BUF_SIZE; }

static void post_rx(uint16_t id) {
  kf_vq_post(&g_rx, id, rx_gpa(id), KF_PKT_BUF_SIZE, KF_VRING_DESC_F_WRITE);
}

static void post_event(uint16_t id) {
  kf_vq_post(&g_ev, id, ev_gpa(id), KF_EVENT_BUF_SIZE, KF_VRING_DESC_F_WRITE);
}

/* A usable guest CID: not a reserved one (0-2), and within 32 bits (the
 * upper half is reserved; 0xffffffff is VMADDR_CID_ANY). */
static int cid_ok(uint64_t cid) { return cid > KF_VSOCK_CID_HOST && cid < 0xffffffffull; }

/* Everything after attach (virtio 3.1.1 from the reset on): also how a
 * device that flagged NEEDS_RESET is brought back. */
static void device_setup(void) {
  kf_mmio_negotiate();
  kf_vq_setup(&g_rx, KF_VSOCK_QUEUE_RX, KF_RING_GPA(KF_VSOCK_QUEUE_RX));
  kf_vq_setup(&g_tx, KF_VSOCK_QUEUE_TX, KF_RING_GPA(KF_VSOCK_QUEUE_TX));
  kf_vq_setup(&g_ev, KF_VSOCK_QUEUE_EVENT, KF_RING_GPA(KF_VSOCK_QUEUE_EVENT));
  g_cid = kf_mmio_config_read64(0);
  if (!cid_ok(g_cid)) kf_mmio_fail(KF_PANIC_BAD_CID, g_cid);
  for (uint16_t i = 0; i < g_rx.size; ++i) post_rx(i);
  for (uint16_t i = 0; i < g_ev.size; ++i) post_event(i);
  kf_mmio_driver_ok();
  kf_vq_kick(&g_rx);
  kf_vq_kick(&g_ev);
}

void kf_vsock_init(uint64_t mmio_gpa, uint32_t port, const struct kf_vsock_ops* ops) {
  g_port = port;
  g_ops = ops;
  kf_mmio_attach(mmio_gpa, KF_VIRTIO_ID_VSOCK);
  device_setup();
}

void kf_vsock_restart(void) {
  for (uint32_t i = 0; i < KF_CONN_MAX; ++i) g_conns[i].live = 0;
  kf_boot->device_resets++;
  device_setup();
}

uint64_t kf_vsock_cid(void) { return g_cid; }

struct kf_vq* kf_vsock_queue(uint32_t index) {
  switch (index) {
    case KF_VSOCK_QUEUE_RX:
      return &g_rx;
    case KF_VSOCK_QUEUE_TX:
      return &g_tx;
    default:
      return &g_ev;
  }
}

/* ---- sending ---------------------------------------------------------- */

static int reclaim_tx(void) {
  uint16_t id;
  uint32_t len;
  int work = 0;
  while (kf_vq_take_used(&g_tx, &id, &len)) work = 1; /* the buffer is ours again */
  return work;
}

/* Queues one packet. 0 when no tx descriptor is free even after a notify
 * (the device processes tx inside the notify, so a free one appears unless
 * the device is stuck). */
static int tx_send(const struct kf_vsock_hdr* h, const uint8_t* payload, uint32_t n) {
  int id = kf_vq_free_id(&g_tx);
  if (id < 0) {
    g_tx.kicks = 1;
    kf_vq_kick(&g_tx);
    reclaim_tx();
    id = kf_vq_free_id(&g_tx);
    if (id < 0) return 0;
  }
  uint8_t* buf = (uint8_t*)(uintptr_t)tx_gpa((uint16_t)id);
  memcpy(buf, h, sizeof *h);
  if (n != 0) memcpy(buf + sizeof *h, payload, n);
  kf_vq_post(&g_tx, (uint16_t)id, tx_gpa((uint16_t)id), (uint32_t)sizeof *h + n, 0);
  return 1;
}

static int conn_send(struct kf_conn* c, uint16_t op, uint32_t flags, const uint8_t* payload,
                     uint32_t n) {
  struct kf_vsock_hdr h = {.src_cid = g_cid,
                           .dst_cid = c->peer_cid,
                           .src_port = g_port,
                           .dst_port = c->peer_port,
                           .len = n,
                           .type = KF_VSOCK_TYPE_STREAM,
                           .op = op,
                           .flags = flags,
                           .buf_alloc = KF_CONN_IN_SIZE,
                           .fwd_cnt = c->fwd_cnt};
  if (!tx_send(&h, payload, n)) return 0;
  c->fwd_cnt_sent = c->fwd_cnt;
  return 1;
}

/* RST for a packet that has no connection; never in answer to an RST. */
static void send_rst_for(const struct kf_vsock_hdr* in) {
  if (in->op == KF_VSOCK_OP_RST) return;
  struct kf_vsock_hdr h = {.src_cid = g_cid,
                           .dst_cid = in->src_cid,
                           .src_port = in->dst_port,
                           .dst_port = in->src_port,
                           .len = 0,
                           .type = in->type,
                           .op = KF_VSOCK_OP_RST};
  tx_send(&h, 0, 0);
}

/* ---- connections ------------------------------------------------------ */

static void conn_free(struct kf_conn* c) { c->live = 0; }

static void conn_reset(struct kf_conn* c) {
  conn_send(c, KF_VSOCK_OP_RST, 0, 0, 0);
  conn_free(c);
}

static struct kf_conn* conn_find(uint64_t cid, uint32_t port) {
  for (uint32_t i = 0; i < KF_CONN_MAX; ++i)
    if (g_conns[i].live && g_conns[i].peer_cid == cid && g_conns[i].peer_port == port)
      return &g_conns[i];
  return 0;
}

/* A free slot; when none, one that is only waiting to finish closing. */
static struct kf_conn* conn_slot(void) {
  for (uint32_t i = 0; i < KF_CONN_MAX; ++i)
    if (!g_conns[i].live) return &g_conns[i];
  for (uint32_t i = 0; i < KF_CONN_MAX; ++i)
    if (g_conns[i].closing || g_conns[i].peer_done) {
      conn_reset(&g_conns[i]);
      return &g_conns[i];
    }
  return 0;
}

static void conn_accept(const struct kf_vsock_hdr* h) {
  struct kf_conn* c = conn_slot();
  if (c == 0) {
    send_rst_for(h);
    return;
  }
  uint32_t index = (uint32_t)(c - g_conns);
  memset(c, 0, sizeof *c);
  c->peer_cid = h->src_cid;
  c->peer_port = h->src_port;
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
  c->in = (uint8_t*)(uintptr_t)(KF_CONN_IN_GPA + (uint64_t)index * KF_CONN_IN_SIZE);
  c->out = (uint8_t*)(uintptr_t)(KF_CONN_OUT_GPA + (uint64_t)index * KF_CONN_OUT_SIZE);
  if (!conn_send(c, KF_VSOCK_OP_RESPONSE, 0, 0, 0)) return; /* slot stays free */
  c->live = 1;
  if (g_ops != 0 && g_ops->on_open != 0) g_ops->on_open(c);
}

static void receive(struct kf_conn* c, const uint8_t* data, uint32_t n) {
  if (n == 0) return;
  uint32_t pending = c->in_len - c->in_head;
  if (c->peer_done || n > KF_CONN_IN_SIZE - pending) {
    conn_reset(c); /* data after SHUTDOWN(SEND), or beyond the credit we gave */
    return;
  }
  if (n > KF_CONN_IN_SIZE - c->in_len) {
    memmove(c->in, c->in + c->in_head, pending);
    c->in_head = 0;
    c->in_len = pending;
  }
  memcpy(c->in + c->in_len, data, n);
  c->in_len += n;
}

static void update_credit(struct kf_conn* c, const struct kf_vsock_hdr* h) {
  if (h->buf_alloc != c->peer_buf_alloc || h->fwd_cnt != c->peer_fwd_cnt) c->credit_asked = 0;
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
}

static void conn_packet(struct kf_conn* c, const struct kf_vsock_hdr* h, const uint8_t* data) {
  update_credit(c, h);
  switch (h->op) {
    case KF_VSOCK_OP_REQUEST: /* the peer reuses the address: it forgot the old one */
      conn_free(c);
      conn_accept(h);
      return;
    case KF_VSOCK_OP_RW:
      receive(c, data, h->len);
      return;
    case KF_VSOCK_OP_CREDIT_UPDATE: /* credit taken above; sending resumes in service() */
      return;
    case KF_VSOCK_OP_CREDIT_REQUEST:
      conn_send(c, KF_VSOCK_OP_CREDIT_UPDATE, 0, 0, 0);
      return;
    case KF_VSOCK_OP_SHUTDOWN:
      if ((h->flags & KF_VSOCK_SHUTDOWN_RCV) != 0 || h->flags == 0)
        conn_reset(c); /* the peer reads no more: drop what is queued */
      else
        c->peer_done = 1; /* answer what is buffered, then SHUTDOWN */
      return;
    case KF_VSOCK_OP_RST:
      conn_free(c);
      return;
    default: /* RESPONSE (we never connect out), INVALID, unknown */
      conn_reset(c);
      return;
  }
}

/* One received packet, as the device left it in an rx buffer of `len` bytes. */
static void rx_packet(const uint8_t* buf, uint32_t len) {
  if (len < KF_PKT_HDR_SIZE || len > KF_PKT_BUF_SIZE) return;
  struct kf_vsock_hdr h;
  memcpy(&h, buf, sizeof h);
  if (h.len > len - KF_PKT_HDR_SIZE) return; /* claims more payload than was written */
  if (h.op != KF_VSOCK_OP_RW) h.len = 0;     /* only RW carries payload */
  if (h.type != KF_VSOCK_TYPE_STREAM || h.dst_cid != g_cid || h.dst_port != g_port) {
    send_rst_for(&h);
    return;
  }
  struct kf_conn* c = conn_find(h.src_cid, h.src_port);
  if (c != 0) {
    conn_packet(c, &h, buf + KF_PKT_HDR_SIZE);
  } else if (h.op == KF_VSOCK_OP_REQUEST) {
    conn_accept(&h);
  } else {
    send_rst_for(&h);
  }
}

static int poll_rx(void) {
  uint16_t id;
  uint32_t len;
  int work = 0;
  for (uint32_t n = 0; n < 2u * g_rx.size && kf_vq_take_used(&g_rx, &id, &len); ++n) {
    work = 1;
    rx_packet((const uint8_t*)(uintptr_t)rx_gpa(id), len);
    post_rx(id); /* the payload was copied out */
  }
  return work;
}

/* TRANSPORT_RESET (a clone was restored, or the host lost its state): every
 * connection is gone without RST, and the CID may have changed. */
static void transport_reset(void) {
  for (uint32_t i = 0; i < KF_CONN_MAX; ++i) conn_free(&g_conns[i]);
  uint64_t cid = kf_mmio_config_read64(0);
  if (cid_ok(cid)) g_cid = cid;
}

static int poll_events(void) {
  uint16_t id;
  uint32_t len;
  int work = 0;
  while (kf_vq_take_used(&g_ev, &id, &len)) {
    work = 1;
    const volatile uint8_t* e = (const volatile uint8_t*)(uintptr_t)ev_gpa(id);
    uint32_t event =
        (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 | (uint32_t)e[3] << 24;
    if (len >= 4 && len <= KF_EVENT_BUF_SIZE && event == KF_VSOCK_EVENT_TRANSPORT_RESET)
      transport_reset();
    post_event(id);
  }
  return work;
}

/* ---- flow control and the user's buffers ------------------------------ */

static uint32_t peer_credit(const struct kf_conn* c) {
  uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
  return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void flush(struct kf_conn* c) {
  while (c->out_head < c->out_len) {
    uint32_t credit = peer_credit(c);
    if (credit == 0) {
      if (!c->credit_asked && conn_send(c, KF_VSOCK_OP_CREDIT_REQUEST, 0, 0, 0))
        c->credit_asked = 1;
      break;
    }
    uint32_t n = kf_min32(kf_min32(c->out_len - c->out_head, credit), KF_PKT_PAYLOAD_MAX);
    if (!conn_send(c, KF_VSOCK_OP_RW, 0, c->out + c->out_head, n)) break;
    c->out_head += n;
    c->tx_cnt += n;
  }
  if (c->out_head == c->out_len) c->out_head = c->out_len = 0;
}

static void service(struct kf_conn* c) {
  int settled = 0; /* the user consumed all it could: what is left is incomplete */
  for (int i = 0; i < 4 && c->live && !settled; ++i) {
    uint32_t consumed = c->fwd_cnt;
    if (!c->closing && g_ops != 0 && g_ops->on_input != 0) g_ops->on_input(c);
    flush(c);
    settled = c->fwd_cnt == consumed;
  }
  if (!c->live) return;
  if (settled && c->out_len == 0 && (c->closing || c->peer_done)) {
    /* A clean close (virtio 5.10.6.6): the peer delivers what we sent, then
     * answers with RST, which finds no connection here, as it should. */
    conn_send(c, KF_VSOCK_OP_SHUTDOWN, KF_VSOCK_SHUTDOWN_RCV | KF_VSOCK_SHUTDOWN_SEND, 0, 0);
    conn_free(c);
  } else if (c->fwd_cnt - c->fwd_cnt_sent >= KF_CONN_IN_SIZE / 2) {
    conn_send(c, KF_VSOCK_OP_CREDIT_UPDATE, 0, 0, 0);
  }
}

void kf_conn_consume(struct kf_conn* c, uint32_t n) {
  uint32_t pending = c->in_len - c->in_head;
  if (n > pending) n = pending;
  c->in_head += n;
  c->fwd_cnt += n;
  if (c->in_head == c->in_len) c->in_head = c->in_len = 0;
}

uint8_t* kf_conn_reserve(struct kf_conn* c, uint32_t n) {
  if (n > KF_CONN_OUT_SIZE) return 0;
  if (n > KF_CONN_OUT_SIZE - c->out_len && c->out_head != 0) {
    memmove(c->out, c->out + c->out_head, c->out_len - c->out_head);
    c->out_len -= c->out_head;
    c->out_head = 0;
  }
  return n <= KF_CONN_OUT_SIZE - c->out_len ? c->out + c->out_len : 0;
}

void kf_conn_commit(struct kf_conn* c, uint32_t n) {
  if (n <= KF_CONN_OUT_SIZE - c->out_len) c->out_len += n;
}

void kf_conn_close(struct kf_conn* c) { c->closing = 1; }

/* ---- the loop body ---------------------------------------------------- */

void kf_vsock_poll(uint32_t woken) {
  for (int round = 0; round < POLL_ROUNDS; ++round) {
    int work = poll_events();
    work |= reclaim_tx();
    work |= poll_rx();
    /* Woken with nothing used: the device may have flagged NEEDS_RESET
     * (it wakes the guest for that). Reset it; the connections are lost. */
    if (round == 0 && woken != 0 && !work &&
        (kf_mmio_read(KF_MMIO_STATUS) & KF_STATUS_NEEDS_RESET) != 0) {
      kf_vsock_restart();
      return;
    }
    for (uint32_t i = 0; i < KF_CONN_MAX; ++i)
      if (g_conns[i].live) service(&g_conns[i]);
    /* Notifies run the device: tx is consumed, and rx may be filled, right
     * inside them; another round picks that up. */
    int kicked = kf_vq_kick(&g_ev);
    kicked |= kf_vq_kick(&g_rx);
    kicked |= kf_vq_kick(&g_tx);
    if (!work && !kicked) return;
  }
}
