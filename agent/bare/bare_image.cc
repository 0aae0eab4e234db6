#include "agent/bare/bare_image.h"

extern "C" const uint8_t kf_bare_image_start[];
extern "C" const uint8_t kf_bare_image_end[];

namespace kf {
std::span<const uint8_t> EmbeddedBareImage() {
  return {kf_bare_image_start, static_cast<size_t>(kf_bare_image_end - kf_bare_image_start)};
}
}  // namespace kf
