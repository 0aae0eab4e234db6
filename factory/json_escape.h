// JSON string literals (RFC 8259), always valid UTF-8 out: for the
// daemon's JSON log lines and every --json output (cli::Json).
#pragma once

#include <string>
#include <string_view>

namespace kf {

// Appends `s` to `out` as a quoted JSON string: '"' and '\\' escaped, control
// characters as \n \r \t \b \f or \u00XX, DEL as \u007f; invalid UTF-8 bytes
// (truncated, overlong, surrogates, > U+10FFFF) each become U+FFFD, so a line
// stays parseable whatever a guest or a client wrote into it.
void AppendJsonString(std::string& out, std::string_view s);
std::string JsonString(std::string_view s);

}  // namespace kf
