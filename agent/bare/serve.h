/*
 * The bare platform's side of the protocol core (agent/core/core.h): guest
 * physical memory, the xoshiro RNG, no clock or hostname. Knows nothing of
 * frames or vsock.
 */
#ifndef KF_AGENT_BARE_SERVE_H_
#define KF_AGENT_BARE_SERVE_H_

#include <stdint.h>

/* What boot measured (GetStats and Ready report it); installs the bare
 * platform's operations in the core. */
void kf_serve_init(uint64_t mem_size, uint64_t init_bytes, uint64_t init_hash);

#endif /* KF_AGENT_BARE_SERVE_H_ */
