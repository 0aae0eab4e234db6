#include "vmm-glue/virtio/virtqueue.h"

#include <atomic>
#include <bit>
#include <algorithm>
#include <cstdio>
#include <cstring>

namespace kf::virtio {
namespace {

static_assert(std::endian::native == std::endian::little,
              "virtio rings are little endian; this code reads them natively");
// The ring layouts of <linux/virtio_ring.h>, spelled out here because that
// header is C only (its vring_init() converts void* implicitly).
struct vring_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct vring_used_elem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(vring_desc) == 16 && sizeof(vring_used_elem) == 8);
constexpr uint16_t VRING_DESC_F_NEXT = 1;
constexpr uint16_t VRING_DESC_F_WRITE = 2;
constexpr uint16_t VRING_DESC_F_INDIRECT = 4;

// Guest memory is read with memcpy into locals: one read per field (the
// driver may change it behind our back) and no alignment assumptions.
template <typename T>
bool Load(GuestMemoryView mem, uint64_t gpa, T* out) {
  const uint8_t* p = mem.At(gpa, sizeof(T));
  if (p == nullptr) return false;
  std::memcpy(out, p, sizeof(T));
  return true;
}

template <typename T>
void Store(GuestMemoryView mem, uint64_t gpa, const T& value) {
  if (uint8_t* p = mem.At(gpa, sizeof(T))) std::memcpy(p, &value, sizeof(T));
}

// Ring sizes from the spec (2.7): the avail and used rings always leave
// room for the event-idx fields, whether or not the feature is in use.
uint64_t DescTableBytes(uint64_t n) { return 16 * n; }
uint64_t AvailRingBytes(uint64_t n) { return 6 + 2 * n; }
uint64_t UsedRingBytes(uint64_t n) { return 6 + 8 * n; }

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void Virtqueue::Reset() {
  config_ = QueueConfig{};
  config_.size = max_size_;
  last_avail_idx_ = 0;
  next_used_idx_ = 0;
  used_flag_ = false;
}

Status Virtqueue::ValidateConfig(const QueueConfig& c, uint16_t max_size, GuestMemoryView mem,
                                 const std::string& what) {
  if (c.size == 0 || c.size > max_size || !std::has_single_bit(c.size)) {
    return Error(what + ": queue size " + std::to_string(c.size) +
                 " is not a power of two in [1, " + std::to_string(max_size) + "]");
  }
  struct Ring {
    const char* name;
    uint64_t gpa, bytes, align;
  };
  const Ring rings[] = {{"descriptor table", c.desc_gpa, DescTableBytes(c.size), 16},
                        {"available ring", c.avail_gpa, AvailRingBytes(c.size), 2},
                        {"used ring", c.used_gpa, UsedRingBytes(c.size), 4}};
  for (const Ring& r : rings) {
    if (r.gpa % r.align != 0) {
      return Error(what + ": " + r.name + " at " + Hex(r.gpa) + " is not " +
                   std::to_string(r.align) + "-byte aligned");
    }
    if (!mem.Contains(r.gpa, r.bytes)) {
      return Error(what + ": " + r.name + " [" + Hex(r.gpa) + ", +" + Hex(r.bytes) +
                   ") is outside guest memory (" + Hex(mem.size()) + " bytes)");
    }
  }
  return Status::Ok();
}

PopStatus Virtqueue::Pop(GuestMemoryView mem, ChainDirection direction, DescChain* chain,
                         std::string* why) {
  const uint16_t size = config_.size;
  uint16_t avail_idx;
  if (!Load(mem, config_.avail_gpa + 2, &avail_idx)) {
    *why = "available ring outside guest memory";
    return PopStatus::kBroken;
  }
  // The ring entries and descriptors were written before avail->idx.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_idx_);
  if (pending == 0) return PopStatus::kEmpty;
  if (pending > size) {
    *why = "avail idx " + std::to_string(avail_idx) + " is " + std::to_string(pending) +
           " entries ahead of " + std::to_string(last_avail_idx_) + " (queue size " +
           std::to_string(size) + ")";
    return PopStatus::kBroken;
  }
  uint16_t head = 0;
  if (!Load(mem, config_.avail_gpa + 4 + 2 * uint64_t(last_avail_idx_ % size), &head) ||
      head >= size) {
    *why = "head index " + std::to_string(head) + " >= queue size " + std::to_string(size);
    return PopStatus::kBroken;
  }
  ++last_avail_idx_;

  chain->head = head;
  chain->segments.clear();
  chain->readable_len = 0;
  chain->writable_len = 0;
  uint16_t index = head;
  bool seen_writable = false;  // even a zero-length one orders the chain
  for (uint32_t count = 1;; ++count) {
    if (count > size) {
      *why = "chain from head " + std::to_string(head) + " is longer than the queue (a loop?)";
      return PopStatus::kBadChain;
    }
    vring_desc desc;
    if (!Load(mem, config_.desc_gpa + 16 * uint64_t{index}, &desc)) {
      *why = "descriptor table outside guest memory";
      return PopStatus::kBadChain;
    }
    if (desc.flags & VRING_DESC_F_INDIRECT) {
      *why = "indirect descriptor " + std::to_string(index) + " (not negotiated)";
      return PopStatus::kBadChain;
    }
    if (!mem.Contains(desc.addr, desc.len)) {
      *why = "descriptor " + std::to_string(index) + " buffer [" + Hex(desc.addr) + ", +" +
             Hex(desc.len) + ") is outside guest memory";
      return PopStatus::kBadChain;
    }
    const bool writable = desc.flags & VRING_DESC_F_WRITE;
    if (writable && direction == ChainDirection::kDeviceReadable) {
      *why = "device-writable descriptor " + std::to_string(index) + " where a readable one is required";
      return PopStatus::kBadChain;
    }
    if (!writable && direction == ChainDirection::kDeviceWritable) {
      *why = "device-readable descriptor " + std::to_string(index) + " where a writable one is required";
      return PopStatus::kBadChain;
    }
    if (!writable && seen_writable) {
      *why = "readable descriptor " + std::to_string(index) + " after a writable one";
      return PopStatus::kBadChain;
    }
    seen_writable |= writable;
    chain->segments.push_back(DescSegment{desc.addr, desc.len, writable});
    (writable ? chain->writable_len : chain->readable_len) += desc.len;
    if (!(desc.flags & VRING_DESC_F_NEXT)) break;
    if (desc.next >= size) {
      *why = "descriptor " + std::to_string(index) + " links to " + std::to_string(desc.next) +
             " >= queue size " + std::to_string(size);
      return PopStatus::kBadChain;
    }
    index = desc.next;
  }
  return PopStatus::kChain;
}

void Virtqueue::PushUsed(GuestMemoryView mem, uint16_t head, uint32_t len) {
  const uint64_t slot = next_used_idx_ % config_.size;
  vring_used_elem elem{head, len};
  Store(mem, config_.used_gpa + 4 + 8 * slot, elem);
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++next_used_idx_;
  Store(mem, config_.used_gpa + 2, next_used_idx_);
  used_flag_ = true;
}

void Virtqueue::SetUsedFlags(GuestMemoryView mem, uint16_t flags) {
  Store(mem, config_.used_gpa, flags);
}

size_t DescChain::CopyFrom(GuestMemoryView mem, uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  for (const DescSegment& s : segments) {
    if (done == out.size()) break;
    if (s.writable) continue;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const size_t n = std::min<uint64_t>(s.len - offset, out.size() - done);
    std::memcpy(out.data() + done, mem.At(s.gpa + offset, n), n);
    done += n;
    offset = 0;
  }
  return done;
}

size_t DescChain::CopyTo(GuestMemoryView mem, uint64_t offset,
                         std::span<const uint8_t> data) const {
  size_t done = 0;
  for (const DescSegment& s : segments) {
    if (done == data.size()) break;
    if (!s.writable) continue;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const size_t n = std::min<uint64_t>(s.len - offset, data.size() - done);
    std::memcpy(mem.At(s.gpa + offset, n), data.data() + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

void DescChain::Iovecs(GuestMemoryView mem, bool writable, uint64_t offset, uint64_t max_len,
                       std::vector<iovec>& out) const {
  out.clear();
  for (const DescSegment& s : segments) {
    if (max_len == 0) break;
    if (s.writable != writable) continue;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(s.len - offset, max_len);
    out.push_back(iovec{mem.At(s.gpa + offset, n), n});
    max_len -= n;
    offset = 0;
  }
}

}  // namespace kf::virtio
