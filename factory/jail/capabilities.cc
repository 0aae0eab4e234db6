#include "factory/jail/capabilities.h"

#include <linux/capability.h>
#include <linux/securebits.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace kf {

namespace {

// capget/capset directly: libcap would be one more dependency for two calls.
bool GetCaps(__user_cap_data_struct (&data)[_LINUX_CAPABILITY_U32S_3]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return ::syscall(SYS_capget, &header, data) == 0;
}

}  // namespace

bool HasAnyCapability() {
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (!GetCaps(data)) return false;
  for (const auto& d : data)
    if (d.effective != 0) return true;
  return false;
}

bool HasCapability(int cap) {
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (!GetCaps(data)) return false;
  return (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap)) != 0;
}

Status SwitchToSandboxIds(uint32_t uid) {
  // Groups first: setgroups and setresgid need CAP_SETGID, which the uid
  // switch takes away unless SECBIT_NO_SETUID_FIXUP is set.
  if (::setgroups(0, nullptr) < 0) return Error::Sys("setgroups (none)");
  if (::setresgid(uid, uid, uid) < 0) return Error::Sys("setresgid " + std::to_string(uid));
  if (::setresuid(uid, uid, uid) < 0) return Error::Sys("setresuid " + std::to_string(uid));
  return Status::Ok();
}

Status DropCapabilities(uint32_t uid) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return Error::Sys("prctl(PR_SET_NO_NEW_PRIVS)");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return Error::Sys("clearing the ambient capabilities");
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (!GetCaps(data)) return Error::Sys("capget");
  const bool can_setpcap = (data[CAP_TO_INDEX(CAP_SETPCAP)].effective & CAP_TO_MASK(CAP_SETPCAP)) != 0;
  if (can_setpcap) {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) <= 0) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
        return Error::Sys("dropping capability " + std::to_string(cap) + " from the bounding set");
    }
    // uid 0 must not regain capabilities (execve, setuid): seccomp already
    // forbids both, this says so to the kernel as well.
    const int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
    if (::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0) return Error::Sys("prctl(PR_SET_SECUREBITS)");
  }
  // With SECBIT_NO_SETUID_FIXUP (when it could be set) the sets survive the
  // switch, and the capset below empties them; without it the kernel does.
  if (uid != 0) RETURN_IF_ERROR(SwitchToSandboxIds(uid));
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, none) < 0) return Error::Sys("capset (dropping all)");
  return Status::Ok();
}

}  // namespace kf
