/*
 * The agent's RNG: xoshiro256** seeded from the boot seed and reseeded from
 * the entropy every SetIdentity brings. Clones of one template share the
 * state until then, which is exactly why the factory sends fresh entropy to
 * each clone. It is not a cryptographic generator.
 */
#ifndef KF_AGENT_BARE_RNG_H_
#define KF_AGENT_BARE_RNG_H_

#include <stdint.h>

/* splitmix64: advances *x and returns a well-mixed word. */
uint64_t kf_splitmix64(uint64_t* x);

/* Mixes new material into the whole state (never leaves it all-zero). */
void kf_rng_mix(uint64_t material);

uint64_t kf_rng_next(void);

#endif /* KF_AGENT_BARE_RNG_H_ */
