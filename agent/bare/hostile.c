/*
 * The hostile test mode (hostile.h). Each round picks one kind of abuse and
 * one queue; every round ends with a notify of each queue, so the device
 * walks what was just written. All writes stay inside the guest's own ring
 * pages, its packet buffers, a scratch area of the driver region and the
 * MMIO window: the guest never corrupts its own code, stack or page tables,
 * so it keeps going for as long as the VMM lets it.
 */
#include "agent/bare/hostile.h"

#include "agent/bare/bare.h"
#include "agent/bare/rng.h"
#include "agent/bare/virtio_mmio.h"
#include "agent/bare/vsock.h"
#include "agent/proto/agent_codec.h"

#define ROUNDS_PER_WAKE 8
#define MAX_RESTARTS 64
#define SCRATCH_GPA KF_DRIVER_END
#define SCRATCH_SIZE 0x80000ull /* up to the end of the driver region */

_Static_assert(SCRATCH_GPA + SCRATCH_SIZE <= KF_BARE_DRIVER_GPA + KF_BARE_DRIVER_SIZE,
               "scratch inside the driver region");

static uint64_t g_state;
static uint64_t g_mem;

static uint64_t rnd(void) { return kf_splitmix64(&g_state); }
static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

/* A buffer address a careful device must refuse, or sometimes a valid one. */
static uint64_t bad_addr(void) {
  switch (below(10)) {
    case 0:
      return 0;
    case 1:
      return g_mem - 8 - below(64); /* straddles the end of RAM */
    case 2:
      return g_mem + (rnd() & 0xffffff); /* just past RAM */
    case 3:
      return KF_BARE_VSOCK_MMIO_GPA + (rnd() & 0xfff); /* the device's own window */
    case 4:
      return ~0ull - (rnd() & 0xfff); /* addr + len wraps past 2^64 */
    case 5:
      return 1ull << (52 + below(12)); /* beyond any physical address */
    case 6:
      return rnd();
    case 7:
      return KF_RING_GPA(below(3)) + (rnd() & 0xff8); /* the rings themselves */
    default:
      return SCRATCH_GPA + (rnd() & (SCRATCH_SIZE - 1) & ~7ull); /* plausible */
  }
}

static uint32_t bad_len(void) {
  switch (below(8)) {
    case 0:
      return 0;
    case 1:
      return 1 + below(KF_PKT_HDR_SIZE - 1); /* shorter than a vsock header */
    case 2:
      return 0xffffffffu;
    case 3:
      return 0x80000000u + below(4096);
    case 4:
      return (uint32_t)g_mem;
    case 5:
      return (uint32_t)rnd();
    default:
      return KF_PKT_HDR_SIZE + below(KF_PKT_PAYLOAD_MAX + 1);
  }
}

static uint16_t bad_index(const struct kf_vq* vq) {
  return below(4) == 0 ? (uint16_t)rnd() : (uint16_t)below(vq->size);
}

static void publish(struct kf_vq* vq, uint16_t head) {
  vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
  kf_barrier();
  vq->avail->idx = ++vq->avail_idx;
}

static void set_desc(struct kf_vq* vq, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next) {
  volatile struct kf_vring_desc* d = &vq->desc[i % KF_VQ_SIZE_MAX];
  d->addr = addr;
  d->len = len;
  d->flags = flags;
  d->next = next;
}

/* Descriptors with bad addresses, lengths, flags and next indexes. */
static void garbage_descriptors(struct kf_vq* vq) {
  for (uint32_t n = 1 + below(8); n > 0; --n) {
    uint32_t i = below(KF_VQ_SIZE_MAX);
    set_desc(vq, i, bad_addr(), bad_len(), (uint16_t)below(8), bad_index(vq));
    publish(vq, below(8) == 0 ? (uint16_t)rnd() : (uint16_t)i);
  }
}

/* avail->idx far ahead (more buffers than the ring holds) or backwards. */
static void avail_jump(struct kf_vq* vq) {
  for (uint32_t n = below(4); n > 0; --n) vq->avail->ring[below(KF_VQ_SIZE_MAX)] = (uint16_t)rnd();
  vq->avail_idx = below(2) ? (uint16_t)(vq->avail_idx + rnd())
                           : (uint16_t)(vq->avail_idx - 1 - below(vq->size));
  vq->avail->flags = (uint16_t)rnd();
  vq->avail->idx = vq->avail_idx;
}

/* NEXT chains that loop: a 1- or 2-cycle, or one through the whole table. */
static void descriptor_loop(struct kf_vq* vq) {
  uint16_t write = vq->index == KF_VSOCK_QUEUE_TX ? 0 : KF_VRING_DESC_F_WRITE;
  uint32_t a = below(vq->size), b = below(vq->size);
  switch (below(3)) {
    case 0:
      set_desc(vq, a, SCRATCH_GPA, KF_PKT_HDR_SIZE, KF_VRING_DESC_F_NEXT | write, (uint16_t)a);
      break;
    case 1:
      set_desc(vq, a, SCRATCH_GPA, KF_PKT_HDR_SIZE, KF_VRING_DESC_F_NEXT | write, (uint16_t)b);
      set_desc(vq, b, SCRATCH_GPA + 64, 16, KF_VRING_DESC_F_NEXT | write, (uint16_t)a);
      break;
    default:
      for (uint32_t i = 0; i < vq->size; ++i)
        set_desc(vq, i, SCRATCH_GPA + i * 64, 16 + below(48), KF_VRING_DESC_F_NEXT | write,
                 (uint16_t)((i + 1) % vq->size));
      break;
  }
  publish(vq, (uint16_t)a);
}

/* Buffers of the wrong direction: device-writable on tx, read-only on rx and
 * event, and readable-after-writable chains. */
static void wrong_direction(struct kf_vq* vq) {
  uint32_t a = below(vq->size), b = (a + 1) % vq->size;
  uint64_t addr = SCRATCH_GPA + (rnd() & 0xffc0);
  if (vq->index == KF_VSOCK_QUEUE_TX) {
    set_desc(vq, a, addr, KF_PKT_BUF_SIZE, KF_VRING_DESC_F_WRITE, 0);
  } else if (below(2)) {
    set_desc(vq, a, addr, KF_PKT_BUF_SIZE, 0, 0);
  } else {
    set_desc(vq, a, addr, KF_PKT_HDR_SIZE, KF_VRING_DESC_F_WRITE | KF_VRING_DESC_F_NEXT,
             (uint16_t)b);
    set_desc(vq, b, addr + 64, 64, 0, 0);
  }
  publish(vq, (uint16_t)a);
}

/* INDIRECT (not negotiated) pointing at a table of garbage descriptors. */
static void indirect(struct kf_vq* vq) {
  volatile uint64_t* table = (volatile uint64_t*)(uintptr_t)(SCRATCH_GPA + 0x10000);
  for (uint32_t i = 0; i < 64; ++i) table[i] = rnd();
  uint32_t a = below(vq->size);
  set_desc(vq, a, below(4) ? SCRATCH_GPA + 0x10000 : bad_addr(),
           below(2) ? 16 * (1 + below(32)) : bad_len(),
           (uint16_t)(KF_VRING_DESC_F_INDIRECT | (below(4) << 0)), bad_index(vq));
  publish(vq, (uint16_t)a);
}

static uint64_t pick_cid(void) {
  static const uint64_t cids[] = {KF_VSOCK_CID_HOST, 0, 1, 0xffffffffull, ~0ull};
  return below(3) ? cids[below(5)] : (below(2) ? kf_vsock_cid() : rnd());
}

/* A tx packet whose header lies: bogus ops, types, cids, ports and lengths,
 * or a well-formed but abusive one (connect to a random host port, data
 * without a connection or beyond credit). */
static void garbage_packet(void) {
  struct kf_vq* tx = kf_vsock_queue(KF_VSOCK_QUEUE_TX);
  uint16_t id = (uint16_t)below(tx->size);
  uint8_t* buf = (uint8_t*)(uintptr_t)(KF_TX_BUF_GPA + id * KF_PKT_BUF_STRIDE);
  uint32_t payload = below(4) ? below(KF_PKT_PAYLOAD_MAX + 1) : 0;
  struct kf_vsock_hdr h = {.src_cid = below(2) ? kf_vsock_cid() : pick_cid(),
                           .dst_cid = pick_cid(),
                           .src_port = below(2) ? KF_AGENT_VSOCK_PORT : (uint32_t)rnd(),
                           .dst_port = below(2) ? below(2048) : (uint32_t)rnd(),
                           .len = below(2) ? payload : (uint32_t)rnd(),
                           .type = (uint16_t)(below(2) ? KF_VSOCK_TYPE_STREAM : rnd()),
                           .op = (uint16_t)(below(4) ? below(9) : rnd()),
                           .flags = (uint32_t)(below(2) ? 0 : rnd()),
                           .buf_alloc = (uint32_t)rnd(),
                           .fwd_cnt = (uint32_t)rnd()};
  memcpy(buf, &h, sizeof h);
  for (uint32_t i = 0; i + 8 <= payload; i += 8) {
    uint64_t r = rnd();
    memcpy(buf + KF_PKT_HDR_SIZE + i, &r, 8);
  }
  uint32_t len = below(2) ? KF_PKT_HDR_SIZE + payload : bad_len();
  set_desc(tx, id, KF_TX_BUF_GPA + id * KF_PKT_BUF_STRIDE, len, 0, 0);
  publish(tx, id);
}

/* The used ring belongs to the device: writing it must change nothing. */
static void used_scribble(struct kf_vq* vq) {
  vq->used->flags = (uint16_t)rnd();
  vq->used->idx = (uint16_t)rnd();
  for (uint32_t n = below(8); n > 0; --n) {
    volatile struct kf_vring_used_elem* e = &vq->used->ring[below(KF_VQ_SIZE_MAX)];
    e->id = (uint32_t)rnd();
    e->len = (uint32_t)rnd();
  }
}

/* Accesses of widths the transport does not allow (it requires 32-bit). */
static void odd_width_access(uint32_t off) {
  uintptr_t p = (uintptr_t)(KF_BARE_VSOCK_MMIO_GPA + off);
  uint64_t v = rnd();
#ifdef KF_BARE_HOSTED
  static const unsigned widths[] = {1, 2, 8};
  unsigned width = widths[below(3)];
  uint64_t gpa = width == 8 ? p & ~7ul : p;
  if (below(2))
    kf_hosted_mmio_write(gpa, width, v);
  else
    (void)kf_hosted_mmio_read(gpa, width);
#else
  switch (below(6)) {
    case 0:
      __asm__ volatile("movb (%1), %b0" : "=q"(v) : "r"(p) : "memory");
      break;
    case 1:
      __asm__ volatile("movw (%1), %w0" : "=r"(v) : "r"(p) : "memory");
      break;
    case 2:
      __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(p & ~7ul) : "memory");
      break;
    case 3:
      __asm__ volatile("movb %b0, (%1)" : : "q"(v), "r"(p) : "memory");
      break;
    case 4:
      __asm__ volatile("movw %w0, (%1)" : : "r"(v), "r"(p) : "memory");
      break;
    default:
      __asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(p & ~7ul) : "memory");
      break;
  }
#endif
}

/* Register abuse: read-only registers written, queue registers rewritten
 * while the queue is live, bogus queue numbers, odd widths, and (rarely) a
 * status write, which may reset the device for the rest of the run. */
static void mmio_abuse(void) {
  static const uint32_t read_only[] = {KF_MMIO_MAGIC_VALUE,      KF_MMIO_VERSION,
                                       KF_MMIO_DEVICE_ID,        KF_MMIO_VENDOR_ID,
                                       KF_MMIO_DEVICE_FEATURES,  KF_MMIO_QUEUE_NUM_MAX,
                                       KF_MMIO_INTERRUPT_STATUS, KF_MMIO_CONFIG_GENERATION,
                                       KF_MMIO_CONFIG,           KF_MMIO_CONFIG + 4};
  switch (below(8)) {
    case 0:
      kf_mmio_write(KF_MMIO_QUEUE_NOTIFY, below(2) ? 3 + below(8) : (uint32_t)rnd());
      break;
    case 1:
      (void)kf_mmio_read((uint32_t)rnd() & 0xffc);
      break;
    case 2:
      kf_mmio_write(read_only[below(10)], (uint32_t)rnd());
      break;
    case 3:
      kf_mmio_write(KF_MMIO_QUEUE_SEL, below(2) ? below(4) : (uint32_t)rnd());
      kf_mmio_write(below(2) ? KF_MMIO_QUEUE_NUM : KF_MMIO_QUEUE_DESC_LOW + 0x10 * below(3),
                    (uint32_t)rnd());
      if (below(4) == 0) kf_mmio_write(KF_MMIO_QUEUE_READY, below(2));
      break;
    case 4:
      kf_mmio_write(KF_MMIO_DRIVER_FEATURES_SEL, below(4));
      kf_mmio_write(KF_MMIO_DRIVER_FEATURES, (uint32_t)rnd());
      break;
    case 5:
      kf_mmio_write(KF_MMIO_INTERRUPT_ACK, (uint32_t)rnd());
      break;
    case 6:
      odd_width_access((uint32_t)rnd() & 0xfff);
      break;
    default:
      if (below(32) == 0) kf_mmio_write(KF_MMIO_STATUS, (uint32_t)rnd() & 0xff);
      break;
  }
}

static void round_once(void) {
  struct kf_vq* vq = kf_vsock_queue(below(3));
  switch (below(9)) {
    case 0:
      garbage_descriptors(vq);
      break;
    case 1:
      avail_jump(vq);
      break;
    case 2:
      descriptor_loop(vq);
      break;
    case 3:
      wrong_direction(vq);
      break;
    case 4:
      indirect(vq);
      break;
    case 5:
    case 6:
      garbage_packet();
      break;
    case 7:
      used_scribble(vq);
      break;
    default:
      mmio_abuse();
      break;
  }
  for (uint16_t q = KF_VSOCK_QUEUE_RX; q <= KF_VSOCK_QUEUE_EVENT; ++q) kf_mmio_notify(q);
}

/* A device that gave up (NEEDS_RESET, or a status write of ours that left
 * it not DRIVER_OK) is reset and set up again, so later rounds hit a live
 * device; at most MAX_RESTARTS times, after which the guest lets it be and
 * idles in WAIT like any guest whose device is gone. */
static void revive(void) {
  static uint32_t restarts;
  uint32_t status = kf_mmio_read(KF_MMIO_STATUS);
  if ((status & (KF_STATUS_NEEDS_RESET | KF_STATUS_FAILED)) == 0 &&
      (status & KF_STATUS_DRIVER_OK) != 0)
    return;
  if (restarts >= MAX_RESTARTS) return;
  ++restarts;
  kf_vsock_restart();
}

void kf_hostile_run(uint64_t seed, uint64_t mem_size) {
  g_state = seed ^ 0x686f7374696c6521ull; /* "hostile!" */
  g_mem = mem_size;
  for (;;) {
    revive();
    for (int i = 0; i < ROUNDS_PER_WAKE; ++i) round_once();
    revive();
    (void)kf_inl(KF_PORT_WAIT);
  }
}
