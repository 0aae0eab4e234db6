/*
 * The protobuf wire primitives (see pb_wire.h for the rules they follow).
 * Bounds are checked as "bytes left = len - pos" before every read, never by
 * forming a pointer past the end, so a hostile length cannot wrap around.
 */
#include "agent/proto/pb_wire.h"

const char* kf_pb_strerror(int status) {
  switch (status) {
    case KF_PB_OK: return "ok";
    case KF_PB_ERR_TRUNCATED: return "truncated input";
    case KF_PB_ERR_VARINT: return "malformed varint or tag";
    case KF_PB_ERR_WIRE_TYPE: return "unsupported wire type";
    case KF_PB_ERR_FIELD_NUMBER: return "field number 0";
    case KF_PB_ERR_TOO_LONG: return "field longer than its limit";
    case KF_PB_ERR_BAD_STRING: return "string contains NUL";
    case KF_PB_ERR_NO_SPACE: return "output buffer too small";
    case KF_PB_ERR_BAD_VALUE: return "value cannot be encoded";
    case KF_PB_ERR_FRAME_LENGTH: return "frame too long";
    case KF_PB_ERR_FRAME_TYPE: return "unknown frame type";
    case KF_PB_ERR_FRAME_FLAGS: return "unknown frame flags";
    case KF_PB_ERR_NO_BODY: return "message has no body";
    default: return "unknown error";
  }
}

void kf_pb_zero(void* p, size_t n) {
  uint8_t* d = (uint8_t*)p;
  for (size_t i = 0; i < n; ++i) d[i] = 0;
}

void kf_pb_copy(void* dst, const void* src, size_t n) {
  uint8_t* d = (uint8_t*)dst;
  const uint8_t* s = (const uint8_t*)src;
  for (size_t i = 0; i < n; ++i) d[i] = s[i];
}

/* ---- writing ---------------------------------------------------------- */

void kf_pb_writer_init(struct kf_pb_writer* w, uint8_t* buf, size_t cap) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->status = KF_PB_OK;
}

static void put_raw(struct kf_pb_writer* w, const void* data, size_t n) {
  if (w->status != KF_PB_OK) return;
  if (n > w->cap - w->len) {
    w->status = KF_PB_ERR_NO_SPACE;
    return;
  }
  if (w->buf != 0) kf_pb_copy(w->buf + w->len, data, n);
  w->len += n;
}

size_t kf_pb_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void kf_pb_put_varint(struct kf_pb_writer* w, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = (uint8_t)v;
  put_raw(w, tmp, n);
}

void kf_pb_put_tag(struct kf_pb_writer* w, uint32_t field, enum kf_pb_wire_type type) {
  kf_pb_put_varint(w, ((uint64_t)field << 3) | (uint64_t)type);
}

void kf_pb_put_uint64(struct kf_pb_writer* w, uint32_t field, uint64_t v) {
  if (v == 0) return;
  kf_pb_put_tag(w, field, KF_PB_VARINT);
  kf_pb_put_varint(w, v);
}

void kf_pb_put_int32(struct kf_pb_writer* w, uint32_t field, int32_t v) {
  /* Negative int32/enum values are sign-extended to 10-byte varints. */
  kf_pb_put_uint64(w, field, (uint64_t)(int64_t)v);
}

void kf_pb_put_bytes(struct kf_pb_writer* w, uint32_t field, const void* data, size_t n) {
  if (n == 0) return;
  kf_pb_put_tag(w, field, KF_PB_LEN);
  kf_pb_put_varint(w, n);
  put_raw(w, data, n);
}

void kf_pb_put_len_field(struct kf_pb_writer* w, uint32_t field, const void* data, size_t n) {
  kf_pb_put_tag(w, field, KF_PB_LEN);
  kf_pb_put_varint(w, n);
  put_raw(w, data, n);
}

void kf_pb_put_string(struct kf_pb_writer* w, uint32_t field, const char* s, size_t cap) {
  size_t n = 0;
  while (n < cap && s[n] != 0) ++n;
  if (n == cap) {
    if (w->status == KF_PB_OK) w->status = KF_PB_ERR_BAD_VALUE; /* unterminated */
    return;
  }
  kf_pb_put_bytes(w, field, s, n);
}

/* ---- reading ---------------------------------------------------------- */

void kf_pb_reader_init(struct kf_pb_reader* r, const uint8_t* buf, size_t len) {
  r->buf = buf;
  r->len = len;
  r->pos = 0;
}

int kf_pb_get_varint(struct kf_pb_reader* r, uint64_t* out) {
  uint64_t v = 0;
  for (unsigned i = 0; i < 10; ++i) {
    if (r->pos >= r->len) return KF_PB_ERR_TRUNCATED;
    uint8_t b = r->buf[r->pos++];
    v |= (uint64_t)(b & 0x7f) << (7 * i); /* i = 9: only bit 63 survives */
    if ((b & 0x80) == 0) {
      *out = v;
      return KF_PB_OK;
    }
  }
  return KF_PB_ERR_VARINT;
}

/* Little-endian fixed-width value of n bytes. */
static int get_fixed(struct kf_pb_reader* r, unsigned n, uint64_t* out) {
  if (r->len - r->pos < n) return KF_PB_ERR_TRUNCATED;
  uint64_t v = 0;
  for (unsigned i = 0; i < n; ++i) v |= (uint64_t)r->buf[r->pos + i] << (8 * i);
  r->pos += n;
  *out = v;
  return KF_PB_OK;
}

int kf_pb_next_field(struct kf_pb_reader* r, struct kf_pb_field* f) {
  if (r->pos >= r->len) return 0;
  uint64_t tag;
  int rc = kf_pb_get_varint(r, &tag);
  if (rc != KF_PB_OK) return rc;
  if (tag > 0xffffffffull) return KF_PB_ERR_VARINT;
  f->number = (uint32_t)(tag >> 3);
  if (f->number == 0) return KF_PB_ERR_FIELD_NUMBER;
  f->value = 0;
  f->data = 0;
  f->len = 0;
  switch (tag & 7) {
    case KF_PB_VARINT:
      f->type = KF_PB_VARINT;
      rc = kf_pb_get_varint(r, &f->value);
      break;
    case KF_PB_FIXED64:
      f->type = KF_PB_FIXED64;
      rc = get_fixed(r, 8, &f->value);
      break;
    case KF_PB_FIXED32:
      f->type = KF_PB_FIXED32;
      rc = get_fixed(r, 4, &f->value);
      break;
    case KF_PB_LEN: {
      uint64_t n;
      f->type = KF_PB_LEN;
      rc = kf_pb_get_varint(r, &n);
      if (rc != KF_PB_OK) return rc;
      if (n > r->len - r->pos) return KF_PB_ERR_TRUNCATED;
      f->data = r->buf + r->pos;
      f->len = (size_t)n;
      r->pos += (size_t)n;
      break;
    }
    default:
      return KF_PB_ERR_WIRE_TYPE;
  }
  return rc == KF_PB_OK ? 1 : rc;
}

int kf_pb_take_uint64(const struct kf_pb_field* f, uint64_t* out) {
  if (f->type == KF_PB_VARINT) *out = f->value;
  return KF_PB_OK;
}

int kf_pb_take_uint32(const struct kf_pb_field* f, uint32_t* out) {
  if (f->type == KF_PB_VARINT) *out = (uint32_t)f->value;
  return KF_PB_OK;
}

int kf_pb_take_int32(const struct kf_pb_field* f, int32_t* out) {
  /* Two's complement truncation, as libprotobuf reads int32 and enums. */
  if (f->type == KF_PB_VARINT) {
    uint32_t low = (uint32_t)f->value;
    *out = low <= 0x7fffffffu ? (int32_t)low : -(int32_t)(0xffffffffu - low) - 1;
  }
  return KF_PB_OK;
}

int kf_pb_take_bytes(const struct kf_pb_field* f, uint8_t* out, size_t cap, uint32_t* n) {
  if (f->type != KF_PB_LEN) return KF_PB_OK;
  if (f->len > cap) return KF_PB_ERR_TOO_LONG;
  kf_pb_copy(out, f->data, f->len);
  *n = (uint32_t)f->len;
  return KF_PB_OK;
}

int kf_pb_take_string(const struct kf_pb_field* f, char* out, size_t cap) {
  if (f->type != KF_PB_LEN) return KF_PB_OK;
  if (f->len >= cap) return KF_PB_ERR_TOO_LONG;
  for (size_t i = 0; i < f->len; ++i) {
    if (f->data[i] == 0) return KF_PB_ERR_BAD_STRING;
  }
  kf_pb_copy(out, f->data, f->len);
  out[f->len] = 0;
  return KF_PB_OK;
}
