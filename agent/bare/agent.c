/*
 * The bare agent: a freestanding guest that runs at CPL3 with no kernel.
 *
 * Boot: initialise boot.init_size bytes at boot.init_gpa with a known pattern
 * (the stand-in for the expensive start-up a template saves), signal READY,
 * then serve requests from the mailbox forever. Idle = blocked in the VMM on
 * an `in` from KF_PORT_WAIT: no spinning, so an idle clone uses no CPU.
 *
 * The RNG is xoshiro256** seeded from the boot seed and reseeded from the
 * entropy every SET_IDENTITY brings: clones of one template share the RNG
 * state until then, which is exactly why the factory sends fresh entropy to
 * each clone. It is not a cryptographic generator.
 */
#include "agent/bare/bare_abi.h"

static inline void outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}

struct agent {
  volatile struct kf_mailbox* mb;
  uint64_t mem_size;
  uint64_t pings;
  uint64_t rng[4];
  struct kf_identity identity;
};

static struct agent g;

static uint64_t splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(void) {
  uint64_t* s = g.rng;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Mixes new material into the whole RNG state. */
static void rng_mix(uint64_t material) {
  uint64_t x = material;
  for (int i = 0; i < 4; ++i) g.rng[i] ^= splitmix64(&x);
  if ((g.rng[0] | g.rng[1] | g.rng[2] | g.rng[3]) == 0) g.rng[0] = 1;
}

static void copy_bytes(void* dst, const volatile void* src, uint64_t n) {
  uint8_t* d = (uint8_t*)dst;
  const volatile uint8_t* s = (const volatile uint8_t*)src;
  for (uint64_t i = 0; i < n; ++i) d[i] = s[i];
}

static void copy_out(volatile void* dst, const void* src, uint64_t n) {
  volatile uint8_t* d = (volatile uint8_t*)dst;
  const uint8_t* s = (const uint8_t*)src;
  for (uint64_t i = 0; i < n; ++i) d[i] = s[i];
}

/* A range the guest may touch on request: inside memory, above the image. */
static int range_ok(uint64_t gpa, uint64_t bytes) {
  if (gpa < KF_BARE_INIT_GPA || bytes > g.mem_size) return 0;
  return gpa <= g.mem_size - bytes;
}

static void boot_init_memory(uint64_t gpa, uint64_t size) {
  volatile uint64_t* p = (volatile uint64_t*)(uintptr_t)gpa;
  for (uint64_t i = 0; i < size / 8; ++i) p[i] = kf_init_pattern(gpa + i * 8);
}

static uint32_t do_set_identity(volatile struct kf_mailbox* mb) {
  if (mb->len != sizeof(struct kf_identity)) return KF_STATUS_BAD_LENGTH;
  struct kf_identity id;
  copy_bytes(&id, mb->data, sizeof id);
  id.sandbox_id[KF_ID_MAX - 1] = 0;
  id.hostname[KF_ID_MAX - 1] = 0;
  for (uint32_t i = 0; i < KF_ENTROPY_BYTES / 8; ++i) {
    uint64_t word = 0;
    for (int b = 0; b < 8; ++b) word |= (uint64_t)id.entropy[i * 8 + b] << (8 * b);
    rng_mix(word);
  }
  rng_mix(id.wall_clock_ns);
  for (uint32_t i = 0; i < KF_ENTROPY_BYTES; ++i) id.entropy[i] = 0;  /* never echoed */
  id.identity_sets = g.identity.identity_sets + 1;
  g.identity = id;
  return KF_STATUS_OK;
}

static uint32_t do_dirty_pages(volatile struct kf_mailbox* mb) {
  uint64_t gpa = mb->arg[0], pages = mb->arg[1], value = mb->arg[2];
  if ((gpa & 0xfff) != 0 || pages > (g.mem_size >> 12) || !range_ok(gpa, pages << 12))
    return KF_STATUS_BAD_RANGE;
  for (uint64_t i = 0; i < pages; ++i) {
    volatile uint64_t* page = (volatile uint64_t*)(uintptr_t)(gpa + (i << 12));
    for (int w = 0; w < 512; w += 64) page[w] = value ^ (i << 1) ^ (uint64_t)w;
  }
  mb->ret[0] = pages;
  return KF_STATUS_OK;
}

static uint32_t do_hash_range(volatile struct kf_mailbox* mb) {
  uint64_t gpa = mb->arg[0], bytes = mb->arg[1];
  if ((gpa & 7) != 0 || (bytes & 7) != 0) return KF_STATUS_BAD_LENGTH;
  if (bytes > g.mem_size || gpa > g.mem_size - bytes) return KF_STATUS_BAD_RANGE;
  mb->ret[0] = kf_hash_words(KF_HASH_SEED, (const uint64_t*)(uintptr_t)gpa, bytes / 8);
  return KF_STATUS_OK;
}

static uint32_t do_random(volatile struct kf_mailbox* mb) {
  uint64_t bytes = mb->arg[0];
  if (bytes > KF_MAILBOX_DATA_MAX) return KF_STATUS_BAD_LENGTH;
  for (uint64_t i = 0; i < bytes; i += 8) {
    uint64_t r = rng_next();
    for (uint64_t b = 0; b < 8 && i + b < bytes; ++b) mb->data[i + b] = (uint8_t)(r >> (8 * b));
  }
  mb->len = (uint32_t)bytes;
  return KF_STATUS_OK;
}

static uint32_t serve(volatile struct kf_mailbox* mb) {
  mb->len = mb->op == KF_OP_SET_IDENTITY ? mb->len : 0;
  switch (mb->op) {
    case KF_OP_PING:
      mb->ret[0] = mb->arg[0];
      mb->ret[1] = ++g.pings;
      return KF_STATUS_OK;
    case KF_OP_GET_IDENTITY:
      copy_out(mb->data, &g.identity, sizeof g.identity);
      mb->len = sizeof g.identity;
      return KF_STATUS_OK;
    case KF_OP_SET_IDENTITY: {
      uint32_t status = do_set_identity(mb);
      mb->len = 0;
      return status;
    }
    case KF_OP_DIRTY_PAGES:
      return do_dirty_pages(mb);
    case KF_OP_HASH_RANGE:
      return do_hash_range(mb);
    case KF_OP_RANDOM:
      return do_random(mb);
    default:
      return KF_STATUS_BAD_OP;
  }
}

void kf_main(volatile struct kf_mailbox* mb) {
  g.mb = mb;
  g.mem_size = mb->boot.mem_size;
  if (mb->boot.magic != KF_BARE_MAGIC || mb->boot.abi_version != KF_BARE_ABI_VERSION) {
    mb->status = 0xbad0;
    outl(KF_PORT_SIGNAL, KF_SIGNAL_PANIC);
  }
  uint64_t seed = mb->boot.seed;
  rng_mix(splitmix64(&seed));
  uint64_t init_gpa = mb->boot.init_gpa, init_size = mb->boot.init_size & ~7ull;
  if (range_ok(init_gpa, init_size)) boot_init_memory(init_gpa, init_size);
  mb->ret[0] = init_size;
  mb->ret[1] = range_ok(init_gpa, init_size)
                   ? kf_hash_words(KF_HASH_SEED, (const uint64_t*)(uintptr_t)init_gpa, init_size / 8)
                   : 0;
  outl(KF_PORT_SIGNAL, KF_SIGNAL_READY);
  for (;;) {
    if (inl(KF_PORT_WAIT) == 0) continue; /* woken without work (e.g. resumed clone) */
    mb->status = serve(mb);
    mb->done_seq = mb->seq;
    outl(KF_PORT_SIGNAL, KF_SIGNAL_DONE);
  }
}
