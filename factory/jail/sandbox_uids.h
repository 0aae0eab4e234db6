// A user and group id of its own per sandbox VMM (docs/RELIABILITY.md "The
// jail"), as Firecracker's jailer gives each microVM: should a VMM get past
// its seccomp filter, it is still an unprivileged user that owns nothing and
// shares nothing with its neighbours (it cannot signal or ptrace them, read
// their /proc, or connect to their sockets).
//
// The daemon hands out ids from a range, one per live clone; the sandbox
// switches to it (uid = gid = the id, no supplementary groups) in
// EnterJail, after everything it needs is open. The clone's run directory
// is group-owned by that gid (mode 0750), so the VMM can reach
// agent.sock_<port> listeners there for guest-initiated streams; such a
// listener must be group-writable for that gid (VM.sandbox_uid says which).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm-glue/result.h"

namespace kf {

struct SandboxUidSpec {
  enum Mode { kAuto, kOff, kRange } mode = kAuto;
  uint32_t first = 0, count = 0;  // kRange
};
// The default range of "auto": far above login users and systemd's dynamic
// and container ranges (0x80000-0x6fffffff are nspawn's), below 2^31 so
// nothing that reads uids as signed sees a negative one.
inline constexpr uint32_t kDefaultSandboxUidFirst = 2000000000;
inline constexpr uint32_t kDefaultSandboxUidCount = 65536;

// "auto" (root: the default range; otherwise off, with the reason), "off",
// or "FIRST:COUNT" (e.g. "2000000000:65536"; the daemon must be able to
// switch ids). Error: a clear message.
Result<SandboxUidSpec> ParseSandboxUids(std::string_view text);
std::string SandboxUidSpecText(const SandboxUidSpec& spec);

// Why this process cannot give sandboxes the ids [first, first + count);
// "" if it can (for `kata-factory host` and "auto"): it needs CAP_SETUID
// and CAP_SETGID, and the ids must exist in its user namespace (a daemon
// that is root in a rootless container has the capabilities but only the
// ids its uid_map and gid_map give it).
std::string SandboxUidsUnavailableReason(uint32_t first = kDefaultSandboxUidFirst,
                                         uint32_t count = kDefaultSandboxUidCount);

// Whether one line of a /proc/PID/uid_map or gid_map format file maps all of
// [first, first + count) (the ids as this namespace sees them).
bool IdRangeMapped(const std::string& map_file, uint32_t first, uint32_t count);

class SandboxUids {
 public:
  // kOff, or kAuto where ids cannot be switched: a disabled instance whose
  // description() says why. kRange where they cannot: the error.
  static Result<SandboxUids> Setup(const SandboxUidSpec& spec);
  SandboxUids() = default;
  SandboxUids(SandboxUids&& other) noexcept;

  bool enabled() const { return count_ != 0; }
  // Enabled: the range ("2000000000..2000065535"); disabled: why not.
  const std::string& description() const { return description_; }

  // A free id, or nullopt when every id of the range is live. Ids go round
  // the range, so one just freed is the last to be handed out again (its
  // old VMM may still be exiting). Thread-safe.
  std::optional<uint32_t> Allocate();
  void Free(uint32_t id);
  uint32_t live() const;

 private:
  uint32_t first_ = 0, count_ = 0;
  std::string description_;
  mutable std::mutex mu_;
  std::vector<bool> in_use_;
  uint32_t next_ = 0, live_ = 0;
};

}  // namespace kf
