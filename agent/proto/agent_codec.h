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

/* Containers (issue #7): the caps of proto/agent.proto's comments. */
#define KF_AGENT_ID_MAX 64u         /* container and exec ids: 63 bytes + NUL */
#define KF_AGENT_ARGV_ENTRIES 64u   /* Process.args, Process.env */
#define KF_AGENT_ARGV_BYTES 8192u   /* ... all entries with their NULs */
#define KF_AGENT_STRV_ITEM_MAX 4095u /* one entry of any repeated string */
#define KF_AGENT_OPTV_ENTRIES 16u   /* Mount.options */
#define KF_AGENT_NAMESPACES_MAX 8u  /* CreateContainer.namespaces */
#define KF_AGENT_OPTV_BYTES 256u    /* either, with their NULs */
#define KF_AGENT_FSTYPE_MAX 32u     /* Mount.type: 31 bytes + NUL */
#define KF_AGENT_MOUNTS_MAX 8u
#define KF_AGENT_STDIO_MAX 4096u    /* ReadStdout/ReadStderr/WriteStdin data */
#define KF_AGENT_WAIT_MAX_MS 5000u  /* WaitProcess.timeout_ms, ReadStream.wait_ms */

/* GuestKind and ErrorCode of agent.proto (open enums: other values decode). */
#define KF_AGENT_GUEST_LINUX 1
#define KF_AGENT_GUEST_BARE 2
#define KF_AGENT_ERR_BAD_FRAME 1
#define KF_AGENT_ERR_BAD_MESSAGE 2
#define KF_AGENT_ERR_UNKNOWN_REQUEST 3
#define KF_AGENT_ERR_BAD_ARGUMENT 4
#define KF_AGENT_ERR_BAD_RANGE 5
#define KF_AGENT_ERR_INTERNAL 6
#define KF_AGENT_ERR_NOT_FOUND 7
#define KF_AGENT_ERR_ALREADY_EXISTS 8
#define KF_AGENT_ERR_FAILED_PRECONDITION 9
#define KF_AGENT_ERR_UNSUPPORTED 10
#define KF_AGENT_ERR_RESOURCE_EXHAUSTED 11

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

/* A `repeated string` field: `count` NUL-terminated strings packed one after
 * another in pool[0..used). Both kinds share the layout {count, used, pool}
 * (the codec relies on it); kf_agent_strv_add() appends, kf_agent_strv_next()
 * walks. */
struct kf_agent_argv {
  uint32_t count, used;
  char pool[KF_AGENT_ARGV_BYTES];
};
struct kf_agent_optv {
  uint32_t count, used;
  char pool[KF_AGENT_OPTV_BYTES];
};

struct kf_agent_process {
  struct kf_agent_argv args, env;
  char cwd[KF_AGENT_PATH_MAX];
  uint32_t uid, gid;
  uint32_t terminal; /* proto bool */
};

struct kf_agent_mount {
  char destination[KF_AGENT_PATH_MAX];
  char type[KF_AGENT_FSTYPE_MAX];
  char source[KF_AGENT_PATH_MAX];
  struct kf_agent_optv options;
};

struct kf_agent_create_container_req {
  char container_id[KF_AGENT_ID_MAX];
  char rootfs[KF_AGENT_PATH_MAX];
  uint32_t has_process; /* an embedded message's presence: 1 = sent */
  struct kf_agent_process process;
  char hostname[KF_AGENT_STR_MAX];
  uint32_t mounts_count;
  struct kf_agent_mount mounts[KF_AGENT_MOUNTS_MAX];
  struct kf_agent_optv namespaces;
};
struct kf_agent_exec_process_req {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
  uint32_t has_process;
  struct kf_agent_process process;
};
/* StartContainer, CloseStdin, RemoveContainer (exec_id unused by two). */
struct kf_agent_process_ref {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
};
struct kf_agent_wait_process_req {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
  uint32_t timeout_ms;
};
struct kf_agent_signal_process_req {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
  uint32_t signal;
};
struct kf_agent_read_stream_req {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
  uint32_t max_bytes, wait_ms;
};
struct kf_agent_write_stdin_req {
  char container_id[KF_AGENT_ID_MAX];
  char exec_id[KF_AGENT_ID_MAX];
  uint8_t data[KF_AGENT_STDIO_MAX];
  uint32_t len;
};

struct kf_agent_pid_reply { uint32_t pid; }; /* Create/Start/Exec */
struct kf_agent_wait_process_reply {
  uint32_t exited; /* proto bool */
  int32_t exit_code, signal;
};
struct kf_agent_read_stream_reply {
  uint8_t data[KF_AGENT_STDIO_MAX];
  uint32_t len;
  uint32_t eof; /* proto bool */
};
struct kf_agent_write_stdin_reply { uint32_t len; };

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
  KF_AGENT_CREATE_CONTAINER = 9,
  KF_AGENT_START_CONTAINER = 10,
  KF_AGENT_EXEC_PROCESS = 11,
  KF_AGENT_WAIT_PROCESS = 12,
  KF_AGENT_SIGNAL_PROCESS = 13,
  KF_AGENT_READY = 14, /* Response only */
  KF_AGENT_ERROR = 15, /* Response only */
  KF_AGENT_READ_STDOUT = 16,
  KF_AGENT_READ_STDERR = 17,
  KF_AGENT_WRITE_STDIN = 18,
  KF_AGENT_CLOSE_STDIN = 19,
  KF_AGENT_REMOVE_CONTAINER = 20,
  KF_AGENT_KIND_LIMIT = 21 /* one past the largest kind */
};

/* GET_IDENTITY and GET_STATS requests carry no fields: kind alone; so do
 * the replies of SignalProcess, CloseStdin and RemoveContainer. Requests that
 * name a process share struct kf_agent_process_ref's leading fields. */
struct kf_agent_request {
  uint32_t kind; /* enum kf_agent_kind, READY/ERROR excluded */
  union {
    struct kf_agent_ping_req ping;
    struct kf_agent_set_identity_req set_identity;
    struct kf_agent_dirty_pages_req dirty_pages;
    struct kf_agent_hash_range_req hash_range;
    struct kf_agent_random_req random;
    struct kf_agent_read_file_req read_file;
    struct kf_agent_create_container_req create_container;
    struct kf_agent_process_ref start_container; /* container_id only */
    struct kf_agent_exec_process_req exec_process;
    struct kf_agent_wait_process_req wait_process;
    struct kf_agent_signal_process_req signal_process;
    struct kf_agent_read_stream_req read_stream; /* READ_STDOUT, READ_STDERR */
    struct kf_agent_write_stdin_req write_stdin;
    struct kf_agent_process_ref close_stdin;
    struct kf_agent_process_ref remove_container; /* container_id only */
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
    struct kf_agent_pid_reply pid; /* CREATE_CONTAINER, START_CONTAINER, EXEC_PROCESS */
    struct kf_agent_wait_process_reply wait_process;
    struct kf_agent_read_stream_reply read_stream; /* READ_STDOUT, READ_STDERR */
    struct kf_agent_write_stdin_reply write_stdin;
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

/* Decode buf[0..len) into *m: its kind, and the union member of that kind
 * (zeroed first; the rest of the union is left as it was). Unknown fields are skipped; an
 * empty payload or an unknown-only one yields kind KF_AGENT_NONE and KF_PB_OK
 * (the caller answers UNKNOWN_REQUEST). Proto bools read as 0 or 1: any
 * non-zero varint is 1, as libprotobuf reads it. Never reads outside buf[0..len). */
int kf_agent_decode_request(const uint8_t* buf, size_t len, struct kf_agent_request* m);
int kf_agent_decode_response(const uint8_t* buf, size_t len, struct kf_agent_response* m);

/* The agent's checks past decoding: a body is present, entropy is 32..256
 * bytes, Random asks for at most KF_AGENT_RANDOM_MAX, ReadFile for at most
 * KF_AGENT_READ_FILE_MAX bytes of an absolute path; container calls: ids
 * well formed (1..63 bytes of [A-Za-z0-9_.-]; exec_id may be empty where it
 * names the container's own process), a Process with at least one arg,
 * absolute paths, reads of at most KF_AGENT_STDIO_MAX bytes, waits of at
 * most KF_AGENT_WAIT_MAX_MS, signals 1..64. Returns 0 or the KF_AGENT_ERR_*
 * code to answer with; *why (when not NULL) gets a short English reason. */
int kf_agent_request_check(const struct kf_agent_request* m);
int kf_agent_request_check_why(const struct kf_agent_request* m, const char** why);

/* Appends s (NUL-terminated) to a repeated string field, `strv` pointing at
 * a struct kf_agent_argv or kf_agent_optv and pool_cap/max_entries its caps.
 * Returns KF_PB_OK, KF_PB_ERR_TOO_LONG (full, or s over
 * KF_AGENT_STRV_ITEM_MAX bytes). */
int kf_agent_strv_add(void* strv, size_t pool_cap, uint32_t max_entries, const char* s);
/* The entry after `prev` (NULL: the first), or NULL past the last. */
const char* kf_agent_strv_next(const void* strv, const char* prev);
#define KF_AGENT_ARGV_ADD(v, s) kf_agent_strv_add((v), KF_AGENT_ARGV_BYTES, KF_AGENT_ARGV_ENTRIES, (s))

#ifdef __cplusplus
}
#endif

#endif /* KF_AGENT_PROTO_AGENT_CODEC_H_ */
