// libFuzzer target: the hybrid-vsock handshake parser
// (vmm-glue/vsock/uds_handshake.h), which reads `CONNECT <port>\n` from any
// local process that can open a VM's agent.sock.
//
// Feeds: input[0] picks a piece size (0: the whole line at once), the rest is
// what the client sends. The parser gets it in pieces of that size, byte by
// byte, and whole.
// Checks: the three agree (outcome, port, where the line ends, error text);
// the outcome is the one an independent reading of the grammar gives
// (Expected below); a finished parser refuses more input; the "OK <port>\n"
// reply names the port.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_util.h"
#include "vmm-glue/vsock/uds_handshake.h"

namespace {

using kf::vsock::ConnectLineParser;

// What feeding `stream` produced: a port and the stream offset just past the
// '\n', an error message, or neither yet.
struct Outcome {
  bool complete = false;
  uint32_t port = 0;
  size_t end = 0;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

Outcome Feed(std::string_view stream, size_t piece) {
  ConnectLineParser parser;
  Outcome out;
  if (piece == 0) piece = stream.size() + 1;
  for (size_t at = 0; at < stream.size(); at += piece) {
    auto r = parser.Feed(stream.substr(at, piece));
    if (!r.ok()) {
      out.error = r.error().message();
      KF_FUZZ_CHECK(!out.error.empty(), "an error without a message");
      break;
    }
    if (r->has_value()) {
      out.complete = true;
      out.port = (*r)->port;
      out.end = at + (*r)->consumed;
      KF_FUZZ_CHECK((*r)->consumed >= 1 && (*r)->consumed <= piece,
                    "consumed %zu of a %zu-byte piece", (*r)->consumed, piece);
      break;
    }
  }
  if (!out.error.empty() || out.complete) {
    KF_FUZZ_CHECK(!parser.Feed("1").ok(), "a finished parser took more input");
  }
  return out;
}

// The grammar read the other way round: find the line, then check its parts.
// Returns nullopt for "no verdict yet" (a prefix of a valid line).
std::optional<Outcome> Expected(std::string_view s) {
  constexpr std::string_view kPrefix = "CONNECT ";
  const size_t nl = s.find('\n');
  const std::string_view line = s.substr(0, nl);  // without the '\n'
  const bool complete = nl != std::string_view::npos;
  // Bytes the line would take with its '\n' (a missing '\n' still counts).
  if (line.size() + 1 > ConnectLineParser::kMaxLine) return Outcome{.error = "x"};
  const size_t head = std::min(line.size(), kPrefix.size());
  if (line.substr(0, head) != kPrefix.substr(0, head)) return Outcome{.error = "x"};
  if (line.size() < kPrefix.size()) {
    return complete ? std::optional(Outcome{.error = "x"}) : std::nullopt;
  }
  const std::string_view digits = line.substr(kPrefix.size());
  if (digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return Outcome{.error = "x"};
  }
  const std::string_view significant =
      digits.substr(std::min(digits.find_first_not_of('0'), digits.size()));
  if (significant.size() > 10 ||
      (significant.size() == 10 && significant > std::string_view("4294967295"))) {
    return Outcome{.error = "x"};
  }
  if (!complete) return std::nullopt;
  if (digits.empty()) return Outcome{.error = "x"};
  return Outcome{true, static_cast<uint32_t>(std::stoull(std::string(digits))), nl + 1, ""};
}

kf::fuzz::Seeds MakeSeeds() {
  return {{"connect-1024", std::string("\x00", 1) + "CONNECT 1024\n"},
          {"connect-bytes-after", std::string("\x03", 1) + "CONNECT 52\nearly payload"},
          {"connect-max-port", std::string("\x01", 1) + "CONNECT 0004294967295\n"},
          {"http-request", std::string("\x05", 1) + "GET / HTTP/1.1\r\n"}};
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = data[0] % 40;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  const Outcome whole = Feed(stream, 0);
  const Outcome pieces = Feed(stream, piece);
  const Outcome bytes = Feed(stream, 1);
  KF_FUZZ_CHECK(
      whole == pieces && whole == bytes,
      "whole: %d %u %zu '%s'; in %zu-byte pieces: %d %u %zu '%s'; bytewise: %d %u %zu '%s'",
      whole.complete, whole.port, whole.end, whole.error.c_str(), piece, pieces.complete,
      pieces.port, pieces.end, pieces.error.c_str(), bytes.complete, bytes.port, bytes.end,
      bytes.error.c_str());

  const std::optional<Outcome> want = Expected(stream);
  if (!want) {
    KF_FUZZ_CHECK(!whole.complete && whole.error.empty(), "a verdict on a valid prefix: '%s'",
                  whole.error.c_str());
  } else if (want->complete) {
    KF_FUZZ_CHECK(whole == *want, "parsed port %u ending at %zu ('%s'), expected port %u at %zu",
                  whole.port, whole.end, whole.error.c_str(), want->port, want->end);
  } else {
    KF_FUZZ_CHECK(!whole.error.empty(), "no error for an invalid line (complete %d, port %u)",
                  whole.complete, whole.port);
  }

  if (whole.complete) {
    const std::string reply = kf::vsock::FormatConnectReply(whole.port);
    KF_FUZZ_CHECK(reply == "OK " + std::to_string(whole.port) + "\n", "reply '%s'", reply.c_str());
  }
  return 0;
}
