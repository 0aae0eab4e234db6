/*
 * The protocol core (core.h): request dispatch and framing, the same on
 * every platform. What differs (memory, RNG, clock, hostname) is behind
 * struct kf_core_ops.
 */
#include "agent/core/core.h"

struct identity {
  char sandbox_id[KF_AGENT_STR_MAX];
  char hostname[KF_AGENT_STR_MAX];
  uint64_t wall_clock_unix_ns;
  uint64_t identity_sets;
};

static struct {
  const struct kf_core_ops* ops;
  uint64_t pings, pages_dirtied, requests_served;
  struct identity identity;
} g;

/* The decoded request and the response being built: static, as one holds up
 * to 256 bytes of entropy and the other 4 KiB of Random data (the bare
 * guest's stack is small). */
static struct kf_agent_request g_req;
static struct kf_agent_response g_resp;

void kf_core_init(const struct kf_core_ops* ops) { g.ops = ops; }

uint64_t kf_core_requests_served(void) { return g.requests_served; }
uint64_t kf_core_pages_dirtied(void) { return g.pages_dirtied; }

void kf_core_set_error(struct kf_agent_error* err, int32_t code, const char* message) {
  err->code = code;
  size_t i = 0;
  for (; message[i] != 0 && i + 1 < KF_AGENT_ERROR_MAX; ++i) err->message[i] = message[i];
  err->message[i] = 0;
}

void kf_core_dirty_pages(uint8_t* base, uint64_t pages, uint64_t value) {
  for (uint64_t i = 0; i < pages; ++i) {
    volatile uint64_t* page = (volatile uint64_t*)(base + (i << 12));
    for (int w = 0; w < 512; w += 64) page[w] = value ^ (i << 1) ^ (uint64_t)w;
  }
}

static void reply_error(struct kf_agent_response* resp, int32_t code, const char* message) {
  resp->kind = KF_AGENT_ERROR;
  kf_core_set_error(&resp->u.error, code, message);
}

static void copy_string(char* dst, const char* src) {
  size_t i = 0;
  for (; src[i] != 0 && i + 1 < KF_AGENT_STR_MAX; ++i) dst[i] = src[i];
  dst[i] = 0;
}

/* Runs a platform operation: rc 0 = its reply of `kind`; else its error. */
static void finish(struct kf_agent_response* resp, uint32_t kind, int rc) {
  resp->kind = rc == 0 ? kind : KF_AGENT_ERROR;
}

static void set_identity(struct kf_agent_set_identity_req* r, struct kf_agent_response* resp) {
  copy_string(g.identity.sandbox_id, r->sandbox_id);
  copy_string(g.identity.hostname, r->hostname);
  g.identity.wall_clock_unix_ns = r->wall_clock_unix_ns;
  int rc = g.ops->set_identity(r, &resp->u.error);
  kf_pb_zero(r->entropy, sizeof r->entropy); /* never kept, never echoed */
  ++g.identity.identity_sets;
  if (rc == 0) resp->u.set_identity.identity_sets = g.identity.identity_sets;
  finish(resp, KF_AGENT_SET_IDENTITY, rc);
}

static int is_container_kind(uint32_t kind) {
  switch (kind) {
    case KF_AGENT_CREATE_CONTAINER:
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_EXEC_PROCESS:
    case KF_AGENT_WAIT_PROCESS:
    case KF_AGENT_SIGNAL_PROCESS:
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR:
    case KF_AGENT_WRITE_STDIN:
    case KF_AGENT_CLOSE_STDIN:
    case KF_AGENT_REMOVE_CONTAINER:
      return 1;
    default:
      return 0;
  }
}

/* Returns 0, or KF_CORE_PENDING (a container call with no answer yet). */
static int dispatch(struct kf_agent_request* req, struct kf_agent_response* resp) {
  const struct kf_core_ops* ops = g.ops;
  int rc;
  if (is_container_kind(req->kind)) { /* ops->container is set: see kf_core_serve_request */
    rc = ops->container(req, resp);
    if (rc == KF_CORE_PENDING) return rc;
    finish(resp, req->kind, rc);
    return 0;
  }
  switch (req->kind) {
    case KF_AGENT_PING:
      resp->kind = KF_AGENT_PING;
      resp->u.ping.echo = req->u.ping.echo;
      resp->u.ping.pings_served = ++g.pings;
      return 0;
    case KF_AGENT_SET_IDENTITY:
      set_identity(&req->u.set_identity, resp);
      return 0;
    case KF_AGENT_GET_IDENTITY:
      resp->kind = KF_AGENT_GET_IDENTITY;
      copy_string(resp->u.get_identity.sandbox_id, g.identity.sandbox_id);
      copy_string(resp->u.get_identity.hostname, g.identity.hostname);
      resp->u.get_identity.wall_clock_unix_ns = g.identity.wall_clock_unix_ns;
      resp->u.get_identity.identity_sets = g.identity.identity_sets;
      return 0;
    case KF_AGENT_GET_STATS:
      resp->kind = KF_AGENT_GET_STATS;
      ops->memory(&resp->u.get_stats.mem_total, &resp->u.get_stats.mem_initialised);
      resp->u.get_stats.pages_dirtied = g.pages_dirtied;
      resp->u.get_stats.requests_served = g.requests_served;
      return 0;
    case KF_AGENT_DIRTY_PAGES:
      rc = ops->dirty_pages(&req->u.dirty_pages, &resp->u.dirty_pages, &resp->u.error);
      if (rc == 0) g.pages_dirtied += resp->u.dirty_pages.pages;
      finish(resp, KF_AGENT_DIRTY_PAGES, rc);
      return 0;
    case KF_AGENT_HASH_RANGE:
      rc = ops->hash_range(&req->u.hash_range, &resp->u.hash_range, &resp->u.error);
      finish(resp, KF_AGENT_HASH_RANGE, rc);
      return 0;
    case KF_AGENT_RANDOM:
      rc = ops->random(resp->u.random.data, req->u.random.bytes, &resp->u.error);
      if (rc == 0) resp->u.random.len = req->u.random.bytes;
      finish(resp, KF_AGENT_RANDOM, rc);
      return 0;
    case KF_AGENT_READ_FILE:
      if (ops->read_file == 0) {
        reply_error(resp, KF_AGENT_ERR_UNKNOWN_REQUEST, "ReadFile: this guest has no files");
        return 0;
      }
      rc = ops->read_file(&req->u.read_file, &resp->u.read_file, &resp->u.error);
      finish(resp, KF_AGENT_READ_FILE, rc);
      return 0;
    default:
      reply_error(resp, KF_AGENT_ERR_UNKNOWN_REQUEST, "empty or unknown request");
      return 0;
  }
}

int kf_core_serve_request(const uint8_t* buf, size_t len, struct kf_agent_response* resp) {
  ++g.requests_served;
  const char* why = "";
  int pending = 0;
  int rc = kf_agent_decode_request(buf, len, &g_req);
  if (rc != KF_PB_OK) {
    reply_error(resp, KF_AGENT_ERR_BAD_MESSAGE, kf_pb_strerror(rc));
  } else if (is_container_kind(g_req.kind) && g.ops->container == 0) {
    /* Before the checks: a platform without containers knows none of them. */
    reply_error(resp, KF_AGENT_ERR_UNKNOWN_REQUEST, "containers: this guest runs none");
  } else if ((rc = kf_agent_request_check_why(&g_req, &why)) != 0) {
    reply_error(resp, rc, why);
  } else {
    pending = dispatch(&g_req, resp);
  }
  kf_pb_zero(&g_req.u.set_identity.entropy, sizeof g_req.u.set_identity.entropy);
  if (pending) --g.requests_served; /* counted when it is answered */
  return pending;
}

/* One response frame into out[0..cap); an encoding failure becomes an
 * INTERNAL ErrorReply. Returns the frame's length, 0 if nothing fits. */
static size_t encode_frame(uint32_t stream_id, struct kf_agent_response* r, uint8_t* out,
                           size_t cap) {
  if (cap < KF_AGENT_FRAME_HEADER_SIZE) return 0;
  size_t n = 0;
  int rc = kf_agent_encode_response(r, out + KF_AGENT_FRAME_HEADER_SIZE,
                                    cap - KF_AGENT_FRAME_HEADER_SIZE, &n);
  if (rc != KF_PB_OK) {
    reply_error(r, KF_AGENT_ERR_INTERNAL, kf_pb_strerror(rc));
    rc = kf_agent_encode_response(r, out + KF_AGENT_FRAME_HEADER_SIZE,
                                  cap - KF_AGENT_FRAME_HEADER_SIZE, &n);
    if (rc != KF_PB_OK) return 0;
  }
  struct kf_agent_frame_header h = {(uint32_t)n, stream_id, KF_AGENT_FRAME_RESPONSE, 0};
  if (kf_agent_frame_header_encode(&h, out) != KF_PB_OK) return 0;
  return KF_AGENT_FRAME_HEADER_SIZE + n;
}

size_t kf_core_ready_frame(uint8_t* out, size_t cap) {
  if (cap < KF_CORE_REPLY_FRAME_MAX) return 0;
  kf_pb_zero(&g_resp.u.ready, sizeof g_resp.u.ready);
  g_resp.kind = KF_AGENT_READY;
  g.ops->ready(&g_resp.u.ready);
  g_resp.u.ready.agent_version = KF_AGENT_VERSION;
  g_resp.u.ready.guest_kind = g.ops->guest_kind;
  return encode_frame(KF_AGENT_STREAM_AGENT, &g_resp, out, cap);
}

int kf_core_serve_frame(const uint8_t* in, size_t avail, uint8_t* out, size_t cap, size_t* consumed,
                        size_t* out_len) {
  *consumed = 0;
  *out_len = 0;
  if (avail < KF_AGENT_FRAME_HEADER_SIZE) return KF_CORE_FRAME_NEED_MORE;
  struct kf_agent_frame_header h;
  int rc = kf_agent_frame_header_decode(in, &h);
  if (rc == KF_PB_OK && h.type != KF_AGENT_FRAME_REQUEST) rc = KF_PB_ERR_FRAME_TYPE;
  if (rc == KF_PB_OK && h.length > KF_CORE_REQUEST_PAYLOAD_MAX) rc = KF_PB_ERR_FRAME_LENGTH;
  if (rc != KF_PB_OK) {
    reply_error(&g_resp, KF_AGENT_ERR_BAD_FRAME, kf_pb_strerror(rc));
    if (cap >= KF_CORE_REPLY_FRAME_MAX) *out_len = encode_frame(h.stream_id, &g_resp, out, cap);
    return KF_CORE_FRAME_BAD;
  }
  if (avail - KF_AGENT_FRAME_HEADER_SIZE < h.length) return KF_CORE_FRAME_NEED_MORE;
  if (kf_core_serve_request(in + KF_AGENT_FRAME_HEADER_SIZE, h.length, &g_resp) != 0)
    return KF_CORE_FRAME_PENDING;
  *out_len = encode_frame(h.stream_id, &g_resp, out, cap);
  *consumed = KF_AGENT_FRAME_HEADER_SIZE + h.length;
  return KF_CORE_FRAME_SERVED;
}
