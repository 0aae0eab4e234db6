// Entering the jail (docs/RELIABILITY.md "The jail"): what a sandbox VMM
// does once its clone is restored and before the guest runs.
#pragma once

#include <initializer_list>
#include <string>

#include "factory/jail/jail_options.h"
#include "vmm-glue/result.h"

namespace kf {

// Switches to the sandbox's own ids (if it has them), drops capabilities
// (if asked), then installs the seccomp filter.
// Irreversible; call once, in the sandbox process only.
Status EnterJail(const JailOptions& options);

// Closes every descriptor of the calling process except `keep` (sorted or
// not) and 0-2: what a forked sandbox does first, so nothing the zygote
// held for others (its request socket, other clones' sockets) survives.
void CloseAllExcept(std::initializer_list<int> keep);

}  // namespace kf
