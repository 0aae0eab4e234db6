// The C layout of KVM's variable-length ioctl structures, for C++.
//
// Why this exists: <linux/kvm.h> declares the trailing arrays of kvm_msrs,
// kvm_msr_list, kvm_cpuid2 and kvm_xsave with __DECLARE_FLEX_ARRAY, an
// anonymous struct holding an empty struct and the array. An empty struct
// has size 0 in C but 1 in C++, so in C++ the array moves (kvm_msrs.entries
// sits at offset 16, not 8) and sizeof() changes, which also changes the
// ioctl numbers built from it (_IOWR encodes the size): KVM_GET_MSRS is
// 0xc010ae88 in C++ and 0xc008ae88 in the kernel, which answers EINVAL.
// So the VMM never uses those structs or macros: it builds the buffers with
// the header sizes below and uses the ioctl numbers below, which are checked
// against the kernel ABI values at compile time.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace kf::kvm_abi {

// Header sizes: the offset of the trailing array in the C struct.
inline constexpr size_t kMsrListHeader = 4;  // u32 nmsrs; u32 indices[]
inline constexpr size_t kMsrsHeader = 8;     // u32 nmsrs, pad; kvm_msr_entry entries[]
inline constexpr size_t kCpuid2Header = 8;   // u32 nent, padding; kvm_cpuid_entry2 entries[]
inline constexpr size_t kXsaveLegacySize = 4096;  // u32 region[1024]; (extra[] only with XSAVE2)

static_assert(sizeof(kvm_msr_entry) == 16, "kvm_msr_entry has no flexible array");
static_assert(sizeof(kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 has no flexible array");

constexpr unsigned long Ioc(unsigned dir, unsigned nr, unsigned size) {
  return _IOC(dir, KVMIO, nr, size);
}

inline constexpr unsigned long kGetMsrIndexList = Ioc(_IOC_READ | _IOC_WRITE, 0x02, kMsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = Ioc(_IOC_READ | _IOC_WRITE, 0x05, kCpuid2Header);
inline constexpr unsigned long kGetMsrs = Ioc(_IOC_READ | _IOC_WRITE, 0x88, kMsrsHeader);
inline constexpr unsigned long kSetMsrs = Ioc(_IOC_WRITE, 0x89, kMsrsHeader);
inline constexpr unsigned long kSetCpuid2 = Ioc(_IOC_WRITE, 0x90, kCpuid2Header);
inline constexpr unsigned long kGetXsave = Ioc(_IOC_READ, 0xa4, kXsaveLegacySize);
inline constexpr unsigned long kSetXsave = Ioc(_IOC_WRITE, 0xa5, kXsaveLegacySize);
inline constexpr unsigned long kGetXsave2 = Ioc(_IOC_READ, 0xcf, kXsaveLegacySize);

// The values a C compiler computes from <linux/kvm.h> (x86-64).
static_assert(kGetMsrIndexList == 0xc004ae02);
static_assert(kGetSupportedCpuid == 0xc008ae05);
static_assert(kGetMsrs == 0xc008ae88);
static_assert(kSetMsrs == 0x4008ae89);
static_assert(kSetCpuid2 == 0x4008ae90);
static_assert(kGetXsave == 0x9000aea4);
static_assert(kSetXsave == 0x5000aea5);
static_assert(kGetXsave2 == 0x9000aecf);

// A byte buffer laid out as the C struct: a u32 count, padding up to
// `header`, then `n` elements of T. Elements are copied in and out with
// memcpy, so no C++ object is ever placed at a misaligned or foreign offset.
template <typename T, size_t header>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t n) : bytes_(header + n * sizeof(T), 0) {
    set_count(static_cast<uint32_t>(n));
  }
  void* data() { return bytes_.data(); }
  uint32_t count() const {
    uint32_t n;
    std::memcpy(&n, bytes_.data(), sizeof n);
    return n;
  }
  void set_count(uint32_t n) { std::memcpy(bytes_.data(), &n, sizeof n); }
  size_t capacity() const { return (bytes_.size() - header) / sizeof(T); }
  T get(size_t i) const {
    T v;
    std::memcpy(&v, bytes_.data() + header + i * sizeof(T), sizeof(T));
    return v;
  }
  void set(size_t i, const T& v) {
    std::memcpy(bytes_.data() + header + i * sizeof(T), &v, sizeof(T));
  }
  // The first min(count(), capacity()) elements.
  std::vector<T> elements() const {
    size_t n = count() < capacity() ? count() : capacity();
    std::vector<T> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = get(i);
    return out;
  }

 private:
  std::vector<uint8_t> bytes_;
};

using MsrListBuffer = FlexBuffer<uint32_t, kMsrListHeader>;
using MsrsBuffer = FlexBuffer<kvm_msr_entry, kMsrsHeader>;
using Cpuid2Buffer = FlexBuffer<kvm_cpuid_entry2, kCpuid2Header>;

}  // namespace kf::kvm_abi
