// Sizes as operators write them: "2G", "512M", "1GiB", "4096".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vmm-glue/result.h"

namespace kf::ops {

// A non-negative integer with an optional suffix K, M, G or T (powers of
// 1024), optionally followed by "i", "iB" or "B" ("2G" == "2GiB" == "2GB"),
// case-insensitive; a plain number is bytes. Errors name the text; overflow of
// 64 bits is an error.
Result<uint64_t> ParseByteSize(std::string_view text);

// The largest unit that divides `bytes` exactly, in a form ParseByteSize
// reads back: 2147483648 -> "2G", 1536 -> "1536", 0 -> "0".
std::string FormatByteSize(uint64_t bytes);

}  // namespace kf::ops
