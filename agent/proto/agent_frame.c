/* The agent frame header (agent_frame.h). Both directions share one check so
 * a sender cannot produce what its peer would refuse. */
#include "agent/proto/agent_frame.h"

static int header_check(const struct kf_agent_frame_header* h) {
  if (h->length > KF_AGENT_FRAME_MAX) return KF_PB_ERR_FRAME_LENGTH;
  if (h->type != KF_AGENT_FRAME_REQUEST && h->type != KF_AGENT_FRAME_RESPONSE)
    return KF_PB_ERR_FRAME_TYPE;
  if (h->flags != 0) return KF_PB_ERR_FRAME_FLAGS;
  return KF_PB_OK;
}

static void put_be32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int kf_agent_frame_header_encode(const struct kf_agent_frame_header* h,
                                 uint8_t out[KF_AGENT_FRAME_HEADER_SIZE]) {
  int rc = header_check(h);
  if (rc != KF_PB_OK) return rc;
  put_be32(out, h->length);
  put_be32(out + 4, h->stream_id);
  out[8] = h->type;
  out[9] = h->flags;
  return KF_PB_OK;
}

int kf_agent_frame_header_decode(const uint8_t in[KF_AGENT_FRAME_HEADER_SIZE],
                                 struct kf_agent_frame_header* h) {
  h->length = get_be32(in);
  h->stream_id = get_be32(in + 4);
  h->type = in[8];
  h->flags = in[9];
  return header_check(h);
}
