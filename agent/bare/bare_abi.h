/*
 * The contract between the bare guest (agent/bare/) and the host VMM: guest
 * physical layout, paravirtual ports, the boot info and the panic codes.
 * Plain C so both the freestanding guest and the C++ host include it.
 *
 * The agent protocol itself travels over virtio-vsock (docs/AGENT_CHANNEL.md):
 * the guest drives a virtio-mmio (version 2) vsock device at
 * KF_BARE_VSOCK_MMIO_GPA by polling, and serves proto/agent.proto on vsock
 * port 1024. Everything the host reads from guest memory is hostile.
 */
#ifndef KF_AGENT_BARE_BARE_ABI_H_
#define KF_AGENT_BARE_BARE_ABI_H_

#include <stdint.h>

#define KF_BARE_ABI_VERSION 2u
#define KF_BARE_MAGIC 0x4b46424152453031ull /* "KFBARE01" */

/* Guest physical layout (identity-mapped, 2 MiB pages, all user-accessible). */
#define KF_BARE_GDT_GPA 0x1000ull
#define KF_BARE_TSS_GPA 0x1800ull
#define KF_BARE_PML4_GPA 0x2000ull
#define KF_BARE_PDPT_GPA 0x3000ull
#define KF_BARE_PD_GPA 0x4000ull /* 4 pages: the low 4 GiB (memory + MMIO window) */
#define KF_BARE_PD_PAGES 4ull
#define KF_BARE_BOOT_GPA 0x8000ull /* struct kf_boot_info; RDI at entry */
#define KF_BARE_BOOT_SIZE 0x1000ull
#define KF_BARE_STACK_TOP 0x80000ull /* grows down towards the boot page */
#define KF_BARE_IMAGE_GPA 0x100000ull
#define KF_BARE_IMAGE_MAX 0x100000ull
/* The vsock driver's rings and packet buffers (guest-owned, never hashed by
 * the protocol's DirtyPages, which starts at KF_BARE_INIT_GPA). */
#define KF_BARE_DRIVER_GPA 0x200000ull
#define KF_BARE_DRIVER_SIZE 0x200000ull
#define KF_BARE_INIT_GPA 0x400000ull /* start of the memory the guest "boots" */
#define KF_BARE_MIN_MEM (8ull << 20)
#define KF_BARE_MAX_MEM 0xc0000000ull /* 3 GiB: RAM stays below the MMIO window */

/* The virtio-mmio window of the vsock device. No memory slot backs it, so
 * every access exits to the VMM as MMIO. The loader maps the 2 MiB page that
 * holds it identity, user, writable, cache-disabled (PCD|PWT). */
#define KF_BARE_VSOCK_MMIO_GPA 0xd0000000ull
#define KF_BARE_VSOCK_MMIO_SIZE 0x1000ull
#define KF_BARE_GUEST_CID 3ull /* the device's config guest_cid, every clone */

/* Paravirtual ports. Port I/O from CPL3 (IOPL=3) exits to the VMM. */
#define KF_PORT_SIGNAL 0x0f00 /* out32: one of KF_SIGNAL_* */
/* in32: blocks in the VMM until the device has put something in a used ring
 * (or queued an event) since the last WAIT returned; then returns nonzero.
 * 0 = a spurious wake (e.g. after a clone restore); the guest polls anyway. */
#define KF_PORT_WAIT 0x0f04

/* Value 2 (DONE of ABI 1's mailbox) is retired, never reused. */
#define KF_SIGNAL_READY 1u /* device DRIVER_OK, rx/event buffers posted, port 1024 listens */
#define KF_SIGNAL_PANIC 3u /* the guest gave up; reason in kf_boot_info.panic_code */

/* kf_boot_info.flags */
#define KF_BOOT_FLAG_HOSTILE 1u /* test mode: scribble the virtqueues, serve nothing */
#define KF_BOOT_FLAGS_KNOWN KF_BOOT_FLAG_HOSTILE

/* kf_boot_info.panic_code: why the guest sent KF_SIGNAL_PANIC. panic_detail
 * holds the offending value where there is one. */
#define KF_PANIC_NONE 0u          /* no panic (or kf_main returned) */
#define KF_PANIC_BAD_BOOT_INFO 1u /* bad magic/abi_version (detail: version), mem_size or flags */
#define KF_PANIC_INIT_RANGE 2u    /* init_gpa/init_size outside memory (detail: size) */
#define KF_PANIC_MMIO_GPA 3u      /* vsock_mmio_gpa is not KF_BARE_VSOCK_MMIO_GPA */
#define KF_PANIC_MMIO_MAGIC 4u    /* MagicValue != "virt" (detail: value read) */
#define KF_PANIC_MMIO_VERSION 5u  /* Version != 2 (detail: value read) */
#define KF_PANIC_DEVICE_ID 6u     /* DeviceID != 19 (detail: value read) */
#define KF_PANIC_RESET_TIMEOUT 7u /* Status did not read 0 after reset (detail: status) */
#define KF_PANIC_NO_VERSION_1 8u  /* VIRTIO_F_VERSION_1 not offered (detail: features) */
#define KF_PANIC_FEATURES_REFUSED 9u /* FEATURES_OK did not stick (detail: status) */
#define KF_PANIC_QUEUE_BUSY 10u      /* QueueReady was not 0 before setup (detail: queue) */
#define KF_PANIC_QUEUE_MISSING 11u   /* QueueNumMax 0 (detail: queue) */
#define KF_PANIC_QUEUE_NOT_READY 12u /* QueueReady did not read 1 after setup (detail: queue) */
#define KF_PANIC_BAD_CID 13u         /* config guest_cid is reserved (< 3) or >= 2^32 (detail) */
#define KF_PANIC_DEVICE_STATUS 14u   /* NEEDS_RESET or FAILED right after DRIVER_OK (detail) */

/* Written by the loader before the first instruction (RDI points here). The
 * guest writes only the fields marked "guest". One page at KF_BARE_BOOT_GPA. */
struct kf_boot_info {
  uint64_t magic;          /* KF_BARE_MAGIC */
  uint32_t abi_version;    /* KF_BARE_ABI_VERSION */
  uint32_t flags;          /* KF_BOOT_FLAG_* */
  uint64_t mem_size;       /* guest memory, bytes */
  uint64_t init_gpa;       /* KF_BARE_INIT_GPA */
  uint64_t init_size;      /* bytes the guest initialises at boot (--init-mib) */
  uint64_t seed;           /* template RNG seed (also seeds hostile mode) */
  uint64_t vsock_mmio_gpa; /* KF_BARE_VSOCK_MMIO_GPA */
  /* guest: results, for the host to read without the vsock channel */
  uint64_t init_bytes;    /* bytes initialised (init_size rounded down to 8) */
  uint64_t init_hash;     /* kf_hash_words over them, as in the Ready message */
  uint32_t panic_code;    /* KF_PANIC_* before KF_SIGNAL_PANIC */
  uint32_t device_resets; /* times the guest reset a device that set NEEDS_RESET */
  uint64_t panic_detail;
};

/* Pattern the guest writes at boot: a function of the address alone, so the
 * host can check any clone's memory without running the guest. */
static inline uint64_t kf_init_pattern(uint64_t gpa) {
  return gpa * 0x9e3779b97f4a7c15ull ^ 0x6b66616374727921ull;
}

/* The range hash both sides compute: FNV-1a over 64-bit words. */
#define KF_HASH_SEED 0xcbf29ce484222325ull
static inline uint64_t kf_hash_words(uint64_t h, const uint64_t* words, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    h ^= words[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

#ifdef __cplusplus
#define KF_BARE_STATIC_ASSERT static_assert
#else
#define KF_BARE_STATIC_ASSERT _Static_assert
#endif
KF_BARE_STATIC_ASSERT(sizeof(struct kf_boot_info) <= KF_BARE_BOOT_SIZE, "boot info fits its page");
KF_BARE_STATIC_ASSERT(KF_BARE_MAX_MEM <= KF_BARE_VSOCK_MMIO_GPA, "MMIO window above memory");
KF_BARE_STATIC_ASSERT(KF_BARE_VSOCK_MMIO_GPA + KF_BARE_VSOCK_MMIO_SIZE <= KF_BARE_PD_PAGES << 30,
                      "page tables reach the MMIO window");
KF_BARE_STATIC_ASSERT(KF_BARE_DRIVER_GPA + KF_BARE_DRIVER_SIZE <= KF_BARE_INIT_GPA,
                      "driver region below the init region");
#undef KF_BARE_STATIC_ASSERT

#endif /* KF_AGENT_BARE_BARE_ABI_H_ */
