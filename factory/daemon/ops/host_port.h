// TCP listen addresses as the config writes them: "127.0.0.1:9464",
// "[::1]:9464", "0.0.0.0:9464", "localhost:9464".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::ops {

struct HostPort {
  std::string host;  // without brackets: "::1"
  uint16_t port = 0;
};

// "HOST:PORT" or "[V6]:PORT". The host is required (no implicit "all
// interfaces"): exposing a port beyond the host is an explicit 0.0.0.0 or [::].
// Port 0 is allowed (the kernel picks one; tests use it).
Result<HostPort> ParseHostPort(std::string_view text);

// A listening, non-blocking, close-on-exec TCP socket on `address`
// (ParseHostPort syntax), SO_REUSEADDR set.
Result<UniqueFd> ListenTcp(std::string_view address, int backlog = 64);

// The port a bound socket got (for port 0).
Result<uint16_t> LocalPort(int fd);

}  // namespace kf::ops
