/*
 * The bare platform's operations for the protocol core. Ranges follow the
 * old mailbox rules: DirtyPages writes only at or above KF_BARE_INIT_GPA
 * (never the image, the page tables or the driver's rings); HashRange may
 * read anywhere inside memory.
 */
#include "agent/bare/serve.h"

#include "agent/bare/bare.h"
#include "agent/bare/rng.h"
#include "agent/core/core.h"

static struct { uint64_t mem_size, init_bytes, init_hash; } g;

static void ready(struct kf_agent_ready* r) {
  r->mem_total = g.mem_size;
  r->init_bytes = g.init_bytes;
  r->init_hash = g.init_hash;
  r->boot_ns = 0;
}

static void memory(uint64_t* mem_total, uint64_t* mem_initialised) {
  *mem_total = g.mem_size;
  *mem_initialised = g.init_bytes;
}

/* A range the guest may write on request: inside memory, above the image. */
static int writable_range(uint64_t gpa, uint64_t bytes) {
  if (gpa < KF_BARE_INIT_GPA || bytes > g.mem_size) return 0;
  return gpa <= g.mem_size - bytes;
}

/* No clock, no hostname: the entropy (little-endian words, a short last word
 * zero-padded) and the wall clock go into the RNG. */
static int set_identity(const struct kf_agent_set_identity_req* r, struct kf_agent_error* err) {
  (void)err;
  for (uint32_t i = 0; i < r->entropy_len; i += 8) {
    uint64_t word = 0;
    for (uint32_t b = 0; b < 8 && i + b < r->entropy_len; ++b)
      word |= (uint64_t)r->entropy[i + b] << (8 * b);
    kf_rng_mix(word);
  }
  kf_rng_mix(r->wall_clock_unix_ns);
  return 0;
}

static int dirty_pages(const struct kf_agent_dirty_pages_req* r,
                       struct kf_agent_dirty_pages_reply* reply, struct kf_agent_error* err) {
  uint64_t gpa = r->gpa, pages = r->pages;
  if ((gpa & 0xfff) != 0 || pages > (g.mem_size >> 12) || !writable_range(gpa, pages << 12)) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_RANGE, "dirty_pages: range outside usable memory");
    return -1;
  }
  kf_core_dirty_pages((uint8_t*)(uintptr_t)gpa, pages, r->value);
  reply->pages = pages;
  return 0;
}

static int hash_range(const struct kf_agent_hash_range_req* r,
                      struct kf_agent_hash_range_reply* reply, struct kf_agent_error* err) {
  if ((r->gpa & 7) != 0 || (r->bytes & 7) != 0) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_ARGUMENT,
                      "hash_range: gpa and bytes must be multiples of 8");
    return -1;
  }
  if (r->bytes > g.mem_size || r->gpa > g.mem_size - r->bytes) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_RANGE, "hash_range: range outside memory");
    return -1;
  }
  reply->hash = kf_hash_words(KF_HASH_SEED, (const uint64_t*)(uintptr_t)r->gpa, r->bytes / 8);
  return 0;
}

static int random_bytes(uint8_t* out, uint32_t bytes, struct kf_agent_error* err) {
  (void)err;
  for (uint32_t i = 0; i < bytes; i += 8) {
    uint64_t r = kf_rng_next();
    for (uint32_t b = 0; b < 8 && i + b < bytes; ++b) out[i + b] = (uint8_t)(r >> (8 * b));
  }
  return 0;
}

static const struct kf_core_ops g_ops = {
    KF_AGENT_GUEST_BARE, ready, memory, set_identity, dirty_pages, hash_range, random_bytes,
    0, /* read_file: no files here */
    0, /* container: no containers either */
};

void kf_serve_init(uint64_t mem_size, uint64_t init_bytes, uint64_t init_hash) {
  g.mem_size = mem_size;
  g.init_bytes = init_bytes;
  g.init_hash = init_hash;
  kf_core_init(&g_ops);
}
