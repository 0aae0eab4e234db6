/*
 * The hostile test mode (KF_BOOT_FLAG_HOSTILE): proves that the VMM's vsock
 * device survives a malicious guest. After READY the guest never serves the
 * protocol; on every wake it scribbles seeded garbage into its virtqueues
 * and notifies, a bounded number of rounds, then goes back to WAIT.
 */
#ifndef KF_AGENT_BARE_HOSTILE_H_
#define KF_AGENT_BARE_HOSTILE_H_

#include <stdint.h>

/* Never returns. `seed` makes a run reproducible; `mem_size` aims the
 * "just outside RAM" addresses. The device must already be DRIVER_OK. */
__attribute__((noreturn)) void kf_hostile_run(uint64_t seed, uint64_t mem_size);

#endif /* KF_AGENT_BARE_HOSTILE_H_ */
