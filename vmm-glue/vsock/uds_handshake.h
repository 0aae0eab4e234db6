// The host side of hybrid vsock (as Firecracker does it): a client of a VM's
// agent.sock first writes `CONNECT <port>\n`, naming the guest's vsock port;
// the VMM answers `OK <host-port>\n` once the guest accepted, and from then on
// the Unix socket carries the connection's bytes.
//
// The client is untrusted (any local process that can open the socket), so
// the line is parsed strictly and with a hard length cap, and bytes arrive in
// whatever pieces the socket delivers them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmm-glue/result.h"

namespace kf::vsock {

struct ConnectRequest {
  uint32_t port = 0;     // the guest vsock port asked for
  size_t consumed = 0;   // bytes of the last Feed() input up to and including '\n'
};

// Parses one `CONNECT <port>\n` line fed in any number of pieces:
//   "CONNECT", one space, 1+ ASCII digits (a value < 2^32), '\n'
// and nothing else: no CR, no sign, no other spaces. Leading zeros are
// allowed; the whole line, newline included, is at most kMaxLine bytes.
//
// Errors are reported as soon as a byte makes the line invalid (a client
// sending "GET / HTTP/1.1" is refused at 'G', not after a timeout).
class ConnectLineParser {
 public:
  static constexpr size_t kMaxLine = 32;

  // std::nullopt: all of `data` was taken and the line is not complete yet.
  // A ConnectRequest: the line is complete; data[consumed..] is already
  // stream payload that the caller must keep. An Error says what was wrong.
  // After a request or an error the parser is done; further calls fail.
  Result<std::optional<ConnectRequest>> Feed(std::string_view data);

 private:
  Error Fail(std::string what);

  static constexpr std::string_view kVerb = "CONNECT";
  size_t line_len_ = 0;  // bytes taken so far
  size_t digits_ = 0;    // digits of the port so far
  uint64_t port_ = 0;
  bool done_ = false;
};

// The reply once the guest accepted: "OK <host_port>\n".
std::string FormatConnectReply(uint32_t host_port);

}  // namespace kf::vsock
