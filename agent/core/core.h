/*
 * The agent protocol's core, shared by every platform (agent/bare/,
 * agent/linux/): frames in, frames out (docs/AGENT_PROTOCOL.md). It decodes
 * a request frame, checks it, keeps what is the same everywhere (counters,
 * the recorded identity, Ping, GetIdentity), asks the platform for the rest
 * through a small table of operations, and encodes the response frame.
 *
 * Freestanding C99: nothing beyond agent/proto/ (no libc), no allocation.
 * State is global (one agent per process or guest), not thread-safe: each
 * platform calls it from one thread.
 */
#ifndef KF_AGENT_CORE_CORE_H_
#define KF_AGENT_CORE_CORE_H_

#include <stddef.h>
#include <stdint.h>

#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest request payload the core accepts: a CreateContainer at every
 * cap of agent_codec.h (about 25 KiB; tests/unit_agent_codec_test.cc checks
 * it fits) in the bare agent's 32 KiB receive buffers with its header; other
 * requests are under 5 KiB. A longer frame is BAD_FRAME. */
#define KF_CORE_REQUEST_PAYLOAD_MAX (32u * 1024u - 16u)
/* Room one response frame may need: a 4 KiB Random or ReadFile reply plus
 * its envelope.
 * Every output buffer handed to the core has at least this much. */
#define KF_CORE_REPLY_FRAME_MAX (KF_AGENT_FRAME_HEADER_SIZE + KF_AGENT_READ_FILE_MAX + 64u)

/* container() may answer "not yet": the request stays unanswered and the
 * platform serves it again later (a wait with a timeout; see
 * kf_core_serve_frame). */
#define KF_CORE_PENDING 1

/* What a platform does. Each operation returns 0 and fills its reply, or
 * returns non-zero and fills *err (kf_core_set_error) instead. The reply and
 * *err may share storage: fill only one of them. Every member is required
 * except read_file and container (NULL: the platform has no files, runs no
 * containers: UNKNOWN_REQUEST). */
struct kf_core_ops {
  int32_t guest_kind; /* KF_AGENT_GUEST_* */
  /* Ready: mem_total, init_bytes, init_hash, boot_ns (the core sets the rest). */
  void (*ready)(struct kf_agent_ready* r);
  /* GetStats: mem_total and mem_initialised (the core sets the counters). */
  void (*memory)(uint64_t* mem_total, uint64_t* mem_initialised);
  /* SetIdentity's effects on the platform: reseed its RNG from the entropy
   * (and the clock), set the hostname and clock where it has them. The core
   * records the identity whatever this returns, then wipes the entropy. */
  int (*set_identity)(const struct kf_agent_set_identity_req* r, struct kf_agent_error* err);
  /* r->pages pages dirtied: reply->pages set; the core counts them. */
  int (*dirty_pages)(const struct kf_agent_dirty_pages_req* r,
                     struct kf_agent_dirty_pages_reply* reply, struct kf_agent_error* err);
  int (*hash_range)(const struct kf_agent_hash_range_req* r,
                    struct kf_agent_hash_range_reply* reply, struct kf_agent_error* err);
  /* Fills out[0..bytes) (bytes <= KF_AGENT_RANDOM_MAX, already checked). */
  int (*random)(uint8_t* out, uint32_t bytes, struct kf_agent_error* err);
  /* Up to r->max_bytes (<= KF_AGENT_READ_FILE_MAX, checked) of r->path
   * (absolute, checked) into reply->data/len, its size and DAX flag. */
  int (*read_file)(const struct kf_agent_read_file_req* r, struct kf_agent_read_file_reply* reply,
                   struct kf_agent_error* err);
  /* Every container call (CreateContainer .. RemoveContainer, already
   * checked by kf_agent_request_check): 0 with resp's body for req->kind
   * filled (the core sets resp->kind), non-zero with resp->u.error filled, or
   * KF_CORE_PENDING: no answer yet, nothing in resp may be used. It must
   * have no effect when it answers KF_CORE_PENDING, since the same request
   * comes again. */
  int (*container)(const struct kf_agent_request* req, struct kf_agent_response* resp);
};

/* Installs the platform's operations; call once, before anything below. */
void kf_core_init(const struct kf_core_ops* ops);

/* An ErrorReply body: code and message (truncated to KF_AGENT_ERROR_MAX-1). */
void kf_core_set_error(struct kf_agent_error* err, int32_t code, const char* message);

/* The DirtyPages write pattern both platforms use: one 64-bit word every
 * 512 bytes of each 4 KiB page at base (enough to dirty it), derived from
 * value and the page index so the host can predict HashRange. */
void kf_core_dirty_pages(uint8_t* base, uint64_t pages, uint64_t value);

/* Serves one request payload buf[0..len) into *resp: a reply of the
 * request's kind or an ErrorReply (BAD_MESSAGE, UNKNOWN_REQUEST,
 * BAD_ARGUMENT, or what the platform answered). Counts it in requests_served.
 * Returns 0, or KF_CORE_PENDING when the platform has no answer yet (*resp
 * unused, nothing counted: serve the same bytes again later). */
int kf_core_serve_request(const uint8_t* buf, size_t len, struct kf_agent_response* resp);

/* The Ready frame every connection starts with (stream 0) into out[0..cap);
 * returns its length, 0 if it does not fit (cap < KF_CORE_REPLY_FRAME_MAX). */
size_t kf_core_ready_frame(uint8_t* out, size_t cap);

enum kf_core_frame_status {
  KF_CORE_FRAME_NEED_MORE = 0, /* no whole frame in the input yet: nothing written */
  KF_CORE_FRAME_SERVED = 1,    /* one request served: consume, send the reply */
  KF_CORE_FRAME_BAD = -1,      /* bad header: send the BAD_FRAME reply, then close */
  KF_CORE_FRAME_PENDING = 2    /* a whole frame, not answerable yet: nothing consumed or
                                  written; serve it again later (Linux container waits) */
};

/* Looks at the input in[0..avail) (avail >= KF_AGENT_FRAME_HEADER_SIZE) and,
 * when a whole request frame is there, serves it: the response frame goes to
 * out[0..cap) (cap >= KF_CORE_REPLY_FRAME_MAX), its length to *out_len, and
 * the frame's size to *consumed. A header that is invalid, not a request, or
 * longer than KF_CORE_REQUEST_PAYLOAD_MAX yields KF_CORE_FRAME_BAD with an
 * ErrorReply BAD_FRAME in out: after a broken header the stream has no frame
 * boundaries left to trust, so the caller closes the connection. *out_len
 * is 0 when even the reply could not be encoded (cap too small). */
int kf_core_serve_frame(const uint8_t* in, size_t avail, uint8_t* out, size_t cap, size_t* consumed,
                        size_t* out_len);

/* The shared counters, for a platform's logs and tests. */
uint64_t kf_core_requests_served(void);
uint64_t kf_core_pages_dirtied(void);

#ifdef __cplusplus
}
#endif

#endif /* KF_AGENT_CORE_CORE_H_ */
