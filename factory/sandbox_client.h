// The requester's side of a sandbox control socket: typed calls to the
// agent (ping, identity, dirty pages, hash, random) and to the VMM
// (timings). Every reply is checked; a dead or silent sandbox is an error.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "factory/sandbox_protocol.h"
#include "vmm-glue/result.h"

namespace kf {

struct Identity {
  std::string sandbox_id;
  std::string hostname;
  std::array<uint8_t, KF_ENTROPY_BYTES> entropy{};  // sent only, never read back
  uint64_t wall_clock_ns = 0;
  uint64_t identity_sets = 0;                         // read back only
};

class SandboxClient {
 public:
  explicit SandboxClient(int control_fd, int timeout_ms = 30000)
      : fd_(control_fd), timeout_ms_(timeout_ms) {}

  Result<SandboxReply> Call(const SandboxRequest& request);

  Result<uint64_t> Ping(uint64_t echo);  // returns pings served so far
  Result<Identity> GetIdentity();
  Status SetIdentity(const Identity& id);
  Result<uint64_t> DirtyPages(uint64_t gpa, uint64_t pages, uint64_t value);
  Result<uint64_t> HashRange(uint64_t gpa, uint64_t bytes);
  Result<std::vector<uint8_t>> Random(uint32_t bytes);
  Result<SandboxTimings> Timings();

 private:
  Result<SandboxReply> CallOk(const SandboxRequest& request, const char* what);
  int fd_;
  int timeout_ms_;
};

// Fresh identity for a clone: the id and hostname given, 32 bytes from
// getrandom(), and the host's wall clock.
Result<Identity> FreshIdentity(const std::string& sandbox_id);

}  // namespace kf
