// The pmem rootfs of a Linux template (docs/SNAPSHOT_FORMAT.md): a copy of
// the image the template booted with, kept as rootfs.img in the template
// directory so that every clone maps exactly the bytes the template's
// kernel mounted. The template records its size and XXH3-64; a clone's
// zygote checks both before mapping it (an image changed under a running
// guest would be a corrupted file system in every clone).
#pragma once

#include <cstdint>
#include <string>

#include "vmm-glue/result.h"

namespace kf {

inline constexpr char kRootfsFileName[] = "rootfs.img";

struct RootfsDigest {
  uint64_t size = 0;
  uint64_t checksum = 0;  // XXH3-64 of the whole image
};

// Copies `src` to the new file `dst` (O_EXCL) and fsync()s it, hashing what
// it copies: an image whose size or checksum is not `expected` (it changed
// since it was digested) is an error, and `dst` is removed.
Status CopyRootfsImage(const std::string& src, const std::string& dst,
                       const RootfsDigest& expected);

}  // namespace kf
