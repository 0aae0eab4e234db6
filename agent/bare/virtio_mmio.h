/*
 * The virtio-mmio transport, version 2 ("modern", virtio 1.x section 4.2),
 * from the driver's side: register access and the device initialisation
 * steps. Every register access is one aligned 32-bit `mov` to the window,
 * which exits to the VMM (the window has no memory behind it).
 */
#ifndef KF_AGENT_BARE_VIRTIO_MMIO_H_
#define KF_AGENT_BARE_VIRTIO_MMIO_H_

#include <stdint.h>

/* Register offsets (virtio 1.x, 4.2.2). */
#define KF_MMIO_MAGIC_VALUE 0x000
#define KF_MMIO_VERSION 0x004
#define KF_MMIO_DEVICE_ID 0x008
#define KF_MMIO_VENDOR_ID 0x00c
#define KF_MMIO_DEVICE_FEATURES 0x010
#define KF_MMIO_DEVICE_FEATURES_SEL 0x014
#define KF_MMIO_DRIVER_FEATURES 0x020
#define KF_MMIO_DRIVER_FEATURES_SEL 0x024
#define KF_MMIO_QUEUE_SEL 0x030
#define KF_MMIO_QUEUE_NUM_MAX 0x034
#define KF_MMIO_QUEUE_NUM 0x038
#define KF_MMIO_QUEUE_READY 0x044
#define KF_MMIO_QUEUE_NOTIFY 0x050
#define KF_MMIO_INTERRUPT_STATUS 0x060
#define KF_MMIO_INTERRUPT_ACK 0x064
#define KF_MMIO_STATUS 0x070
#define KF_MMIO_QUEUE_DESC_LOW 0x080
#define KF_MMIO_QUEUE_DESC_HIGH 0x084
#define KF_MMIO_QUEUE_DRIVER_LOW 0x090
#define KF_MMIO_QUEUE_DRIVER_HIGH 0x094
#define KF_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define KF_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define KF_MMIO_CONFIG_GENERATION 0x0fc
#define KF_MMIO_CONFIG 0x100

#define KF_MMIO_MAGIC 0x74726976u /* "virt" */
#define KF_MMIO_VERSION_MODERN 2u
#define KF_VIRTIO_ID_VSOCK 19u

/* Device status bits (virtio 1.x, 2.1). */
#define KF_STATUS_ACKNOWLEDGE 1u
#define KF_STATUS_DRIVER 2u
#define KF_STATUS_DRIVER_OK 4u
#define KF_STATUS_FEATURES_OK 8u
#define KF_STATUS_NEEDS_RESET 0x40u
#define KF_STATUS_FAILED 0x80u

#define KF_VIRTIO_F_VERSION_1 32u

/* Raw accessors; `off` is a register offset inside the window. */
uint32_t kf_mmio_read(uint32_t off);
void kf_mmio_write(uint32_t off, uint32_t value);

/* Remembers the window and checks MagicValue, Version 2 and DeviceID:
 * panics (KF_PANIC_MMIO_*, KF_PANIC_DEVICE_ID) on a mismatch. */
void kf_mmio_attach(uint64_t gpa, uint32_t device_id);

/* Reset, ACKNOWLEDGE, DRIVER, and feature negotiation: accepts exactly
 * VIRTIO_F_VERSION_1 and confirms FEATURES_OK. Panics when it cannot. */
void kf_mmio_negotiate(void);

/* Selects `queue`, checks that it is not live, returns QueueNumMax (> 0). */
uint32_t kf_mmio_queue_max(uint16_t queue);

/* Programs `queue` (size, ring addresses) and sets QueueReady. */
void kf_mmio_queue_enable(uint16_t queue, uint16_t size, uint64_t desc, uint64_t avail,
                          uint64_t used);

/* A 64-bit field of the device config space, read as two 32-bit halves under
 * one ConfigGeneration (retried while the generation changes). */
uint64_t kf_mmio_config_read64(uint32_t off);

/* Sets DRIVER_OK and checks the device did not flag NEEDS_RESET/FAILED. */
void kf_mmio_driver_ok(void);

/* Tells the device that `queue` has new available buffers. */
void kf_mmio_notify(uint16_t queue);

/* Sets FAILED (best effort) and panics with code/detail. */
__attribute__((noreturn)) void kf_mmio_fail(uint32_t code, uint64_t detail);

#endif /* KF_AGENT_BARE_VIRTIO_MMIO_H_ */
