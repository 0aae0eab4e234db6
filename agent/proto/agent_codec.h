/*
 * proto/agent.proto as C structs, with their encoders and decoders, for the
 * agent (which has no libprotobuf) and for tests. Fixed-size arrays only: the
 * caps below are the protocol's limits, and a longer field does not decode.
 *
 * Oneof kinds are the field numbers of proto/agent.proto's Request/Response,
 * so kind == 0 means "no body". Strings are NUL-terminated C strings.
 */
#ifndef KF_AGENT_PROTO_AGENT_CODEC_H_
#define KF_AGENT_PROTO_AGENT_CODEC_H_

#include <stddef.h>
#include <stdint.h>

#include "agent/proto/pb_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KF_AGENT_VERSION 1u
#define KF_AGENT_VSOCK_PORT 1024u
#define KF_AGENT_STR_MAX 64u /* sandbox id, hostname: 63 bytes + NUL */
#define KF_AGENT_ENTROPY_MIN 32u
#define KF_AGENT_ENTROPY_MAX 256u
#define KF_AGENT_RANDOM_MAX 4096u
#define KF_AGENT_ERROR_MAX 128u /* error message: 127 bytes + NUL */
#define KF_AGENT_PATH_MAX 256u  /* ReadFile path: 255 bytes + NUL */
#define KF_AGENT_READ_FILE_MAX 4096u

/* GuestKind and ErrorCode of agent.proto (open enums: other values decode). */
#define KF_AGENT_GUEST_LINUX 1
#define KF_AGENT_GUEST_BARE 2
#define KF_AGENT_ERR_BAD_FRAME 1
#define KF_AGENT_ERR_BAD_MESSAGE 2
#define KF_AGENT_ERR_UNKNOWN_REQUEST 3
#define KF_AGENT_ERR_BAD_ARGUMENT 4
#define KF_AGENT_ERR_BAD_RANGE 5
#define KF_AGENT_ERR_INTERNAL 6

struct kf_agent_ready {
  uint32_t agent_version;
  int32_t guest_kind;
  uint64_t mem_total;
  uint64_t init_bytes;
  uint64_t init_hash;
  uint64_t boot_ns;
};

struct kf_agent_ping_req { uint64_t echo; };
struct kf_agent_ping_reply { uint64_t echo, pings_served; };

struct kf_agent_set_identity_req {
  char sandbox_id[KF_AGENT_STR_MAX];
  char hostname[KF_AGENT_STR_MAX];
  uint8_t entropy[KF_AGENT_ENTROPY_MAX];
  uint32_t entropy_len;
  uint64_t wall_clock_unix_ns;
};
struct kf_agent_set_identity_reply { uint64_t identity_sets; };

struct kf_agent_get_identity_reply {
  char sandbox_id[KF_AGENT_STR_MAX];
  char hostname[KF_AGENT_STR_MAX];
  uint64_t wall_clock_unix_ns;
  uint64_t identity_sets;
};

struct kf_agent_get_stats_reply {
  uint64_t mem_total, mem_initialised, pages_dirtied, requests_served;
};

struct kf_agent_dirty_pages_req { uint64_t gpa, pages, value; };
struct kf_agent_dirty_pages_reply { uint64_t pages; };
struct kf_agent_hash_range_req { uint64_t gpa, bytes; };
struct kf_agent_hash_range_reply { uint64_t hash; };
struct kf_agent_random_req { uint32_t bytes; };
struct kf_agent_random_reply {
  uint8_t data[KF_AGENT_RANDOM_MAX];
  uint32_t len;
};

struct kf_agent_read_file_req {
  char path[KF_AGENT_PATH_MAX];
  uint32_t max_bytes;
};
struct kf_agent_read_file_reply {
  uint8_t data[KF_AGENT_READ_FILE_MAX];
  uint32_t len;
  uint64_t size;
  uint32_t dax; /* proto bool: 0 or 1 (the same varint) */
};

struct kf_agent_error {
  int32_t code;
  char message[KF_AGENT_ERROR_MAX];
};

enum kf_agent_kind {
  KF_AGENT_NONE = 0,
  KF_AGENT_PING = 1,
  KF_AGENT_SET_IDENTITY = 2,
  KF_AGENT_GET_IDENTITY = 3,
  KF_AGENT_GET_STATS = 4,
  KF_AGENT_DIRTY_PAGES = 5,
  KF_AGENT_HASH_RANGE = 6,
  KF_AGENT_RANDOM = 7,
  KF_AGENT_READ_FILE = 8,
  KF_AGENT_READY = 14, /* Response only */
  KF_AGENT_ERROR = 15  /* Response only */
};

/* GET_IDENTITY and GET_STATS requests carry no fields: kind alone. */
struct kf_agent_request {
  uint32_t kind; /* enum kf_agent_kind, READY/ERROR excluded */
  union {
    struct kf_agent_ping_req ping;
    struct kf_agent_set_identity_req set_identity;
    struct kf_agent_dirty_pages_req dirty_pages;
    struct kf_agent_hash_range_req hash_range;
    struct kf_agent_random_req random;
    struct kf_agent_read_file_req read_file;
  } u;
};

struct kf_agent_response {
  uint32_t kind; /* enum kf_agent_kind */
  union {
    struct kf_agent_ping_reply ping;
    struct kf_agent_set_identity_reply set_identity;
    struct kf_agent_get_identity_reply get_identity;
    struct kf_agent_get_stats_reply get_stats;
    struct kf_agent_dirty_pages_reply dirty_pages;
    struct kf_agent_hash_range_reply hash_range;
    struct kf_agent_random_reply random;
    struct kf_agent_read_file_reply read_file;
    struct kf_agent_ready ready;
    struct kf_agent_error error;
  } u;
};

/* Encode into buf[0..cap); *out_len = bytes written. Byte-for-byte what
 * libprotobuf writes for the same values (fields in number order, defaults
 * omitted). Errors: KF_PB_ERR_NO_SPACE, KF_PB_ERR_BAD_VALUE (unknown kind,
 * unterminated string, a length over its array), KF_PB_ERR_NO_BODY. */
int kf_agent_encode_request(const struct kf_agent_request* m, uint8_t* buf, size_t cap,
                            size_t* out_len);
int kf_agent_encode_response(const struct kf_agent_response* m, uint8_t* buf, size_t cap,
                             size_t* out_len);

/* Decode buf[0..len) into *m (zeroed first). Unknown fields are skipped; an
 * empty payload or an unknown-only one yields kind KF_AGENT_NONE and KF_PB_OK
 * (the caller answers UNKNOWN_REQUEST). Never reads outside buf[0..len). */
int kf_agent_decode_request(const uint8_t* buf, size_t len, struct kf_agent_request* m);
int kf_agent_decode_response(const uint8_t* buf, size_t len, struct kf_agent_response* m);

/* The agent's checks past decoding: a body is present, entropy is 32..256
 * bytes, Random asks for at most KF_AGENT_RANDOM_MAX, ReadFile for at most
 * KF_AGENT_READ_FILE_MAX bytes of an absolute path. Returns 0 or the
 * KF_AGENT_ERR_* code to answer with. */
int kf_agent_request_check(const struct kf_agent_request* m);

#ifdef __cplusplus
}
#endif

#endif /* KF_AGENT_PROTO_AGENT_CODEC_H_ */
