#include "factory/jail/sandbox_uids.h"

#include <linux/capability.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <limits>

#include "factory/jail/capabilities.h"

namespace kf {

namespace {

bool ParseU32(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// "FIRST..LAST", for messages.
std::string RangeText(uint32_t first, uint32_t count) {
  return std::to_string(first) + ".." + std::to_string(uint64_t{first} + count - 1);
}

}  // namespace

Result<SandboxUidSpec> ParseSandboxUids(std::string_view text) {
  SandboxUidSpec spec;
  if (text == "auto") return spec;
  if (text == "off") {
    spec.mode = SandboxUidSpec::kOff;
    return spec;
  }
  const size_t colon = text.find(':');
  const std::string why = "sandbox uids '" + std::string(text) +
                          "' is not auto, off or FIRST:COUNT (e.g. 2000000000:65536)";
  if (colon == std::string_view::npos) return Error(why, EINVAL);
  spec.mode = SandboxUidSpec::kRange;
  if (!ParseU32(text.substr(0, colon), &spec.first) ||
      !ParseU32(text.substr(colon + 1), &spec.count))
    return Error(why, EINVAL);
  if (spec.first == 0 || spec.count == 0)
    return Error("sandbox uids '" + std::string(text) + "': the range must not include 0 or be empty",
                 EINVAL);
  // uid_t -1 is "no change" to setresuid; 65534 is nobody, shared by all.
  const uint64_t last = uint64_t{spec.first} + spec.count - 1;
  if (last >= std::numeric_limits<uint32_t>::max() || (spec.first <= 65534 && last >= 65534))
    return Error("sandbox uids '" + std::string(text) +
                     "': the range must stay below 4294967295 and not include 65534 (nobody)",
                 EINVAL);
  return spec;
}

std::string SandboxUidSpecText(const SandboxUidSpec& spec) {
  switch (spec.mode) {
    case SandboxUidSpec::kAuto: return "auto";
    case SandboxUidSpec::kOff: return "off";
    case SandboxUidSpec::kRange: break;
  }
  return std::to_string(spec.first) + ":" + std::to_string(spec.count);
}

bool IdRangeMapped(const std::string& map_file, uint32_t first, uint32_t count) {
  std::ifstream in(map_file);
  uint64_t inside = 0, outside = 0, length = 0;
  while (in >> inside >> outside >> length)
    if (inside <= first && uint64_t{first} + count <= inside + length) return true;
  return false;
}

std::string SandboxUidsUnavailableReason(uint32_t first, uint32_t count) {
  // setresuid/setresgid/setgroups to arbitrary ids need CAP_SETUID and
  // CAP_SETGID; in practice, a root daemon.
  if (!HasCapability(CAP_SETUID) || !HasCapability(CAP_SETGID))
    return "switching user ids needs CAP_SETUID and CAP_SETGID (run the daemon as root); "
           "sandboxes run as uid " + std::to_string(::geteuid());
  for (const char* map : {"/proc/self/uid_map", "/proc/self/gid_map"})
    if (!IdRangeMapped(map, first, count))
      return "ids " + RangeText(first, count) + " are not all mapped in this user namespace (" + map +
             "; a rootless container?): give sandbox_uids a mapped FIRST:COUNT";
  return "";
}

Result<SandboxUids> SandboxUids::Setup(const SandboxUidSpec& spec) {
  SandboxUids u;
  if (spec.mode == SandboxUidSpec::kOff) {
    u.description_ = "off (sandbox_uids = off): sandboxes run as the daemon's user";
    return u;
  }
  const bool explicit_range = spec.mode == SandboxUidSpec::kRange;
  const uint32_t first = explicit_range ? spec.first : kDefaultSandboxUidFirst;
  const uint32_t count = explicit_range ? spec.count : kDefaultSandboxUidCount;
  if (std::string why = SandboxUidsUnavailableReason(first, count); !why.empty()) {
    if (explicit_range)
      return Error("sandbox uids " + SandboxUidSpecText(spec) + ": " + why, EPERM);
    u.description_ = why;
    return u;
  }
  u.first_ = first;
  u.count_ = count;
  u.in_use_.assign(count, false);
  u.description_ = RangeText(first, count);
  return u;
}

SandboxUids::SandboxUids(SandboxUids&& other) noexcept
    : first_(other.first_),
      count_(other.count_),
      description_(std::move(other.description_)),
      in_use_(std::move(other.in_use_)),
      next_(other.next_),
      live_(other.live_) {
  other.count_ = 0;
}

std::optional<uint32_t> SandboxUids::Allocate() {
  std::lock_guard lock(mu_);
  if (live_ == count_) return std::nullopt;
  while (in_use_[next_]) next_ = (next_ + 1) % count_;
  const uint32_t slot = next_;
  in_use_[slot] = true;
  ++live_;
  next_ = (slot + 1) % count_;
  return first_ + slot;
}

void SandboxUids::Free(uint32_t id) {
  std::lock_guard lock(mu_);
  if (id < first_ || id - first_ >= count_ || !in_use_[id - first_]) return;
  in_use_[id - first_] = false;
  --live_;
}

uint32_t SandboxUids::live() const {
  std::lock_guard lock(mu_);
  return live_;
}

}  // namespace kf
