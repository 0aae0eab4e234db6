// The virtio-mmio transport, version 2 ("modern", virtio 1.x 4.2.2): the
// register window a guest driver programs, in front of one VirtioDevice.
//
// Registers take only aligned 32-bit accesses (others read as 0 and are
// dropped, and counted); the device configuration space at 0x100 is byte
// granular. The status machine follows 3.1.1: FEATURES_OK is refused when
// the driver accepted a feature we did not offer (or not VERSION_1), queue
// registers only change before DRIVER_OK, and DRIVER_OK activates the device
// after every queue has been validated against guest memory (an invalid one
// sets DEVICE_NEEDS_RESET instead).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proto/vsock_state.pb.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/virtio/virtio_device.h"
#include "vmm-glue/virtio/virtqueue.h"

namespace kf::virtio {

inline constexpr uint32_t kMmioMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kMmioVersion = 2;
inline constexpr uint32_t kVendorId = 0x4b46;       // "KF"
inline constexpr uint64_t kMmioConfigOffset = 0x100;

class MmioTransport final : public IoDevice, public VirtioTransport {
 public:
  // `device` outlives the transport; `base` is the window's guest physical
  // address (IoBus hands handlers absolute addresses); `name` prefixes the
  // one-line logs.
  MmioTransport(GuestMemoryView mem, uint64_t base, VirtioDevice* device, std::string name);

  // IoDevice.
  IoAction Read(uint64_t addr, std::span<uint8_t> data) override;
  IoAction Write(uint64_t addr, std::span<const uint8_t> data) override;

  // VirtioTransport.
  GuestMemoryView memory() const override { return mem_; }
  Virtqueue& queue(size_t index) override { return queues_[index]; }
  bool active() const override;
  void SignalUsed() override;
  void DeviceNeedsReset(const std::string& why) override;
  void NoteBadInput(const std::string& why) override;

  // Called when InterruptStatus gains a bit: the place for an irqfd once
  // guests take interrupts. Bare guests poll, so the default does nothing.
  void set_interrupt_hook(std::function<void()> hook) { interrupt_hook_ = std::move(hook); }

  // True if a used ring or the config changed since the last call.
  bool TakeGuestWork() { return std::exchange(guest_work_, false); }
  uint32_t status() const { return status_; }
  bool needs_reset() const;
  uint32_t interrupt_status() const { return interrupt_status_; }
  uint64_t driver_features() const { return driver_features_; }
  uint64_t bad_accesses() const { return bad_accesses_; }
  uint64_t bad_inputs() const { return bad_inputs_; }

  katafactory::snapshot::v1::VirtioMmioState Save() const;
  // Checks `state` against this device and guest memory without changing
  // anything.
  Status ValidateState(const katafactory::snapshot::v1::VirtioMmioState& state) const;
  // Applies a validated state (call ValidateState first), resetting the
  // device, and re-activates it if the driver was OK.
  void Restore(const katafactory::snapshot::v1::VirtioMmioState& state);

 private:
  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);
  void WriteStatus(uint32_t value);
  void ResetAll();
  Virtqueue* selected_queue();
  bool queue_setup_allowed() const;
  void Log(const std::string& what, const std::string& why);

  GuestMemoryView mem_;
  uint64_t base_;
  VirtioDevice* device_;
  std::string name_;
  std::vector<Virtqueue> queues_;
  std::function<void()> interrupt_hook_;

  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  bool driver_features_unknown_ = false;  // bits written above bit 63
  uint32_t queue_sel_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;

  bool guest_work_ = false;
  bool logged_ = false;  // one line per device, for the first hostile input
  uint64_t bad_accesses_ = 0;
  uint64_t bad_inputs_ = 0;
};

}  // namespace kf::virtio
