/* The split-ring driver side (virtqueue.h). Ordering: a descriptor and its
 * avail ring slot are written before avail->idx, which is written before the
 * notify; used->idx is read before the used entries it covers. x86 keeps
 * stores in order and loads in order, so compiler barriers suffice, plus the
 * fence that kf_mmio_notify puts before the exit. */
#include "agent/bare/virtqueue.h"

#include "agent/bare/bare.h"
#include "agent/bare/virtio_mmio.h"

void kf_vq_setup(struct kf_vq* vq, uint16_t index, uint64_t base) {
  uint32_t max = kf_mmio_queue_max(index);
  uint16_t size = KF_VQ_SIZE_MAX;
  while (size > max) size >>= 1; /* largest power of 2 <= min(max, 64) */
  memset(vq, 0, sizeof *vq);
  vq->index = index;
  vq->size = size;
  memset((void*)(uintptr_t)base, 0, KF_VQ_RING_STRIDE);
  vq->desc = (volatile struct kf_vring_desc*)(uintptr_t)base;
  vq->avail = (volatile struct kf_vring_avail*)(uintptr_t)(base + KF_VQ_AVAIL_OFF);
  vq->used = (volatile struct kf_vring_used*)(uintptr_t)(base + KF_VQ_USED_OFF);
  kf_mmio_queue_enable(index, size, base, base + KF_VQ_AVAIL_OFF, base + KF_VQ_USED_OFF);
}

void kf_vq_post(struct kf_vq* vq, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags) {
  if (id >= vq->size || vq->owned[id]) return;
  volatile struct kf_vring_desc* d = &vq->desc[id];
  d->addr = addr;
  d->len = len;
  d->flags = flags;
  d->next = 0;
  vq->avail->ring[vq->avail_idx & (vq->size - 1)] = id;
  kf_barrier();
  vq->avail->idx = ++vq->avail_idx;
  vq->owned[id] = 1;
  ++vq->in_flight;
  vq->kicks = 1;
}

int kf_vq_take_used(struct kf_vq* vq, uint16_t* id, uint32_t* len) {
  for (;;) {
    uint16_t used_idx = vq->used->idx;
    kf_barrier();
    uint16_t ready = (uint16_t)(used_idx - vq->last_used);
    if (ready == 0) return 0;
    if (ready > vq->size) {
      /* More entries than the ring holds: the index is garbage. Skip to it;
       * descriptors it swallowed stay the device's. */
      vq->bad_used += ready;
      vq->last_used = used_idx;
      return 0;
    }
    volatile struct kf_vring_used_elem* e = &vq->used->ring[vq->last_used & (vq->size - 1)];
    uint32_t e_id = e->id, e_len = e->len;
    ++vq->last_used;
    if (e_id >= vq->size || !vq->owned[e_id]) {
      ++vq->bad_used;
      continue;
    }
    vq->owned[e_id] = 0;
    --vq->in_flight;
    *id = (uint16_t)e_id;
    *len = e_len;
    return 1;
  }
}

int kf_vq_free_id(const struct kf_vq* vq) {
  for (uint16_t i = 0; i < vq->size; ++i)
    if (!vq->owned[i]) return i;
  return -1;
}

int kf_vq_kick(struct kf_vq* vq) {
  if (!vq->kicks) return 0;
  vq->kicks = 0;
  /* A device that polls the rings itself (the bare VMM does, each time the
   * guest waits) says so with VRING_USED_F_NO_NOTIFY: the notify, an MMIO
   * exit, is then skipped. The avail idx store must be visible before the
   * flags load (virtio 1.x 2.7.7.2): a full fence, as x86 may reorder them. */
  __asm__ volatile("mfence" ::: "memory");
  if (vq->used->flags & KF_VRING_USED_F_NO_NOTIFY) return 0;
  kf_mmio_notify(vq->index);
  return 1;
}
