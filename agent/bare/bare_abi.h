/*
 * The contract between the bare guest (agent/bare/) and the host VMM: guest
 * physical layout, paravirtual ports, the boot info and the request mailbox.
 * Plain C so both the freestanding guest and the C++ host include it.
 *
 * Everything the host reads from guest memory is hostile: the host checks
 * every length and address in the mailbox before using it.
 */
#ifndef KF_AGENT_BARE_BARE_ABI_H_
#define KF_AGENT_BARE_BARE_ABI_H_

#include <stdint.h>

#define KF_BARE_ABI_VERSION 1u
#define KF_BARE_MAGIC 0x4b46424152453031ull /* "KFBARE01" */

/* Guest physical layout (identity-mapped, 2 MiB pages, all user-accessible). */
#define KF_BARE_GDT_GPA 0x1000ull
#define KF_BARE_TSS_GPA 0x1800ull
#define KF_BARE_PML4_GPA 0x2000ull
#define KF_BARE_PDPT_GPA 0x3000ull
#define KF_BARE_PD_GPA 0x4000ull /* 4 pages: up to 4 GiB of guest memory */
#define KF_BARE_MAX_MEM (4ull << 30)
#define KF_BARE_MAILBOX_GPA 0x8000ull
#define KF_BARE_MAILBOX_SIZE 0x1000ull
#define KF_BARE_STACK_TOP 0x80000ull
#define KF_BARE_IMAGE_GPA 0x100000ull
#define KF_BARE_IMAGE_MAX 0x100000ull
#define KF_BARE_INIT_GPA 0x400000ull /* start of the memory the guest "boots" */
#define KF_BARE_MIN_MEM (8ull << 20)

/* Paravirtual ports. Port I/O from CPL3 (IOPL=3) exits to the VMM. */
#define KF_PORT_SIGNAL 0x0f00 /* out32: one of KF_SIGNAL_* */
#define KF_PORT_WAIT 0x0f04   /* in32: blocks in the VMM; 1 = request in mailbox */

#define KF_SIGNAL_READY 1u /* booted; boot results in mailbox ret[] */
#define KF_SIGNAL_DONE 2u  /* the request in the mailbox has its answer */
#define KF_SIGNAL_PANIC 3u /* the guest gave up; reason code in mailbox status */

/* Requests. */
#define KF_OP_PING 1u         /* arg0: echo -> ret0: echo, ret1: pings served */
#define KF_OP_GET_IDENTITY 2u /* -> data: struct kf_identity (entropy zeroed) */
#define KF_OP_SET_IDENTITY 3u /* data: struct kf_identity; reseeds the RNG */
#define KF_OP_DIRTY_PAGES 4u  /* arg0: gpa, arg1: pages, arg2: value */
#define KF_OP_HASH_RANGE 5u   /* arg0: gpa, arg1: bytes (multiple of 8) -> ret0 */
#define KF_OP_RANDOM 6u       /* arg0: bytes (<= data size) -> data */

#define KF_STATUS_OK 0u
#define KF_STATUS_BAD_OP 1u
#define KF_STATUS_BAD_RANGE 2u
#define KF_STATUS_BAD_LENGTH 3u

#define KF_ID_MAX 64u
#define KF_ENTROPY_BYTES 32u

struct kf_identity {
  char sandbox_id[KF_ID_MAX]; /* NUL-terminated */
  char hostname[KF_ID_MAX];   /* NUL-terminated */
  uint8_t entropy[KF_ENTROPY_BYTES];
  uint64_t wall_clock_ns;     /* host time at hand-out (Unix epoch) */
  uint64_t identity_sets;     /* how many SET_IDENTITY this guest served */
};

/* Written by the loader before the first instruction; read-only afterwards. */
struct kf_boot_info {
  uint64_t magic;
  uint32_t abi_version;
  uint32_t reserved;
  uint64_t mem_size;
  uint64_t init_gpa;
  uint64_t init_size; /* bytes the guest initialises at boot (--init-mib) */
  uint64_t seed;      /* template RNG seed */
};

#define KF_MAILBOX_DATA_MAX 3840u

struct kf_mailbox {
  struct kf_boot_info boot;
  uint64_t seq;     /* host increments per request; guest echoes in done_seq */
  uint64_t done_seq;
  uint32_t op;
  uint32_t status;
  uint64_t arg[4];
  uint64_t ret[4];
  uint32_t len; /* request or answer bytes in data[] */
  uint32_t reserved2;
  uint8_t data[KF_MAILBOX_DATA_MAX];
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
static_assert(sizeof(struct kf_mailbox) <= KF_BARE_MAILBOX_SIZE, "mailbox fits its page");
#else
_Static_assert(sizeof(struct kf_mailbox) <= KF_BARE_MAILBOX_SIZE, "mailbox fits its page");
#endif

#endif /* KF_AGENT_BARE_BARE_ABI_H_ */
