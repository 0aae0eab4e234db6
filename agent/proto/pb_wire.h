/*
 * A minimal protobuf wire codec (proto3 scalars, strings, bytes, embedded
 * messages), in C99 that builds freestanding: no libc, no allocation. The
 * bare guest decodes hostile bytes with it, so every read is bounds-checked
 * against the caller's buffer and every error is a value, never a crash.
 *
 * Wire rules followed (protobuf encoding spec):
 * - varints are 1..10 bytes, little-endian groups of 7 bits; an 11th byte is
 *   an error; bits past 64 in the 10th byte are dropped, as libprotobuf does.
 * - a tag is a varint < 2^32: field number (1..2^29-1) << 3 | wire type.
 * - wire types 0 (varint), 1 (64-bit), 2 (length-delimited), 5 (32-bit) are
 *   read and, when unknown to the message, skipped; 3/4 (deprecated groups)
 *   and 6/7 are errors.
 * - decoding a known field number with another wire type skips it, as
 *   libprotobuf treats it as an unknown field.
 * - a repeated scalar field: the last value wins; a repeated embedded message
 *   merges into the one before (the message decoders do that).
 */
#ifndef KF_AGENT_PROTO_PB_WIRE_H_
#define KF_AGENT_PROTO_PB_WIRE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every codec function returns KF_PB_OK or one of these (negative). */
enum kf_pb_status {
  KF_PB_OK = 0,
  KF_PB_ERR_TRUNCATED = -1,     /* input ends inside a tag, value or length */
  KF_PB_ERR_VARINT = -2,        /* a varint longer than 10 bytes, or a tag >= 2^32 */
  KF_PB_ERR_WIRE_TYPE = -3,     /* a group or an undefined wire type */
  KF_PB_ERR_FIELD_NUMBER = -4,  /* field number 0 */
  KF_PB_ERR_TOO_LONG = -5,      /* a string/bytes field longer than its C array */
  KF_PB_ERR_BAD_STRING = -6,    /* a string with a NUL byte (C strings cannot hold it) */
  KF_PB_ERR_NO_SPACE = -7,      /* the output buffer is too small */
  KF_PB_ERR_BAD_VALUE = -8,     /* a C struct the encoder cannot represent */
  KF_PB_ERR_FRAME_LENGTH = -9,  /* frame payload over KF_AGENT_FRAME_MAX */
  KF_PB_ERR_FRAME_TYPE = -10,   /* frame type neither request nor response */
  KF_PB_ERR_FRAME_FLAGS = -11,  /* frame flags this version does not know */
  KF_PB_ERR_NO_BODY = -12       /* a Request/Response with no oneof member */
};

/* A short English name for a status, for logs and error replies. */
const char* kf_pb_strerror(int status);

enum kf_pb_wire_type {
  KF_PB_VARINT = 0,
  KF_PB_FIXED64 = 1,
  KF_PB_LEN = 2,
  KF_PB_FIXED32 = 5
};

/* ---- writing ---------------------------------------------------------- */

/* Appends into buf[0..cap). After the first write that does not fit, every
 * later write is dropped and `status` stays KF_PB_ERR_NO_SPACE. */
struct kf_pb_writer {
  uint8_t* buf;
  size_t cap;
  size_t len;
  int status;
};

/* buf = NULL: a sizing writer, which counts bytes and writes none. */
void kf_pb_writer_init(struct kf_pb_writer* w, uint8_t* buf, size_t cap);
void kf_pb_put_varint(struct kf_pb_writer* w, uint64_t v);
void kf_pb_put_tag(struct kf_pb_writer* w, uint32_t field, enum kf_pb_wire_type type);
/* Proto3 omits default values: these write nothing for 0 / empty. */
void kf_pb_put_uint64(struct kf_pb_writer* w, uint32_t field, uint64_t v);
void kf_pb_put_int32(struct kf_pb_writer* w, uint32_t field, int32_t v);
void kf_pb_put_bytes(struct kf_pb_writer* w, uint32_t field, const void* data, size_t n);
/* A length-delimited field written even when n == 0: an element of a
 * repeated string or an embedded message body, which protobuf always writes. */
void kf_pb_put_len_field(struct kf_pb_writer* w, uint32_t field, const void* data, size_t n);
/* A NUL-terminated string of at most `cap` bytes (no NUL within cap = error). */
void kf_pb_put_string(struct kf_pb_writer* w, uint32_t field, const char* s, size_t cap);
/* Bytes a varint of v takes (1..10): embedded message lengths are known before
 * the message is written, so the writer never moves bytes. */
size_t kf_pb_varint_size(uint64_t v);

/* ---- reading ---------------------------------------------------------- */

struct kf_pb_reader {
  const uint8_t* buf;
  size_t len;
  size_t pos;
};

/* One field as read from the wire. For KF_PB_LEN, data/len point into the
 * reader's buffer (already checked to lie inside it). */
struct kf_pb_field {
  uint32_t number;
  enum kf_pb_wire_type type;
  uint64_t value; /* varint, fixed64 or fixed32 */
  const uint8_t* data;
  size_t len;
};

void kf_pb_reader_init(struct kf_pb_reader* r, const uint8_t* buf, size_t len);
int kf_pb_get_varint(struct kf_pb_reader* r, uint64_t* out);
/* 1: *f holds the next field; 0: clean end of input; < 0: a kf_pb_status. */
int kf_pb_next_field(struct kf_pb_reader* r, struct kf_pb_field* f);

/* Field -> C value helpers; each returns KF_PB_OK or an error. A wire type
 * that does not match sets nothing and returns KF_PB_OK (skipped as unknown). */
int kf_pb_take_uint64(const struct kf_pb_field* f, uint64_t* out);
int kf_pb_take_uint32(const struct kf_pb_field* f, uint32_t* out); /* low 32 bits */
int kf_pb_take_int32(const struct kf_pb_field* f, int32_t* out);   /* low 32 bits */
/* Bytes into out[0..cap), length into *n. */
int kf_pb_take_bytes(const struct kf_pb_field* f, uint8_t* out, size_t cap, uint32_t* n);
/* A string into out[0..cap) with its NUL; at most cap-1 bytes, no NUL inside. */
int kf_pb_take_string(const struct kf_pb_field* f, char* out, size_t cap);

/* Freestanding stand-ins for memset(0)/memcpy, which the bare guest lacks. */
void kf_pb_zero(void* p, size_t n);
void kf_pb_copy(void* dst, const void* src, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KF_AGENT_PROTO_PB_WIRE_H_ */
