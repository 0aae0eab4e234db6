// How a sandbox VMM process is confined (docs/RELIABILITY.md "The jail").
// The zygote applies these in every sandbox it forks: after the clone's VM
// is restored and its sockets listen, before the guest runs a single
// instruction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kf {

enum class SeccompMode {
  kEnforce,  // a system call outside the allow-list ends the sandbox (SIGSYS)
  kLog,      // allowed, but the kernel logs it (audit): to build the list
  kOff,      // no filter
};

std::optional<SeccompMode> ParseSeccompMode(std::string_view name);
const char* SeccompModeName(SeccompMode mode);

struct JailOptions {
  SeccompMode seccomp = SeccompMode::kEnforce;
  // Empty the capability sets and the bounding set, and set no_new_privs.
  bool drop_capabilities = true;
  // The sandbox's own uid and gid (factory/jail/sandbox_uids.h), switched
  // to on the way in; 0: it keeps the zygote's. Set per clone.
  uint32_t uid = 0;
};

}  // namespace kf
