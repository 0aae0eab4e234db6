/*
 * The virtio-mmio driver steps (virtio 1.x, 3.1.1 and 4.2.3), in the order
 * the specification gives them. A device that answers anything unexpected
 * stops the boot with a distinct panic code (bare_abi.h): the host sees why.
 */
#include "agent/bare/virtio_mmio.h"

#include "agent/bare/bare.h"

static uintptr_t g_base;

#ifdef KF_BARE_HOSTED
uint32_t kf_mmio_read(uint32_t off) { return (uint32_t)kf_hosted_mmio_read(g_base + off, 4); }
void kf_mmio_write(uint32_t off, uint32_t value) { kf_hosted_mmio_write(g_base + off, 4, value); }
#else
uint32_t kf_mmio_read(uint32_t off) {
  uint32_t value;
  __asm__ volatile("movl (%1), %0" : "=r"(value) : "r"(g_base + off) : "memory");
  return value;
}

void kf_mmio_write(uint32_t off, uint32_t value) {
  __asm__ volatile("movl %0, (%1)" : : "r"(value), "r"(g_base + off) : "memory");
}
#endif

void kf_mmio_fail(uint32_t code, uint64_t detail) {
  if (g_base != 0) kf_mmio_write(KF_MMIO_STATUS, kf_mmio_read(KF_MMIO_STATUS) | KF_STATUS_FAILED);
  kf_panic(code, detail);
}

void kf_mmio_attach(uint64_t gpa, uint32_t device_id) {
  g_base = (uintptr_t)gpa;
  uint32_t v = kf_mmio_read(KF_MMIO_MAGIC_VALUE);
  if (v != KF_MMIO_MAGIC) kf_panic(KF_PANIC_MMIO_MAGIC, v);
  v = kf_mmio_read(KF_MMIO_VERSION);
  if (v != KF_MMIO_VERSION_MODERN) kf_panic(KF_PANIC_MMIO_VERSION, v);
  v = kf_mmio_read(KF_MMIO_DEVICE_ID);
  if (v != device_id) kf_panic(KF_PANIC_DEVICE_ID, v);
}

static void set_status(uint32_t bits) {
  kf_mmio_write(KF_MMIO_STATUS, kf_mmio_read(KF_MMIO_STATUS) | bits);
}

void kf_mmio_negotiate(void) {
  /* Reset; a device may take a moment to get there, so read it back. */
  kf_mmio_write(KF_MMIO_STATUS, 0);
  uint32_t status = kf_mmio_read(KF_MMIO_STATUS);
  for (int tries = 0; status != 0 && tries < 1000; ++tries) status = kf_mmio_read(KF_MMIO_STATUS);
  if (status != 0) kf_mmio_fail(KF_PANIC_RESET_TIMEOUT, status);
  set_status(KF_STATUS_ACKNOWLEDGE);
  set_status(KF_STATUS_DRIVER);

  kf_mmio_write(KF_MMIO_DEVICE_FEATURES_SEL, 0);
  uint64_t features = kf_mmio_read(KF_MMIO_DEVICE_FEATURES);
  kf_mmio_write(KF_MMIO_DEVICE_FEATURES_SEL, 1);
  features |= (uint64_t)kf_mmio_read(KF_MMIO_DEVICE_FEATURES) << 32;
  const uint64_t wanted = 1ull << KF_VIRTIO_F_VERSION_1;
  if ((features & wanted) == 0) kf_mmio_fail(KF_PANIC_NO_VERSION_1, features);
  kf_mmio_write(KF_MMIO_DRIVER_FEATURES_SEL, 0);
  kf_mmio_write(KF_MMIO_DRIVER_FEATURES, (uint32_t)wanted);
  kf_mmio_write(KF_MMIO_DRIVER_FEATURES_SEL, 1);
  kf_mmio_write(KF_MMIO_DRIVER_FEATURES, (uint32_t)(wanted >> 32));
  set_status(KF_STATUS_FEATURES_OK);
  status = kf_mmio_read(KF_MMIO_STATUS);
  if ((status & KF_STATUS_FEATURES_OK) == 0) kf_mmio_fail(KF_PANIC_FEATURES_REFUSED, status);
}

uint32_t kf_mmio_queue_max(uint16_t queue) {
  kf_mmio_write(KF_MMIO_QUEUE_SEL, queue);
  if (kf_mmio_read(KF_MMIO_QUEUE_READY) != 0) kf_mmio_fail(KF_PANIC_QUEUE_BUSY, queue);
  uint32_t max = kf_mmio_read(KF_MMIO_QUEUE_NUM_MAX);
  if (max == 0) kf_mmio_fail(KF_PANIC_QUEUE_MISSING, queue);
  return max;
}

void kf_mmio_queue_enable(uint16_t queue, uint16_t size, uint64_t desc, uint64_t avail,
                          uint64_t used) {
  kf_mmio_write(KF_MMIO_QUEUE_SEL, queue);
  kf_mmio_write(KF_MMIO_QUEUE_NUM, size);
  kf_mmio_write(KF_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
  kf_mmio_write(KF_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  kf_mmio_write(KF_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
  kf_mmio_write(KF_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  kf_mmio_write(KF_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
  kf_mmio_write(KF_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  kf_mb(); /* the zeroed rings are in memory before the device may look */
  kf_mmio_write(KF_MMIO_QUEUE_READY, 1);
  if (kf_mmio_read(KF_MMIO_QUEUE_READY) != 1) kf_mmio_fail(KF_PANIC_QUEUE_NOT_READY, queue);
}

uint64_t kf_mmio_config_read64(uint32_t off) {
  uint32_t lo = 0, hi = 0;
  /* Bounded: a device whose generation never settles gets its last answer. */
  for (int tries = 0; tries < 100; ++tries) {
    uint32_t gen = kf_mmio_read(KF_MMIO_CONFIG_GENERATION);
    lo = kf_mmio_read(KF_MMIO_CONFIG + off);
    hi = kf_mmio_read(KF_MMIO_CONFIG + off + 4);
    if (kf_mmio_read(KF_MMIO_CONFIG_GENERATION) == gen) break;
  }
  return (uint64_t)hi << 32 | lo;
}

void kf_mmio_driver_ok(void) {
  set_status(KF_STATUS_DRIVER_OK);
  uint32_t status = kf_mmio_read(KF_MMIO_STATUS);
  if ((status & (KF_STATUS_NEEDS_RESET | KF_STATUS_FAILED)) != 0 ||
      (status & KF_STATUS_DRIVER_OK) == 0)
    kf_mmio_fail(KF_PANIC_DEVICE_STATUS, status);
}

void kf_mmio_notify(uint16_t queue) {
  kf_mb();
  kf_mmio_write(KF_MMIO_QUEUE_NOTIFY, queue);
}
