/*
 * The driver side of a split virtqueue (virtio 1.x, 2.7): descriptor table,
 * available ring (driver -> device), used ring (device -> driver), all in
 * guest memory. No indirect descriptors, no event index.
 *
 * Each descriptor id owns one fixed buffer; a queue never chains. The driver
 * trusts nothing the device writes: a used entry is taken only when its id
 * is in range and that descriptor is currently the device's.
 */
#ifndef KF_AGENT_BARE_VIRTQUEUE_H_
#define KF_AGENT_BARE_VIRTQUEUE_H_

#include <stdint.h>

#include "agent/bare/layout.h"

#define KF_VRING_DESC_F_NEXT 1u
#define KF_VRING_DESC_F_WRITE 2u
#define KF_VRING_DESC_F_INDIRECT 4u
#define KF_VRING_USED_F_NO_NOTIFY 1u /* device: "no need to notify me" */

struct kf_vring_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

struct kf_vring_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[]; /* then le16 used_event, unused without EVENT_IDX */
};

struct kf_vring_used_elem {
  uint32_t id;
  uint32_t len;
};

struct kf_vring_used {
  uint16_t flags;
  uint16_t idx;
  struct kf_vring_used_elem ring[]; /* then le16 avail_event */
};

_Static_assert(sizeof(struct kf_vring_desc) == 16, "descriptor layout");
_Static_assert(sizeof(struct kf_vring_used_elem) == 8, "used element layout");

struct kf_vq {
  uint16_t index; /* queue number on the device */
  uint16_t size;  /* power of 2, <= KF_VQ_SIZE_MAX */
  volatile struct kf_vring_desc* desc;
  volatile struct kf_vring_avail* avail;
  volatile struct kf_vring_used* used;
  uint16_t avail_idx;            /* next avail->idx we publish */
  uint16_t last_used;            /* used->idx up to which we have consumed */
  uint8_t kicks;                 /* buffers made available since the last notify */
  uint8_t owned[KF_VQ_SIZE_MAX]; /* 1: descriptor is the device's */
  uint32_t in_flight;            /* count of owned[] */
  uint64_t bad_used;             /* used entries dropped as invalid */
};

/* Lays the rings out at `base` (one KF_VQ_RING_STRIDE page), zeroes them and
 * registers them with the device (queue must be free; size from QueueNumMax). */
void kf_vq_setup(struct kf_vq* vq, uint16_t index, uint64_t base);

/* Gives descriptor `id` (addr, len, flags) to the device; no-op if it is
 * already the device's. */
void kf_vq_post(struct kf_vq* vq, uint16_t id, uint64_t addr, uint32_t len, uint16_t flags);

/* Takes the next valid used entry: 1 with *id, *len set, or 0 when none.
 * Invalid entries (id out of range or not in flight, an index that jumped
 * past the ring size) are dropped and counted in bad_used. */
int kf_vq_take_used(struct kf_vq* vq, uint16_t* id, uint32_t* len);

/* A descriptor id the driver holds, or -1 when all are in flight. */
int kf_vq_free_id(const struct kf_vq* vq);

/* Notifies the device if buffers were posted since the last notify and the
 * device did not set VRING_USED_F_NO_NOTIFY; returns whether it did (a
 * notify runs the device, so there may be new used entries). */
int kf_vq_kick(struct kf_vq* vq);

#endif /* KF_AGENT_BARE_VIRTQUEUE_H_ */
