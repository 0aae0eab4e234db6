// A split virtqueue (virtio 1.x, 2.7) seen from the device side.
//
// The descriptor table, the available ring and the used ring live in guest
// memory and are written by a driver we do not trust. Every index, address,
// length and flag is read once into a local copy, validated, and only then
// used; all guest memory is reached through GuestMemoryView bounds checks.
//
// Two classes of bad input (kept apart so a device can react per case):
// - a broken ring (avail idx running ahead by more than the queue size, a
//   head index out of range): the queue state can no longer be trusted, the
//   device must go to DEVICE_NEEDS_RESET (PopStatus::kBroken);
// - a bad chain (loop, chain too long, next out of range, INDIRECT, a buffer
//   outside guest RAM, wrong direction): the head itself is valid, so the
//   chain is returned to the driver with used len 0 and the packet dropped
//   (PopStatus::kBadChain).
//
// Not supported on purpose (never offered): VIRTIO_F_INDIRECT_DESC,
// VIRTIO_F_EVENT_IDX, packed rings.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/result.h"

namespace kf::virtio {

// VRING_USED_F_NO_NOTIFY (<linux/virtio_ring.h> does not compile as C++).
inline constexpr uint16_t kUsedFlagNoNotify = 1;

// Which buffers a device accepts in a chain.
enum class ChainDirection {
  kDeviceReadable,  // only driver->device buffers (e.g. vsock tx)
  kDeviceWritable,  // only device->driver buffers (e.g. vsock rx, event)
  kAny,             // readable ones first, then writable ones
};

struct DescSegment {
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool writable = false;
};

// One validated descriptor chain: every segment lies inside guest memory.
struct DescChain {
  uint16_t head = 0;
  std::vector<DescSegment> segments;
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;

  // Gathers up to out.size() readable bytes starting at byte `offset` of the
  // chain's readable part; returns how many were copied.
  size_t CopyFrom(GuestMemoryView mem, uint64_t offset, std::span<uint8_t> out) const;
  // Scatters `data` into the writable part starting at byte `offset`;
  // returns how many bytes fitted.
  size_t CopyTo(GuestMemoryView mem, uint64_t offset, std::span<const uint8_t> data) const;
  // iovecs covering [offset, offset+max_len) of the readable (or writable)
  // part, for readv/writev straight from/to guest memory. Replaces `out`.
  void Iovecs(GuestMemoryView mem, bool writable, uint64_t offset, uint64_t max_len,
              std::vector<iovec>& out) const;
};

enum class PopStatus { kEmpty, kChain, kBadChain, kBroken };

// The driver-visible configuration of one queue (MMIO registers).
struct QueueConfig {
  uint16_t size = 0;  // QueueNum
  bool ready = false;
  uint64_t desc_gpa = 0;
  uint64_t avail_gpa = 0;
  uint64_t used_gpa = 0;
};

class Virtqueue {
 public:
  explicit Virtqueue(uint16_t max_size) : max_size_(max_size) { Reset(); }

  // Back to the state after device reset: size = max, not ready, indices 0.
  void Reset();

  uint16_t max_size() const { return max_size_; }
  QueueConfig& config() { return config_; }
  const QueueConfig& config() const { return config_; }
  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t next_used_idx() const { return next_used_idx_; }
  void set_indices(uint16_t last_avail, uint16_t next_used) {
    last_avail_idx_ = last_avail;
    next_used_idx_ = next_used;
  }

  // Checks a configuration against this queue's maximum and guest memory:
  // size a power of two in [1, max], each ring aligned (16/2/4) and inside
  // guest memory. The error names the queue with `what`.
  static Status ValidateConfig(const QueueConfig& config, uint16_t max_size,
                               GuestMemoryView mem, const std::string& what);

  // Takes the next available chain. kChain and kBadChain fill chain->head
  // (a bad chain must still be returned with PushUsed(head, 0)); kBadChain
  // and kBroken put the reason in *why. The queue must have been validated
  // (ValidateConfig) before it is used.
  PopStatus Pop(GuestMemoryView mem, ChainDirection direction, DescChain* chain,
                std::string* why);
  // Gives back the chain taken by the last Pop (nothing was done with it).
  void UndoPop() { --last_avail_idx_; }

  // Returns a chain to the driver: used ring entry, then (after a release
  // fence) the used idx. `len` is the number of bytes the device wrote.
  void PushUsed(GuestMemoryView mem, uint16_t head, uint32_t len);
  // Writes the used ring's flags (VRING_USED_F_NO_NOTIFY or 0): a device
  // that polls the avail ring itself tells the driver not to notify.
  void SetUsedFlags(GuestMemoryView mem, uint16_t flags);
  // True when PushUsed was called since the last call.
  bool TakeUsedFlag() { return std::exchange(used_flag_, false); }

 private:
  uint16_t max_size_;
  QueueConfig config_;
  uint16_t last_avail_idx_ = 0;
  uint16_t next_used_idx_ = 0;
  bool used_flag_ = false;
};

}  // namespace kf::virtio
