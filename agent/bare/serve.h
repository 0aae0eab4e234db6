/*
 * The agent's requests (proto/agent.proto): decode one request payload,
 * check it, act, and fill in the response. Knows nothing of frames or vsock.
 */
#ifndef KF_AGENT_BARE_SERVE_H_
#define KF_AGENT_BARE_SERVE_H_

#include <stddef.h>
#include <stdint.h>

#include "agent/proto/agent_codec.h"

/* What boot measured; GetStats and Ready report it. */
void kf_serve_init(uint64_t mem_size, uint64_t init_bytes, uint64_t init_hash);

/* Serves the request payload buf[0..len) into *resp: a reply of the
 * request's kind or an ErrorReply (BAD_MESSAGE, UNKNOWN_REQUEST,
 * BAD_ARGUMENT, BAD_RANGE). Counts it in requests_served. */
void kf_serve_request(const uint8_t* buf, size_t len, struct kf_agent_response* resp);

/* The Ready message sent first on every connection. */
void kf_serve_ready(struct kf_agent_response* resp);

/* An ErrorReply with a short message. */
void kf_serve_error(struct kf_agent_response* resp, int32_t code, const char* message);

#endif /* KF_AGENT_BARE_SERVE_H_ */
