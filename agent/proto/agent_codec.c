/*
 * Encoders and decoders for proto/agent.proto, driven by one table per
 * message: a field's number, C type and place in its struct. A table keeps
 * every message on the same two checked code paths (encode_body, decode_body)
 * instead of one hand-written function per message, each a chance to miss a
 * bounds check. Tables list fields in number order, which is also the order
 * libprotobuf writes them, so the bytes match.
 */
#include "agent/proto/agent_codec.h"

enum field_kind { F_U64, F_U32, F_I32, F_STR, F_BYTES };

struct field_desc {
  uint32_t number;
  uint8_t kind;
  uint16_t offset;     /* of the value in its struct */
  uint16_t cap;        /* F_STR, F_BYTES: array size */
  uint16_t len_offset; /* F_BYTES: of the uint32_t length */
};

struct msg_desc {
  const struct field_desc* fields;
  unsigned count;
};

#define U64(n, T, f) {n, F_U64, offsetof(T, f), 0, 0}
#define U32(n, T, f) {n, F_U32, offsetof(T, f), 0, 0}
#define I32(n, T, f) {n, F_I32, offsetof(T, f), 0, 0}
#define STR(n, T, f) {n, F_STR, offsetof(T, f), sizeof(((T*)0)->f), 0}
#define BYTES(n, T, f, l) {n, F_BYTES, offsetof(T, f), sizeof(((T*)0)->f), offsetof(T, l)}
#define DESC(a) {a, sizeof(a) / sizeof(a[0])}

typedef struct kf_agent_ready ready_t;
static const struct field_desc ready_f[] = {
    U32(1, ready_t, agent_version), I32(2, ready_t, guest_kind),
    U64(3, ready_t, mem_total),     U64(4, ready_t, init_bytes),
    U64(5, ready_t, init_hash),     U64(6, ready_t, boot_ns)};

typedef struct kf_agent_ping_req ping_req_t;
typedef struct kf_agent_ping_reply ping_reply_t;
static const struct field_desc ping_req_f[] = {U64(1, ping_req_t, echo)};
static const struct field_desc ping_reply_f[] = {U64(1, ping_reply_t, echo),
                                                 U64(2, ping_reply_t, pings_served)};

typedef struct kf_agent_set_identity_req set_id_t;
static const struct field_desc set_id_f[] = {
    STR(1, set_id_t, sandbox_id), STR(2, set_id_t, hostname),
    BYTES(3, set_id_t, entropy, entropy_len), U64(4, set_id_t, wall_clock_unix_ns)};
typedef struct kf_agent_set_identity_reply set_id_reply_t;
static const struct field_desc set_id_reply_f[] = {U64(1, set_id_reply_t, identity_sets)};

typedef struct kf_agent_get_identity_reply get_id_reply_t;
static const struct field_desc get_id_reply_f[] = {
    STR(1, get_id_reply_t, sandbox_id), STR(2, get_id_reply_t, hostname),
    U64(3, get_id_reply_t, wall_clock_unix_ns), U64(4, get_id_reply_t, identity_sets)};

typedef struct kf_agent_get_stats_reply stats_t;
static const struct field_desc stats_f[] = {
    U64(1, stats_t, mem_total), U64(2, stats_t, mem_initialised),
    U64(3, stats_t, pages_dirtied), U64(4, stats_t, requests_served)};

typedef struct kf_agent_dirty_pages_req dirty_t;
typedef struct kf_agent_dirty_pages_reply dirty_reply_t;
static const struct field_desc dirty_f[] = {U64(1, dirty_t, gpa), U64(2, dirty_t, pages),
                                            U64(3, dirty_t, value)};
static const struct field_desc dirty_reply_f[] = {U64(1, dirty_reply_t, pages)};

typedef struct kf_agent_hash_range_req hash_t;
typedef struct kf_agent_hash_range_reply hash_reply_t;
static const struct field_desc hash_f[] = {U64(1, hash_t, gpa), U64(2, hash_t, bytes)};
static const struct field_desc hash_reply_f[] = {U64(1, hash_reply_t, hash)};

typedef struct kf_agent_random_req random_t;
typedef struct kf_agent_random_reply random_reply_t;
static const struct field_desc random_f[] = {U32(1, random_t, bytes)};
static const struct field_desc random_reply_f[] = {BYTES(1, random_reply_t, data, len)};

typedef struct kf_agent_read_file_req read_file_t;
typedef struct kf_agent_read_file_reply read_file_reply_t;
static const struct field_desc read_file_f[] = {STR(1, read_file_t, path),
                                                U32(2, read_file_t, max_bytes)};
static const struct field_desc read_file_reply_f[] = {
    BYTES(1, read_file_reply_t, data, len), U64(2, read_file_reply_t, size),
    U32(3, read_file_reply_t, dax)};

typedef struct kf_agent_error err_t;
static const struct field_desc error_f[] = {I32(1, err_t, code), STR(2, err_t, message)};

/* Indexed by enum kf_agent_kind; fields == NULL: not a member of that oneof.
 * Empty requests (GetIdentity, GetStats) are members with no fields. */
static const struct field_desc no_fields[1] = {{0, 0, 0, 0, 0}};
#define KIND_LIMIT 16
static const struct msg_desc request_bodies[KIND_LIMIT] = {
    [KF_AGENT_PING] = DESC(ping_req_f),     [KF_AGENT_SET_IDENTITY] = DESC(set_id_f),
    [KF_AGENT_GET_IDENTITY] = {no_fields, 0}, [KF_AGENT_GET_STATS] = {no_fields, 0},
    [KF_AGENT_DIRTY_PAGES] = DESC(dirty_f), [KF_AGENT_HASH_RANGE] = DESC(hash_f),
    [KF_AGENT_RANDOM] = DESC(random_f),     [KF_AGENT_READ_FILE] = DESC(read_file_f)};
static const struct msg_desc response_bodies[KIND_LIMIT] = {
    [KF_AGENT_PING] = DESC(ping_reply_f),
    [KF_AGENT_SET_IDENTITY] = DESC(set_id_reply_f),
    [KF_AGENT_GET_IDENTITY] = DESC(get_id_reply_f),
    [KF_AGENT_GET_STATS] = DESC(stats_f),
    [KF_AGENT_DIRTY_PAGES] = DESC(dirty_reply_f),
    [KF_AGENT_HASH_RANGE] = DESC(hash_reply_f),
    [KF_AGENT_RANDOM] = DESC(random_reply_f),
    [KF_AGENT_READ_FILE] = DESC(read_file_reply_f),
    [KF_AGENT_READY] = DESC(ready_f),
    [KF_AGENT_ERROR] = DESC(error_f)};

static const struct msg_desc* body_desc(const struct msg_desc* table, uint32_t kind) {
  if (kind >= KIND_LIMIT || table[kind].fields == 0) return 0;
  return &table[kind];
}

/* ---- encoding --------------------------------------------------------- */

static void encode_body(struct kf_pb_writer* w, const struct msg_desc* d, const uint8_t* s) {
  for (unsigned i = 0; i < d->count; ++i) {
    const struct field_desc* f = &d->fields[i];
    const uint8_t* p = s + f->offset;
    uint64_t u64;
    uint32_t u32;
    int32_t i32;
    switch (f->kind) {
      case F_U64:
        kf_pb_copy(&u64, p, sizeof u64);
        kf_pb_put_uint64(w, f->number, u64);
        break;
      case F_U32:
        kf_pb_copy(&u32, p, sizeof u32);
        kf_pb_put_uint64(w, f->number, u32);
        break;
      case F_I32:
        kf_pb_copy(&i32, p, sizeof i32);
        kf_pb_put_int32(w, f->number, i32);
        break;
      case F_STR:
        kf_pb_put_string(w, f->number, (const char*)p, f->cap);
        break;
      case F_BYTES:
        kf_pb_copy(&u32, s + f->len_offset, sizeof u32);
        if (u32 > f->cap) {
          if (w->status == KF_PB_OK) w->status = KF_PB_ERR_BAD_VALUE;
          return;
        }
        kf_pb_put_bytes(w, f->number, p, u32);
        break;
    }
  }
}

/* The envelope: one length-delimited field `kind` holding the body. The
 * body is sized by a first pass with a counting writer, then written. */
static int encode_envelope(const struct msg_desc* table, uint32_t kind, const void* body,
                           uint8_t* buf, size_t cap, size_t* out_len) {
  if (kind == KF_AGENT_NONE) return KF_PB_ERR_NO_BODY;
  const struct msg_desc* d = body_desc(table, kind);
  if (d == 0) return KF_PB_ERR_BAD_VALUE;
  struct kf_pb_writer sizer;
  kf_pb_writer_init(&sizer, 0, (size_t)-1);
  encode_body(&sizer, d, (const uint8_t*)body);
  if (sizer.status != KF_PB_OK) return sizer.status;
  struct kf_pb_writer w;
  kf_pb_writer_init(&w, buf, cap);
  kf_pb_put_tag(&w, kind, KF_PB_LEN);
  kf_pb_put_varint(&w, sizer.len);
  encode_body(&w, d, (const uint8_t*)body);
  if (w.status != KF_PB_OK) return w.status;
  *out_len = w.len;
  return KF_PB_OK;
}

int kf_agent_encode_request(const struct kf_agent_request* m, uint8_t* buf, size_t cap,
                            size_t* out_len) {
  return encode_envelope(request_bodies, m->kind, &m->u, buf, cap, out_len);
}

int kf_agent_encode_response(const struct kf_agent_response* m, uint8_t* buf, size_t cap,
                             size_t* out_len) {
  return encode_envelope(response_bodies, m->kind, &m->u, buf, cap, out_len);
}

/* ---- decoding --------------------------------------------------------- */

static int decode_field(const struct field_desc* d, const struct kf_pb_field* f, uint8_t* s) {
  uint8_t* p = s + d->offset;
  switch (d->kind) {
    case F_U64: return kf_pb_take_uint64(f, (uint64_t*)(void*)p);
    case F_U32: return kf_pb_take_uint32(f, (uint32_t*)(void*)p);
    case F_I32: return kf_pb_take_int32(f, (int32_t*)(void*)p);
    case F_STR: return kf_pb_take_string(f, (char*)p, d->cap);
    case F_BYTES: return kf_pb_take_bytes(f, p, d->cap, (uint32_t*)(void*)(s + d->len_offset));
  }
  return KF_PB_OK;
}

/* Merges the fields of buf[0..len) into the struct at s: fields absent keep
 * their value, which is how protobuf merges a repeated embedded message. */
static int decode_body(const struct msg_desc* d, const uint8_t* buf, size_t len, uint8_t* s) {
  struct kf_pb_reader r;
  struct kf_pb_field f;
  int rc;
  kf_pb_reader_init(&r, buf, len);
  while ((rc = kf_pb_next_field(&r, &f)) > 0) {
    for (unsigned i = 0; i < d->count; ++i) {
      if (d->fields[i].number != f.number) continue;
      rc = decode_field(&d->fields[i], &f, s);
      if (rc != KF_PB_OK) return rc;
      break;
    }
  }
  return rc;
}

/* Walks the envelope. A member that differs from the current one replaces it
 * (zeroed first), one that repeats merges into it: protobuf's oneof rules. */
static int decode_envelope(const struct msg_desc* table, const uint8_t* buf, size_t len,
                           uint32_t* kind, uint8_t* body, size_t body_size) {
  struct kf_pb_reader r;
  struct kf_pb_field f;
  int rc;
  *kind = KF_AGENT_NONE;
  kf_pb_zero(body, body_size);
  kf_pb_reader_init(&r, buf, len);
  while ((rc = kf_pb_next_field(&r, &f)) > 0) {
    const struct msg_desc* d = body_desc(table, f.number);
    if (d == 0 || f.type != KF_PB_LEN) continue; /* unknown: skipped */
    if (*kind != f.number) {
      kf_pb_zero(body, body_size);
      *kind = f.number;
    }
    rc = decode_body(d, f.data, f.len, body);
    if (rc != KF_PB_OK) return rc;
  }
  return rc;
}

int kf_agent_decode_request(const uint8_t* buf, size_t len, struct kf_agent_request* m) {
  int rc = decode_envelope(request_bodies, buf, len, &m->kind, (uint8_t*)&m->u, sizeof m->u);
  if (rc != KF_PB_OK) m->kind = KF_AGENT_NONE;
  return rc;
}

int kf_agent_decode_response(const uint8_t* buf, size_t len, struct kf_agent_response* m) {
  int rc = decode_envelope(response_bodies, buf, len, &m->kind, (uint8_t*)&m->u, sizeof m->u);
  if (rc != KF_PB_OK) m->kind = KF_AGENT_NONE;
  return rc;
}

int kf_agent_request_check(const struct kf_agent_request* m) {
  switch (m->kind) {
    case KF_AGENT_SET_IDENTITY:
      if (m->u.set_identity.entropy_len < KF_AGENT_ENTROPY_MIN) return KF_AGENT_ERR_BAD_ARGUMENT;
      return 0;
    case KF_AGENT_RANDOM:
      return m->u.random.bytes > KF_AGENT_RANDOM_MAX ? KF_AGENT_ERR_BAD_ARGUMENT : 0;
    case KF_AGENT_READ_FILE:
      if (m->u.read_file.max_bytes > KF_AGENT_READ_FILE_MAX || m->u.read_file.path[0] != '/')
        return KF_AGENT_ERR_BAD_ARGUMENT;
      return 0;
    case KF_AGENT_PING:
    case KF_AGENT_GET_IDENTITY:
    case KF_AGENT_GET_STATS:
    case KF_AGENT_DIRTY_PAGES:
    case KF_AGENT_HASH_RANGE:
      return 0;
    default:
      return KF_AGENT_ERR_UNKNOWN_REQUEST;
  }
}
