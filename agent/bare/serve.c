/*
 * The requests. Ranges follow the old mailbox rules: DirtyPages writes only
 * at or above KF_BARE_INIT_GPA (never the image, the page tables or the
 * driver's rings); HashRange may read anywhere inside memory.
 */
#include "agent/bare/serve.h"

#include "agent/bare/bare.h"
#include "agent/bare/rng.h"

struct identity {
  char sandbox_id[KF_AGENT_STR_MAX];
  char hostname[KF_AGENT_STR_MAX];
  uint64_t wall_clock_unix_ns;
  uint64_t identity_sets;
};

static struct {
  uint64_t mem_size, init_bytes, init_hash;
  uint64_t pings, pages_dirtied, requests_served;
  struct identity identity;
} g;

/* The decoded request; static, as it holds up to 256 bytes of entropy. */
static struct kf_agent_request g_req;

void kf_serve_init(uint64_t mem_size, uint64_t init_bytes, uint64_t init_hash) {
  g.mem_size = mem_size;
  g.init_bytes = init_bytes;
  g.init_hash = init_hash;
}

void kf_serve_error(struct kf_agent_response* resp, int32_t code, const char* message) {
  resp->kind = KF_AGENT_ERROR;
  resp->u.error.code = code;
  size_t i = 0;
  for (; message[i] != 0 && i + 1 < KF_AGENT_ERROR_MAX; ++i) resp->u.error.message[i] = message[i];
  resp->u.error.message[i] = 0;
}

void kf_serve_ready(struct kf_agent_response* resp) {
  resp->kind = KF_AGENT_READY;
  resp->u.ready.agent_version = KF_AGENT_VERSION;
  resp->u.ready.guest_kind = KF_AGENT_GUEST_BARE;
  resp->u.ready.mem_total = g.mem_size;
  resp->u.ready.init_bytes = g.init_bytes;
  resp->u.ready.init_hash = g.init_hash;
  resp->u.ready.boot_ns = 0;
}

/* A range the guest may write on request: inside memory, above the image. */
static int writable_range(uint64_t gpa, uint64_t bytes) {
  if (gpa < KF_BARE_INIT_GPA || bytes > g.mem_size) return 0;
  return gpa <= g.mem_size - bytes;
}

static void copy_string(char* dst, const char* src) {
  size_t i = 0;
  for (; src[i] != 0 && i + 1 < KF_AGENT_STR_MAX; ++i) dst[i] = src[i];
  dst[i] = 0;
}

static void set_identity(struct kf_agent_set_identity_req* r, struct kf_agent_response* resp) {
  copy_string(g.identity.sandbox_id, r->sandbox_id);
  copy_string(g.identity.hostname, r->hostname);
  /* Entropy: little-endian words, a short last word zero-padded. */
  for (uint32_t i = 0; i < r->entropy_len; i += 8) {
    uint64_t word = 0;
    for (uint32_t b = 0; b < 8 && i + b < r->entropy_len; ++b)
      word |= (uint64_t)r->entropy[i + b] << (8 * b);
    kf_rng_mix(word);
  }
  kf_rng_mix(r->wall_clock_unix_ns);
  memset(r->entropy, 0, sizeof r->entropy); /* never kept, never echoed */
  g.identity.wall_clock_unix_ns = r->wall_clock_unix_ns;
  resp->kind = KF_AGENT_SET_IDENTITY;
  resp->u.set_identity.identity_sets = ++g.identity.identity_sets;
}

static void dirty_pages(const struct kf_agent_dirty_pages_req* r, struct kf_agent_response* resp) {
  uint64_t gpa = r->gpa, pages = r->pages;
  if ((gpa & 0xfff) != 0 || pages > (g.mem_size >> 12) || !writable_range(gpa, pages << 12)) {
    kf_serve_error(resp, KF_AGENT_ERR_BAD_RANGE, "dirty_pages: range outside usable memory");
    return;
  }
  for (uint64_t i = 0; i < pages; ++i) {
    volatile uint64_t* page = (volatile uint64_t*)(uintptr_t)(gpa + (i << 12));
    for (int w = 0; w < 512; w += 64) page[w] = r->value ^ (i << 1) ^ (uint64_t)w;
  }
  g.pages_dirtied += pages;
  resp->kind = KF_AGENT_DIRTY_PAGES;
  resp->u.dirty_pages.pages = pages;
}

static void hash_range(const struct kf_agent_hash_range_req* r, struct kf_agent_response* resp) {
  if ((r->gpa & 7) != 0 || (r->bytes & 7) != 0) {
    kf_serve_error(resp, KF_AGENT_ERR_BAD_ARGUMENT,
                   "hash_range: gpa and bytes must be multiples of 8");
    return;
  }
  if (r->bytes > g.mem_size || r->gpa > g.mem_size - r->bytes) {
    kf_serve_error(resp, KF_AGENT_ERR_BAD_RANGE, "hash_range: range outside memory");
    return;
  }
  resp->kind = KF_AGENT_HASH_RANGE;
  resp->u.hash_range.hash =
      kf_hash_words(KF_HASH_SEED, (const uint64_t*)(uintptr_t)r->gpa, r->bytes / 8);
}

static void random_bytes(uint32_t bytes, struct kf_agent_response* resp) {
  resp->kind = KF_AGENT_RANDOM;
  for (uint32_t i = 0; i < bytes; i += 8) {
    uint64_t r = kf_rng_next();
    for (uint32_t b = 0; b < 8 && i + b < bytes; ++b)
      resp->u.random.data[i + b] = (uint8_t)(r >> (8 * b));
  }
  resp->u.random.len = bytes;
}

static void dispatch(struct kf_agent_request* req, struct kf_agent_response* resp) {
  switch (req->kind) {
    case KF_AGENT_PING:
      resp->kind = KF_AGENT_PING;
      resp->u.ping.echo = req->u.ping.echo;
      resp->u.ping.pings_served = ++g.pings;
      return;
    case KF_AGENT_SET_IDENTITY:
      set_identity(&req->u.set_identity, resp);
      return;
    case KF_AGENT_GET_IDENTITY:
      resp->kind = KF_AGENT_GET_IDENTITY;
      copy_string(resp->u.get_identity.sandbox_id, g.identity.sandbox_id);
      copy_string(resp->u.get_identity.hostname, g.identity.hostname);
      resp->u.get_identity.wall_clock_unix_ns = g.identity.wall_clock_unix_ns;
      resp->u.get_identity.identity_sets = g.identity.identity_sets;
      return;
    case KF_AGENT_GET_STATS:
      resp->kind = KF_AGENT_GET_STATS;
      resp->u.get_stats.mem_total = g.mem_size;
      resp->u.get_stats.mem_initialised = g.init_bytes;
      resp->u.get_stats.pages_dirtied = g.pages_dirtied;
      resp->u.get_stats.requests_served = g.requests_served;
      return;
    case KF_AGENT_DIRTY_PAGES:
      dirty_pages(&req->u.dirty_pages, resp);
      return;
    case KF_AGENT_HASH_RANGE:
      hash_range(&req->u.hash_range, resp);
      return;
    case KF_AGENT_RANDOM:
      random_bytes(req->u.random.bytes, resp);
      return;
    default:
      kf_serve_error(resp, KF_AGENT_ERR_UNKNOWN_REQUEST, "empty or unknown request");
      return;
  }
}

void kf_serve_request(const uint8_t* buf, size_t len, struct kf_agent_response* resp) {
  ++g.requests_served;
  int rc = kf_agent_decode_request(buf, len, &g_req);
  if (rc != KF_PB_OK) {
    kf_serve_error(resp, KF_AGENT_ERR_BAD_MESSAGE, kf_pb_strerror(rc));
  } else if ((rc = kf_agent_request_check(&g_req)) != 0) {
    kf_serve_error(
        resp, rc,
        rc == KF_AGENT_ERR_UNKNOWN_REQUEST ? "empty or unknown request" : "argument out of range");
  } else {
    dispatch(&g_req, resp);
  }
  memset(&g_req.u.set_identity.entropy, 0, sizeof g_req.u.set_identity.entropy);
}
