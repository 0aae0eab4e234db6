// The checksum of guest memory: XXH3-64 over its full logical content.
//
// The writer hashes the memory it is given; the reader hashes memory.img
// without reading its holes: a hole is zeros, fed from a static zero buffer.
// Both go through MemoryHasher, so they agree by construction (XXH3's
// streaming result does not depend on how the input is split).
#pragma once

#include <cstdint>
#include <span>

#include "vmm-glue/result.h"

struct XXH3_state_s;

namespace kf {

class MemoryHasher {
 public:
  static Result<MemoryHasher> Create();
  ~MemoryHasher();
  MemoryHasher(MemoryHasher&& other) noexcept;
  MemoryHasher& operator=(MemoryHasher&& other) noexcept;
  MemoryHasher(const MemoryHasher&) = delete;
  MemoryHasher& operator=(const MemoryHasher&) = delete;

  void Update(std::span<const uint8_t> data);
  // Hashes `bytes` zero bytes, as if they had been read from a hole.
  void UpdateZeros(uint64_t bytes);
  uint64_t Digest() const;

 private:
  explicit MemoryHasher(XXH3_state_s* state) : state_(state) {}
  XXH3_state_s* state_ = nullptr;
};

// XXH3-64 of `memory`; what WriteTemplate records and CopyAndVerifyMemory
// recomputes. Fails only when the hash state cannot be allocated.
Result<uint64_t> HashMemory(std::span<const uint8_t> memory);

}  // namespace kf
