#include "snapshot/memory_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <utility>

namespace kf {
namespace {
// Large enough that hashing a hole costs few calls, small enough to stay in
// the cache.
alignas(64) const uint8_t kZeros[64 * 1024] = {};
}  // namespace

Result<MemoryHasher> MemoryHasher::Create() {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) return Error("XXH3_createState: out of memory");
  if (XXH3_64bits_reset(state) != XXH_OK) {
    XXH3_freeState(state);
    return Error("XXH3_64bits_reset failed");
  }
  return MemoryHasher(state);
}

MemoryHasher::~MemoryHasher() {
  if (state_ != nullptr) XXH3_freeState(state_);
}

MemoryHasher::MemoryHasher(MemoryHasher&& other) noexcept
    : state_(std::exchange(other.state_, nullptr)) {}

MemoryHasher& MemoryHasher::operator=(MemoryHasher&& other) noexcept {
  if (this != &other) {
    if (state_ != nullptr) XXH3_freeState(state_);
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

void MemoryHasher::Update(std::span<const uint8_t> data) {
  // XXH3_64bits_update only fails for a null input with a non-zero length.
  if (!data.empty()) XXH3_64bits_update(state_, data.data(), data.size());
}

void MemoryHasher::UpdateZeros(uint64_t bytes) {
  while (bytes > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes, sizeof(kZeros)));
    XXH3_64bits_update(state_, kZeros, n);
    bytes -= n;
  }
}

uint64_t MemoryHasher::Digest() const { return XXH3_64bits_digest(state_); }

Result<uint64_t> HashMemory(std::span<const uint8_t> memory) {
  ASSIGN_OR_RETURN(MemoryHasher hasher, MemoryHasher::Create());
  hasher.Update(memory);
  return hasher.Digest();
}

}  // namespace kf
