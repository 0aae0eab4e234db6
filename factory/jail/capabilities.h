// Privilege drop for a sandbox VMM: by the time the guest runs, the process
// holds every descriptor it needs (/dev/kvm, its VM and vCPUs, its sockets),
// so it keeps no capability, and where the daemon gives it one, it runs as
// a user and group of its own (factory/jail/sandbox_uids.h). Without one
// it stays the daemon's user: a root daemon's sandboxes are then uid 0
// without capabilities, and seccomp (which forbids opening files) is what
// keeps them off the file system.
#pragma once

#include <cstdint>

#include "vmm-glue/result.h"

namespace kf {

// Sets no_new_privs, clears the bounding set (needs CAP_SETPCAP: skipped
// without it, there is nothing to clear that could be gained back once
// no_new_privs is set), then empties the effective, permitted and
// inheritable sets and the ambient set. With `uid` non-zero, switches to
// uid = gid = `uid` and no supplementary groups on the way (after the
// bounding set, which needs CAP_SETPCAP; before the sets are emptied).
// Irreversible.
Status DropCapabilities(uint32_t uid = 0);

// Only the id switch of DropCapabilities, for a sandbox that keeps its
// capabilities otherwise: the kernel clears them as the uid leaves 0.
Status SwitchToSandboxIds(uint32_t uid);

// Whether the calling process has any capability, or `cap`, in its
// effective set.
bool HasAnyCapability();
bool HasCapability(int cap);

}  // namespace kf
