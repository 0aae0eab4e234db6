/*
 * Encoders and decoders for proto/agent.proto, driven by one table per
 * message: a field's number, C type and place in its struct. A table keeps
 * every message on the same two checked code paths (encode_body, decode_body)
 * instead of one hand-written function per message, each a chance to miss a
 * bounds check. Tables list fields in number order, which is also the order
 * libprotobuf writes them, so the bytes match.
 *
 * Embedded messages (F_MSG, with a presence flag; F_MSGS, repeated into a
 * fixed array with a count) recurse through the same two paths with their
 * own table; `repeated string` (F_STRS) packs its entries into one pool.
 */
#include "agent/proto/agent_codec.h"

enum field_kind { F_U64, F_U32, F_I32, F_BOOL, F_STR, F_BYTES, F_STRS, F_MSG, F_MSGS };

struct msg_desc;

struct field_desc {
  uint32_t number;
  uint8_t kind;
  uint16_t offset;     /* of the value in its struct */
  uint16_t cap;        /* F_STR, F_BYTES: array size; F_STRS: pool size; F_MSGS: elements */
  uint16_t len_offset; /* F_BYTES: the uint32_t length; F_MSG: presence; F_MSGS: count */
  uint16_t aux;        /* F_STRS: most entries; F_MSGS: element size */
  const struct msg_desc* sub; /* F_MSG, F_MSGS: the embedded message's table */
};

struct msg_desc {
  const struct field_desc* fields;
  unsigned count;
  uint32_t size; /* a oneof member's C struct: the bytes zeroed before decoding it */
};

#define U64(n, T, f) {n, F_U64, offsetof(T, f), 0, 0, 0, 0}
#define U32(n, T, f) {n, F_U32, offsetof(T, f), 0, 0, 0, 0}
#define I32(n, T, f) {n, F_I32, offsetof(T, f), 0, 0, 0, 0}
/* A proto bool in a uint32_t: any non-zero varint reads as 1, as libprotobuf
 * reads it (not its low 32 bits), and 1 is what is written for non-zero. */
#define BOOLEAN(n, T, f) {n, F_BOOL, offsetof(T, f), 0, 0, 0, 0}
#define STR(n, T, f) {n, F_STR, offsetof(T, f), sizeof(((T*)0)->f), 0, 0, 0}
#define BYTES(n, T, f, l) {n, F_BYTES, offsetof(T, f), sizeof(((T*)0)->f), offsetof(T, l), 0, 0}
#define STRS(n, T, f, entries) \
  {n, F_STRS, offsetof(T, f), sizeof(((T*)0)->f.pool), 0, entries, 0}
#define MSG(n, T, f, has, d) {n, F_MSG, offsetof(T, f), 0, offsetof(T, has), 0, &d}
#define MSGS(n, T, f, count, d)                                                            \
  {n, F_MSGS, offsetof(T, f), sizeof(((T*)0)->f) / sizeof(((T*)0)->f[0]), offsetof(T, count), \
   sizeof(((T*)0)->f[0]), &d}
#define DESC(a) {a, sizeof(a) / sizeof(a[0]), 0}
#define TDESC(a, T) {a, sizeof(a) / sizeof(a[0]), sizeof(T)}

/* The layout F_STRS relies on: {uint32_t count, used; char pool[]}. */
typedef char argv_layout_check[offsetof(struct kf_agent_argv, pool) == 8 &&
                                       offsetof(struct kf_agent_optv, pool) == 8 &&
                                       offsetof(struct kf_agent_optv, used) == 4
                                   ? 1
                                   : -1];

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
    BOOLEAN(3, read_file_reply_t, dax)};

typedef struct kf_agent_error err_t;
static const struct field_desc error_f[] = {I32(1, err_t, code), STR(2, err_t, message)};

/* ---- containers ---- */

typedef struct kf_agent_process process_t;
static const struct field_desc process_f[] = {
    STRS(1, process_t, args, KF_AGENT_ARGV_ENTRIES), STRS(2, process_t, env, KF_AGENT_ARGV_ENTRIES),
    STR(3, process_t, cwd),                          U32(4, process_t, uid),
    U32(5, process_t, gid),                          BOOLEAN(6, process_t, terminal)};
static const struct msg_desc process_d = DESC(process_f);

typedef struct kf_agent_mount mount_t;
static const struct field_desc mount_f[] = {
    STR(1, mount_t, destination), STR(2, mount_t, type), STR(3, mount_t, source),
    STRS(4, mount_t, options, KF_AGENT_OPTV_ENTRIES)};
static const struct msg_desc mount_d = DESC(mount_f);

typedef struct kf_agent_create_container_req create_t;
static const struct field_desc create_f[] = {
    STR(1, create_t, container_id),
    STR(2, create_t, rootfs),
    MSG(3, create_t, process, has_process, process_d),
    STR(4, create_t, hostname),
    MSGS(5, create_t, mounts, mounts_count, mount_d),
    STRS(6, create_t, namespaces, KF_AGENT_NAMESPACES_MAX)};

typedef struct kf_agent_process_ref ref_t;
static const struct field_desc container_ref_f[] = {STR(1, ref_t, container_id)};
static const struct field_desc process_ref_f[] = {STR(1, ref_t, container_id),
                                                  STR(2, ref_t, exec_id)};

typedef struct kf_agent_exec_process_req exec_t;
static const struct field_desc exec_f[] = {STR(1, exec_t, container_id), STR(2, exec_t, exec_id),
                                           MSG(3, exec_t, process, has_process, process_d)};

typedef struct kf_agent_wait_process_req wait_t;
static const struct field_desc wait_f[] = {STR(1, wait_t, container_id), STR(2, wait_t, exec_id),
                                           U32(3, wait_t, timeout_ms)};
typedef struct kf_agent_wait_process_reply wait_reply_t;
static const struct field_desc wait_reply_f[] = {BOOLEAN(1, wait_reply_t, exited),
                                                 I32(2, wait_reply_t, exit_code),
                                                 I32(3, wait_reply_t, signal)};

typedef struct kf_agent_signal_process_req signal_t;
static const struct field_desc signal_f[] = {
    STR(1, signal_t, container_id), STR(2, signal_t, exec_id), U32(3, signal_t, signal)};

typedef struct kf_agent_read_stream_req read_t;
static const struct field_desc read_f[] = {STR(1, read_t, container_id), STR(2, read_t, exec_id),
                                           U32(3, read_t, max_bytes), U32(4, read_t, wait_ms)};
typedef struct kf_agent_read_stream_reply read_reply_t;
static const struct field_desc read_reply_f[] = {BYTES(1, read_reply_t, data, len),
                                                 BOOLEAN(2, read_reply_t, eof)};

typedef struct kf_agent_write_stdin_req write_t;
static const struct field_desc write_f[] = {STR(1, write_t, container_id),
                                            STR(2, write_t, exec_id), BYTES(3, write_t, data, len)};
typedef struct kf_agent_write_stdin_reply write_reply_t;
static const struct field_desc write_reply_f[] = {U32(1, write_reply_t, len)};

typedef struct kf_agent_pid_reply pid_t_;
static const struct field_desc pid_reply_f[] = {U32(1, pid_t_, pid)};

/* Indexed by enum kf_agent_kind; fields == NULL: not a member of that oneof.
 * Empty messages (GetIdentity, GetStats requests; some replies) are members
 * with no fields. */
static const struct field_desc no_fields[1] = {{0, 0, 0, 0, 0, 0, 0}};
#define KIND_LIMIT KF_AGENT_KIND_LIMIT
static const struct msg_desc request_bodies[KIND_LIMIT] = {
    [KF_AGENT_PING] = TDESC(ping_req_f, ping_req_t),
    [KF_AGENT_SET_IDENTITY] = TDESC(set_id_f, set_id_t),
    [KF_AGENT_GET_IDENTITY] = {no_fields, 0, 0},
    [KF_AGENT_GET_STATS] = {no_fields, 0, 0},
    [KF_AGENT_DIRTY_PAGES] = TDESC(dirty_f, dirty_t),
    [KF_AGENT_HASH_RANGE] = TDESC(hash_f, hash_t),
    [KF_AGENT_RANDOM] = TDESC(random_f, random_t),
    [KF_AGENT_READ_FILE] = TDESC(read_file_f, read_file_t),
    [KF_AGENT_CREATE_CONTAINER] = TDESC(create_f, create_t),
    [KF_AGENT_START_CONTAINER] = TDESC(container_ref_f, ref_t),
    [KF_AGENT_EXEC_PROCESS] = TDESC(exec_f, exec_t),
    [KF_AGENT_WAIT_PROCESS] = TDESC(wait_f, wait_t),
    [KF_AGENT_SIGNAL_PROCESS] = TDESC(signal_f, signal_t),
    [KF_AGENT_READ_STDOUT] = TDESC(read_f, read_t),
    [KF_AGENT_READ_STDERR] = TDESC(read_f, read_t),
    [KF_AGENT_WRITE_STDIN] = TDESC(write_f, write_t),
    [KF_AGENT_CLOSE_STDIN] = TDESC(process_ref_f, ref_t),
    [KF_AGENT_REMOVE_CONTAINER] = TDESC(container_ref_f, ref_t)};
static const struct msg_desc response_bodies[KIND_LIMIT] = {
    [KF_AGENT_PING] = TDESC(ping_reply_f, ping_reply_t),
    [KF_AGENT_SET_IDENTITY] = TDESC(set_id_reply_f, set_id_reply_t),
    [KF_AGENT_GET_IDENTITY] = TDESC(get_id_reply_f, get_id_reply_t),
    [KF_AGENT_GET_STATS] = TDESC(stats_f, stats_t),
    [KF_AGENT_DIRTY_PAGES] = TDESC(dirty_reply_f, dirty_reply_t),
    [KF_AGENT_HASH_RANGE] = TDESC(hash_reply_f, hash_reply_t),
    [KF_AGENT_RANDOM] = TDESC(random_reply_f, random_reply_t),
    [KF_AGENT_READ_FILE] = TDESC(read_file_reply_f, read_file_reply_t),
    [KF_AGENT_CREATE_CONTAINER] = TDESC(pid_reply_f, pid_t_),
    [KF_AGENT_START_CONTAINER] = TDESC(pid_reply_f, pid_t_),
    [KF_AGENT_EXEC_PROCESS] = TDESC(pid_reply_f, pid_t_),
    [KF_AGENT_WAIT_PROCESS] = TDESC(wait_reply_f, wait_reply_t),
    [KF_AGENT_SIGNAL_PROCESS] = {no_fields, 0, 0},
    [KF_AGENT_READY] = TDESC(ready_f, ready_t),
    [KF_AGENT_ERROR] = TDESC(error_f, err_t),
    [KF_AGENT_READ_STDOUT] = TDESC(read_reply_f, read_reply_t),
    [KF_AGENT_READ_STDERR] = TDESC(read_reply_f, read_reply_t),
    [KF_AGENT_WRITE_STDIN] = TDESC(write_reply_f, write_reply_t),
    [KF_AGENT_CLOSE_STDIN] = {no_fields, 0, 0},
    [KF_AGENT_REMOVE_CONTAINER] = {no_fields, 0, 0}};

static const struct msg_desc* body_desc(const struct msg_desc* table, uint32_t kind) {
  if (kind >= KIND_LIMIT || table[kind].fields == 0) return 0;
  return &table[kind];
}

/* ---- encoding --------------------------------------------------------- */

static void encode_body(struct kf_pb_writer* w, const struct msg_desc* d, const uint8_t* s);

static void set_bad_value(struct kf_pb_writer* w) {
  if (w->status == KF_PB_OK) w->status = KF_PB_ERR_BAD_VALUE;
}

/* An embedded message: its size first (a counting pass), then the bytes. */
static void encode_message(struct kf_pb_writer* w, uint32_t number, const struct msg_desc* d,
                           const uint8_t* s) {
  struct kf_pb_writer sizer;
  kf_pb_writer_init(&sizer, 0, (size_t)-1);
  encode_body(&sizer, d, s);
  if (sizer.status != KF_PB_OK) {
    set_bad_value(w);
    return;
  }
  kf_pb_put_tag(w, number, KF_PB_LEN);
  kf_pb_put_varint(w, sizer.len);
  encode_body(w, d, s);
}

/* Every entry of a packed string list, each written even when empty. */
static void encode_strs(struct kf_pb_writer* w, const struct field_desc* f, const uint8_t* p) {
  uint32_t count, used;
  kf_pb_copy(&count, p, sizeof count);
  kf_pb_copy(&used, p + 4, sizeof used);
  const char* pool = (const char*)p + 8;
  if (used > f->cap || count > f->aux) {
    set_bad_value(w);
    return;
  }
  uint32_t pos = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t n = 0;
    while (pos + n < used && pool[pos + n] != 0) ++n;
    if (pos + n >= used) { /* no NUL inside the pool */
      set_bad_value(w);
      return;
    }
    kf_pb_put_len_field(w, f->number, pool + pos, n);
    pos += n + 1;
  }
}

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
      case F_BOOL:
        kf_pb_copy(&u32, p, sizeof u32);
        kf_pb_put_uint64(w, f->number, (uint64_t)(u32 != 0));
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
          set_bad_value(w);
          return;
        }
        kf_pb_put_bytes(w, f->number, p, u32);
        break;
      case F_STRS:
        encode_strs(w, f, p);
        break;
      case F_MSG:
        kf_pb_copy(&u32, s + f->len_offset, sizeof u32);
        if (u32 != 0) encode_message(w, f->number, f->sub, p);
        break;
      case F_MSGS:
        kf_pb_copy(&u32, s + f->len_offset, sizeof u32);
        if (u32 > f->cap) {
          set_bad_value(w);
          return;
        }
        for (uint32_t k = 0; k < u32; ++k) encode_message(w, f->number, f->sub, p + k * f->aux);
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

static int decode_body(const struct msg_desc* d, const uint8_t* buf, size_t len, uint8_t* s);

/* One more entry of a packed string list: within the entry and pool caps,
 * no NUL inside (C strings). */
static int decode_strs(const struct field_desc* d, const struct kf_pb_field* f, uint8_t* p) {
  if (f->type != KF_PB_LEN) return KF_PB_OK;
  uint32_t count, used;
  kf_pb_copy(&count, p, sizeof count);
  kf_pb_copy(&used, p + 4, sizeof used);
  if (count >= d->aux || f->len > KF_AGENT_STRV_ITEM_MAX || used > d->cap ||
      f->len + 1 > (size_t)(d->cap - used))
    return KF_PB_ERR_TOO_LONG;
  for (size_t i = 0; i < f->len; ++i) {
    if (f->data[i] == 0) return KF_PB_ERR_BAD_STRING;
  }
  kf_pb_copy(p + 8 + used, f->data, f->len);
  p[8 + used + f->len] = 0;
  used += (uint32_t)f->len + 1;
  ++count;
  kf_pb_copy(p, &count, sizeof count);
  kf_pb_copy(p + 4, &used, sizeof used);
  return KF_PB_OK;
}

static int decode_field(const struct field_desc* d, const struct kf_pb_field* f, uint8_t* s) {
  uint8_t* p = s + d->offset;
  uint32_t* n = (uint32_t*)(void*)(s + d->len_offset);
  switch (d->kind) {
    case F_U64: return kf_pb_take_uint64(f, (uint64_t*)(void*)p);
    case F_U32: return kf_pb_take_uint32(f, (uint32_t*)(void*)p);
    case F_BOOL:
      if (f->type == KF_PB_VARINT) *(uint32_t*)(void*)p = (uint32_t)(f->value != 0);
      return KF_PB_OK;
    case F_I32: return kf_pb_take_int32(f, (int32_t*)(void*)p);
    case F_STR: return kf_pb_take_string(f, (char*)p, d->cap);
    case F_BYTES: return kf_pb_take_bytes(f, p, d->cap, n);
    case F_STRS: return decode_strs(d, f, p);
    case F_MSG: /* a repeated occurrence merges into the one before */
      if (f->type != KF_PB_LEN) return KF_PB_OK;
      *n = 1;
      return decode_body(d->sub, f->data, f->len, p);
    case F_MSGS: {
      if (f->type != KF_PB_LEN) return KF_PB_OK;
      if (*n >= d->cap) return KF_PB_ERR_TOO_LONG;
      uint8_t* elem = p + (size_t)*n * d->aux;
      kf_pb_zero(elem, d->aux);
      ++*n;
      return decode_body(d->sub, f->data, f->len, elem);
    }
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
 * (zeroed first), one that repeats merges into it: protobuf's oneof rules.
 * Only the member's own struct is zeroed, not the whole union: a Ping must
 * not pay for clearing a 24 KiB CreateContainer (the bare guest's latency). */
static int decode_envelope(const struct msg_desc* table, const uint8_t* buf, size_t len,
                           uint32_t* kind, uint8_t* body, size_t body_size) {
  struct kf_pb_reader r;
  struct kf_pb_field f;
  int rc;
  *kind = KF_AGENT_NONE;
  kf_pb_reader_init(&r, buf, len);
  while ((rc = kf_pb_next_field(&r, &f)) > 0) {
    const struct msg_desc* d = body_desc(table, f.number);
    if (d == 0 || f.type != KF_PB_LEN) continue; /* unknown: skipped */
    if (*kind != f.number) {
      kf_pb_zero(body, d->size < body_size ? d->size : body_size);
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

/* ---- the agent's checks -------------------------------------------- */

/* 1..63 bytes of [A-Za-z0-9_.-] (empty allowed when may_be_empty). */
static int id_ok(const char* id, int may_be_empty) {
  if (id[0] == 0) return may_be_empty;
  for (const char* c = id; *c != 0; ++c) {
    int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
             *c == '_' || *c == '.' || *c == '-';
    if (!ok) return 0;
  }
  return !(id[0] == '.' && (id[1] == 0 || (id[1] == '.' && id[2] == 0))); /* not . or .. */
}

static int path_ok(const char* path, int may_be_empty) {
  return path[0] == 0 ? may_be_empty : path[0] == '/';
}

static int process_check(uint32_t has, const struct kf_agent_process* p, const char** why) {
  if (!has || p->args.count == 0) {
    *why = "process: args must name a program";
    return KF_AGENT_ERR_BAD_ARGUMENT;
  }
  if (p->args.pool[0] == 0) {
    *why = "process: args[0] is empty";
    return KF_AGENT_ERR_BAD_ARGUMENT;
  }
  if (!path_ok(p->cwd, 1)) {
    *why = "process: cwd must be absolute";
    return KF_AGENT_ERR_BAD_ARGUMENT;
  }
  return 0;
}

static int bad(const char** why, const char* reason) {
  *why = reason;
  return KF_AGENT_ERR_BAD_ARGUMENT;
}

static int container_check(const struct kf_agent_request* m, const char** why) {
  /* Every container request starts with container_id (and most exec_id). */
  const struct kf_agent_process_ref* ref = (const struct kf_agent_process_ref*)(const void*)&m->u;
  if (!id_ok(ref->container_id, 0))
    return bad(why, "container_id: 1..63 bytes of [A-Za-z0-9_.-]");
  switch (m->kind) {
    case KF_AGENT_CREATE_CONTAINER: {
      const struct kf_agent_create_container_req* c = &m->u.create_container;
      if (!path_ok(c->rootfs, 1)) return bad(why, "rootfs must be an absolute path");
      for (uint32_t i = 0; i < c->mounts_count; ++i) {
        if (!path_ok(c->mounts[i].destination, 0))
          return bad(why, "mounts: destination must be an absolute path");
      }
      return process_check(c->has_process, &c->process, why);
    }
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_REMOVE_CONTAINER:
      return 0;
    case KF_AGENT_EXEC_PROCESS:
      if (!id_ok(ref->exec_id, 0)) return bad(why, "exec_id: 1..63 bytes of [A-Za-z0-9_.-]");
      return process_check(m->u.exec_process.has_process, &m->u.exec_process.process, why);
    default:
      break;
  }
  if (!id_ok(ref->exec_id, 1)) return bad(why, "exec_id: 0..63 bytes of [A-Za-z0-9_.-]");
  switch (m->kind) {
    case KF_AGENT_WAIT_PROCESS:
      if (m->u.wait_process.timeout_ms > KF_AGENT_WAIT_MAX_MS)
        return bad(why, "timeout_ms: at most 5000");
      return 0;
    case KF_AGENT_SIGNAL_PROCESS:
      if (m->u.signal_process.signal < 1 || m->u.signal_process.signal > 64)
        return bad(why, "signal: 1..64");
      return 0;
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR:
      if (m->u.read_stream.max_bytes > KF_AGENT_STDIO_MAX) return bad(why, "max_bytes: at most 4096");
      if (m->u.read_stream.wait_ms > KF_AGENT_WAIT_MAX_MS) return bad(why, "wait_ms: at most 5000");
      return 0;
    default: /* WRITE_STDIN (data capped by decoding), CLOSE_STDIN */
      return 0;
  }
}

int kf_agent_request_check_why(const struct kf_agent_request* m, const char** why) {
  const char* unused;
  if (why == 0) why = &unused;
  *why = "argument out of range";
  switch (m->kind) {
    case KF_AGENT_SET_IDENTITY:
      if (m->u.set_identity.entropy_len < KF_AGENT_ENTROPY_MIN)
        return bad(why, "set_identity: entropy must be 32..256 bytes");
      return 0;
    case KF_AGENT_RANDOM:
      return m->u.random.bytes > KF_AGENT_RANDOM_MAX ? bad(why, "random: at most 4096 bytes") : 0;
    case KF_AGENT_READ_FILE:
      if (m->u.read_file.max_bytes > KF_AGENT_READ_FILE_MAX || m->u.read_file.path[0] != '/')
        return bad(why, "read_file: an absolute path, at most 4096 bytes");
      return 0;
    case KF_AGENT_PING:
    case KF_AGENT_GET_IDENTITY:
    case KF_AGENT_GET_STATS:
    case KF_AGENT_DIRTY_PAGES:
    case KF_AGENT_HASH_RANGE:
      return 0;
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
      return container_check(m, why);
    default:
      *why = "empty or unknown request";
      return KF_AGENT_ERR_UNKNOWN_REQUEST;
  }
}

int kf_agent_request_check(const struct kf_agent_request* m) {
  return kf_agent_request_check_why(m, 0);
}

/* ---- repeated strings ------------------------------------------------- */

int kf_agent_strv_add(void* strv, size_t pool_cap, uint32_t max_entries, const char* s) {
  uint8_t* p = (uint8_t*)strv;
  uint32_t count, used;
  kf_pb_copy(&count, p, sizeof count);
  kf_pb_copy(&used, p + 4, sizeof used);
  size_t n = 0;
  while (s[n] != 0 && n <= KF_AGENT_STRV_ITEM_MAX) ++n;
  if (count >= max_entries || n > KF_AGENT_STRV_ITEM_MAX || used > pool_cap ||
      n + 1 > pool_cap - used)
    return KF_PB_ERR_TOO_LONG;
  kf_pb_copy(p + 8 + used, s, n + 1);
  used += (uint32_t)n + 1;
  ++count;
  kf_pb_copy(p, &count, sizeof count);
  kf_pb_copy(p + 4, &used, sizeof used);
  return KF_PB_OK;
}

const char* kf_agent_strv_next(const void* strv, const char* prev) {
  const uint8_t* p = (const uint8_t*)strv;
  uint32_t count, used;
  kf_pb_copy(&count, p, sizeof count);
  kf_pb_copy(&used, p + 4, sizeof used);
  const char* pool = (const char*)p + 8;
  if (count == 0) return 0;
  if (prev == 0) return pool;
  const char* next = prev;
  while (*next != 0) ++next;
  ++next;
  return next < pool + used ? next : 0;
}
