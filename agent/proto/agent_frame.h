/*
 * The frame header of the agent protocol (docs/AGENT_PROTOCOL.md): ttRPC's
 * layout, 10 bytes, big-endian, before every protobuf payload.
 *
 *   0      4          8      9       10
 *   | length | stream id | type | flags | payload (length bytes) ...
 */
#ifndef KF_AGENT_PROTO_AGENT_FRAME_H_
#define KF_AGENT_PROTO_AGENT_FRAME_H_

#include <stdint.h>

#include "agent/proto/pb_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KF_AGENT_FRAME_HEADER_SIZE 10u
/* Largest payload either side sends or accepts: a Random reply of 4 KiB and
 * a SetIdentity fit many times over; a bigger length means a broken peer. */
#define KF_AGENT_FRAME_MAX (64u * 1024u)

#define KF_AGENT_FRAME_REQUEST 1u
#define KF_AGENT_FRAME_RESPONSE 2u
/* Stream 0 is the agent's own (Ready); hosts number requests from 1. */
#define KF_AGENT_STREAM_AGENT 0u

struct kf_agent_frame_header {
  uint32_t length; /* payload bytes after the header */
  uint32_t stream_id;
  uint8_t type;  /* KF_AGENT_FRAME_REQUEST or _RESPONSE */
  uint8_t flags; /* none defined yet: must be 0 */
};

/* Writes the 10 header bytes; KF_PB_ERR_FRAME_* if h is not a valid header. */
int kf_agent_frame_header_encode(const struct kf_agent_frame_header* h,
                                 uint8_t out[KF_AGENT_FRAME_HEADER_SIZE]);
/* Reads and validates 10 header bytes (length cap, type, flags). */
int kf_agent_frame_header_decode(const uint8_t in[KF_AGENT_FRAME_HEADER_SIZE],
                                 struct kf_agent_frame_header* h);

#ifdef __cplusplus
}
#endif

#endif /* KF_AGENT_PROTO_AGENT_FRAME_H_ */
