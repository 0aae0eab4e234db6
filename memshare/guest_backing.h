// Guest memory backing (DESIGN.md "Template and clone"):
// - a template's memory lives in one sealed memfd, filled once per zygote;
// - each clone maps it MAP_PRIVATE: never a copy. Reads share the memfd's
//   pages; the first write to a page copies that page for that clone only.
#pragma once

#include <cstdint>
#include <string>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

// An owned memory mapping (munmap on destruction).
class Mapping {
 public:
  Mapping() = default;
  Mapping(uint8_t* addr, uint64_t size) : addr_(addr), size_(size) {}
  ~Mapping();
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* data() const { return addr_; }
  uint64_t size() const { return size_; }

 private:
  uint8_t* addr_ = nullptr;
  uint64_t size_ = 0;
};

// A memfd of `size` bytes (all zero), sealable. `name` shows in /proc/*/maps.
Result<UniqueFd> CreateMemfd(const std::string& name, uint64_t size);
// Seals the memfd against writes, growing and shrinking: a template's memory
// can no longer change once clones map it.
Status SealMemfd(int fd);

// Shared, writable mapping (the template VM while it boots).
Result<Mapping> MapShared(int fd, uint64_t size);

struct PrivateMapOptions {
  bool mergeable = false;  // MADV_MERGEABLE: let KSM merge identical dirty pages
};
// Copy-on-write mapping of the template memory for one clone.
Result<Mapping> MapPrivate(int fd, uint64_t size, const PrivateMapOptions& options = {});

}  // namespace kf
