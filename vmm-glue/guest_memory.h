// A host view of guest physical memory [0, size): bounds-checked access for
// device models and loaders. Guest memory is hostile: every address and
// length that came from the guest goes through Contains() first.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace kf {

class GuestMemoryView {
 public:
  GuestMemoryView() = default;
  GuestMemoryView(uint8_t* base, uint64_t size) : base_(base), size_(size) {}

  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }

  // True when [gpa, gpa+len) lies inside guest memory (overflow-safe).
  bool Contains(uint64_t gpa, uint64_t len) const {
    return len <= size_ && gpa <= size_ - len;
  }
  // A pointer to [gpa, gpa+len), or nullptr when out of range.
  uint8_t* At(uint64_t gpa, uint64_t len) const {
    return Contains(gpa, len) ? base_ + gpa : nullptr;
  }
  template <typename T>
  T* As(uint64_t gpa) const {
    return reinterpret_cast<T*>(At(gpa, sizeof(T)));
  }
  std::span<uint8_t> Span(uint64_t gpa, uint64_t len) const {
    uint8_t* p = At(gpa, len);
    return p ? std::span<uint8_t>(p, len) : std::span<uint8_t>();
  }

 private:
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace kf
