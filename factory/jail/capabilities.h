// Privilege drop for a sandbox VMM: by the time the guest runs, the process
// holds every descriptor it needs (/dev/kvm, its VM and vCPUs, its sockets),
// so it keeps no capability. Runs as the daemon's user; a root daemon's
// sandboxes are uid 0 without capabilities, and seccomp (which forbids
// opening files) is what keeps them off the file system.
#pragma once

#include "vmm-glue/result.h"

namespace kf {

// Sets no_new_privs, clears the bounding set (needs CAP_SETPCAP: skipped
// without it, there is nothing to clear that could be gained back once
// no_new_privs is set), then empties the effective, permitted and
// inheritable sets and the ambient set. Irreversible.
Status DropCapabilities();

// Whether the calling process has any capability in its effective set.
bool HasAnyCapability();

}  // namespace kf
