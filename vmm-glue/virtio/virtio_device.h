// The split between a virtio device and its transport (as kvmtool's
// virtio_ops): the transport owns the registers, the feature negotiation and
// the queues' configuration; the device owns what the queues carry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/virtio/virtqueue.h"

namespace kf::virtio {

// What a device may ask of its transport while it is active.
class VirtioTransport {
 public:
  virtual ~VirtioTransport() = default;
  virtual GuestMemoryView memory() const = 0;
  virtual Virtqueue& queue(size_t index) = 0;
  // True between DRIVER_OK and reset, unless the device needs a reset: the
  // only time the device may touch its queues.
  virtual bool active() const = 0;
  // Used-buffer notification (after one or more PushUsed).
  virtual void SignalUsed() = 0;
  // The ring structure is broken: DEVICE_NEEDS_RESET and a config interrupt.
  virtual void DeviceNeedsReset(const std::string& why) = 0;
  // A malformed chain or packet that was dropped (logged once, counted).
  virtual void NoteBadInput(const std::string& why) = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  virtual uint64_t device_features() const = 0;
  virtual size_t num_queues() const = 0;
  virtual uint16_t queue_max_size() const = 0;
  // Device-specific configuration space, byte granular; bytes past its end
  // read as 0.
  virtual void ReadConfig(uint64_t offset, std::span<uint8_t> data) const = 0;
  // DRIVER_OK was accepted: queues are validated and may be used.
  virtual void Activate(VirtioTransport* transport) = 0;
  virtual void QueueNotify(uint32_t index) = 0;
  // The driver wrote 0 to Status (or the device is being restored): forget
  // everything the driver set up.
  virtual void Reset() = 0;
};

}  // namespace kf::virtio
