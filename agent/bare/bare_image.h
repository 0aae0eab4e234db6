// The bare guest image embedded in the binary at build time.
#pragma once

#include <cstdint>
#include <span>

namespace kf {
std::span<const uint8_t> EmbeddedBareImage();
}  // namespace kf
