// The CONNECT line parser (uds_handshake.h): a byte-at-a-time state machine,
// so split delivery needs no buffer and every error is found at its byte.
#include "vmm-glue/vsock/uds_handshake.h"

#include <cstdio>

namespace kf::vsock {
namespace {

// A byte as it should appear in an error message: printable or \xNN.
std::string Show(char c) {
  if (c == '\n') return "'\\n'";
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  char hex[8];
  std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
  return hex;
}

}  // namespace

Error ConnectLineParser::Fail(std::string what) {
  done_ = true;
  return Error("vsock handshake: " + what + " (expected \"CONNECT <port>\\n\")");
}

Result<std::optional<ConnectRequest>> ConnectLineParser::Feed(std::string_view data) {
  if (done_) return Error("vsock handshake: already finished");
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    const size_t pos = line_len_++;
    // At the cap only the '\n' fits: any other byte there already makes
    // the line too long (refused now, not after the client's next byte).
    if (line_len_ > kMaxLine || (line_len_ == kMaxLine && c != '\n')) {
      return Fail("line longer than " + std::to_string(kMaxLine) + " bytes");
    }
    if (pos < kVerb.size()) {  // the verb, case-sensitive
      if (c != kVerb[pos]) return Fail("wrong verb: " + Show(c) + " at byte " + std::to_string(pos));
      continue;
    }
    if (pos == kVerb.size()) {  // exactly one space after the verb
      if (c == ' ') continue;
      return Fail(c == '\n' ? std::string("missing port") : "wrong verb: " + Show(c) + " after CONNECT");
    }
    if (c >= '0' && c <= '9') {
      port_ = port_ * 10 + static_cast<uint64_t>(c - '0');
      ++digits_;
      if (port_ > UINT32_MAX) return Fail("port out of range (max 4294967295)");
      continue;
    }
    if (c == '\n') {
      if (digits_ == 0) return Fail("missing port");
      done_ = true;
      return std::optional<ConnectRequest>(ConnectRequest{static_cast<uint32_t>(port_), i + 1});
    }
    if (c == ' ') return Fail(digits_ == 0 ? "extra space before port" : "extra space after port");
    return Fail("non-digit " + Show(c) + " in port");
  }
  return std::optional<ConnectRequest>();
}

std::string FormatConnectReply(uint32_t host_port) {
  return "OK " + std::to_string(host_port) + "\n";
}

}  // namespace kf::vsock
