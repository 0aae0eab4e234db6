#include "vmm-glue/virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <cstdio>
#include <cstring>

namespace kf::virtio {
namespace {

constexpr uint32_t kDriverStatusBits = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                       VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FEATURES_OK |
                                       VIRTIO_CONFIG_S_FAILED;
constexpr uint32_t kKnownStatusBits = kDriverStatusBits | VIRTIO_CONFIG_S_NEEDS_RESET;

// Each status bit and the one the driver must have set before it (3.1.1).
struct StatusStep {
  uint32_t bit, needs;
};
constexpr StatusStep kStatusOrder[] = {
    {VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_ACKNOWLEDGE},
    {VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER},
    {VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK},
};

uint32_t Low(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t High(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
void SetLow(uint64_t& v, uint32_t x) { v = (v & ~uint64_t{0xffffffff}) | x; }
void SetHigh(uint64_t& v, uint32_t x) { v = (v & 0xffffffff) | (uint64_t{x} << 32); }

}  // namespace

MmioTransport::MmioTransport(GuestMemoryView mem, uint64_t base, VirtioDevice* device,
                             std::string name)
    : mem_(mem), base_(base), device_(device), name_(std::move(name)) {
  queues_.assign(device_->num_queues(), Virtqueue(device_->queue_max_size()));
}

bool MmioTransport::active() const {
  return (status_ & VIRTIO_CONFIG_S_DRIVER_OK) && !needs_reset();
}

bool MmioTransport::needs_reset() const { return status_ & VIRTIO_CONFIG_S_NEEDS_RESET; }

IoAction MmioTransport::Read(uint64_t addr, std::span<uint8_t> data) {
  const uint64_t offset = addr - base_;
  std::memset(data.data(), 0, data.size());
  if (offset >= kMmioConfigOffset) {
    device_->ReadConfig(offset - kMmioConfigOffset, data);
  } else if (data.size() == 4 && offset % 4 == 0) {
    const uint32_t value = ReadRegister(offset);
    std::memcpy(data.data(), &value, 4);  // little endian, as the host
  } else {
    ++bad_accesses_;
  }
  return IoAction::kContinue;
}

IoAction MmioTransport::Write(uint64_t addr, std::span<const uint8_t> data) {
  const uint64_t offset = addr - base_;
  if (offset < kMmioConfigOffset && data.size() == 4 && offset % 4 == 0) {
    uint32_t value;
    std::memcpy(&value, data.data(), 4);
    WriteRegister(offset, value);
  } else {
    ++bad_accesses_;  // misaligned, odd-sized, or the read-only config space
  }
  return IoAction::kContinue;
}

Virtqueue* MmioTransport::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

bool MmioTransport::queue_setup_allowed() const {
  return !(status_ & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET));
}

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  Virtqueue* q = selected_queue();
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE: return kMmioMagic;
    case VIRTIO_MMIO_VERSION: return kMmioVersion;
    case VIRTIO_MMIO_DEVICE_ID: return device_->device_id();
    case VIRTIO_MMIO_VENDOR_ID: return kVendorId;
    case VIRTIO_MMIO_DEVICE_FEATURES:
      if (device_features_sel_ == 0) return Low(device_->device_features());
      if (device_features_sel_ == 1) return High(device_->device_features());
      return 0;
    case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? q->max_size() : 0;
    case VIRTIO_MMIO_QUEUE_NUM: return q ? q->config().size : 0;
    case VIRTIO_MMIO_QUEUE_READY: return q ? q->config().ready : 0;
    case VIRTIO_MMIO_QUEUE_DESC_LOW: return q ? Low(q->config().desc_gpa) : 0;
    case VIRTIO_MMIO_QUEUE_DESC_HIGH: return q ? High(q->config().desc_gpa) : 0;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW: return q ? Low(q->config().avail_gpa) : 0;
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: return q ? High(q->config().avail_gpa) : 0;
    case VIRTIO_MMIO_QUEUE_USED_LOW: return q ? Low(q->config().used_gpa) : 0;
    case VIRTIO_MMIO_QUEUE_USED_HIGH: return q ? High(q->config().used_gpa) : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS: return interrupt_status_;
    case VIRTIO_MMIO_STATUS: return status_;
    case VIRTIO_MMIO_CONFIG_GENERATION: return config_generation_;
    // No shared memory regions: a length of all-ones says "absent".
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH: return 0xffffffff;
    default: ++bad_accesses_; return 0;  // write-only or unassigned
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL: device_features_sel_ = value; return;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL: driver_features_sel_ = value; return;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      if (status_ & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_NEEDS_RESET)) break;
      if (driver_features_sel_ == 0) {
        SetLow(driver_features_, value);
      } else if (driver_features_sel_ == 1) {
        SetHigh(driver_features_, value);
      } else if (value != 0) {
        driver_features_unknown_ = true;  // refused at FEATURES_OK
      }
      return;
    case VIRTIO_MMIO_QUEUE_SEL: queue_sel_ = value; return;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
      if (active() && value < queues_.size()) {
        device_->QueueNotify(value);
        return;
      }
      break;
    case VIRTIO_MMIO_INTERRUPT_ACK: interrupt_status_ &= ~value; return;
    case VIRTIO_MMIO_STATUS: WriteStatus(value); return;
    default: {
      Virtqueue* q = selected_queue();
      if (q == nullptr || !queue_setup_allowed()) break;
      QueueConfig& c = q->config();
      switch (offset) {
        case VIRTIO_MMIO_QUEUE_NUM:
          if (value > q->max_size()) break;
          c.size = static_cast<uint16_t>(value);
          return;
        case VIRTIO_MMIO_QUEUE_READY: c.ready = value == 1; return;
        case VIRTIO_MMIO_QUEUE_DESC_LOW: SetLow(c.desc_gpa, value); return;
        case VIRTIO_MMIO_QUEUE_DESC_HIGH: SetHigh(c.desc_gpa, value); return;
        case VIRTIO_MMIO_QUEUE_AVAIL_LOW: SetLow(c.avail_gpa, value); return;
        case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: SetHigh(c.avail_gpa, value); return;
        case VIRTIO_MMIO_QUEUE_USED_LOW: SetLow(c.used_gpa, value); return;
        case VIRTIO_MMIO_QUEUE_USED_HIGH: SetHigh(c.used_gpa, value); return;
        default: break;
      }
    }
  }
  ++bad_accesses_;  // refused in this state, or not a writable register
}

void MmioTransport::WriteStatus(uint32_t value) {
  if (value == 0) {
    ResetAll();
    return;
  }
  // The driver echoes NEEDS_RESET back when it read it; it is the device's bit.
  uint32_t next = value & ~uint32_t{VIRTIO_CONFIG_S_NEEDS_RESET};
  const uint32_t current = status_ & kDriverStatusBits;
  if ((next & ~kDriverStatusBits) || (next & current) != current) {
    ++bad_accesses_;  // unknown bits, or clearing bits without a reset
    return;
  }
  if (needs_reset()) {
    status_ |= next & VIRTIO_CONFIG_S_FAILED;  // only a reset helps now
    return;
  }
  for (const StatusStep& step : kStatusOrder) {
    if ((next & step.bit) && !(next & step.needs)) next &= ~step.bit;
  }
  const uint32_t added = next & ~current;
  if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
    const uint64_t offered = device_->device_features();
    if ((driver_features_ & ~offered) || driver_features_unknown_ ||
        !(driver_features_ & (uint64_t{1} << VIRTIO_F_VERSION_1))) {
      // Refused: the driver reads Status back and sees FEATURES_OK clear.
      next &= ~uint32_t{VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK};
    }
  }
  status_ = next;
  if (!(added & VIRTIO_CONFIG_S_DRIVER_OK) || !(next & VIRTIO_CONFIG_S_DRIVER_OK)) return;
  for (size_t i = 0; i < queues_.size(); ++i) {
    const std::string what = "queue " + std::to_string(i);
    if (!queues_[i].config().ready) {
      DeviceNeedsReset("DRIVER_OK with " + what + " not ready");
      return;
    }
    Status s = Virtqueue::ValidateConfig(queues_[i].config(), queues_[i].max_size(), mem_, what);
    if (!s.ok()) {
      DeviceNeedsReset("DRIVER_OK refused: " + s.error().message());
      return;
    }
  }
  device_->Activate(this);
}

void MmioTransport::ResetAll() {
  device_->Reset();
  for (Virtqueue& q : queues_) q.Reset();
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  driver_features_unknown_ = false;
  queue_sel_ = 0;
  interrupt_status_ = 0;
}

void MmioTransport::SignalUsed() {
  interrupt_status_ |= VIRTIO_MMIO_INT_VRING;
  guest_work_ = true;
  if (interrupt_hook_) interrupt_hook_();
}

void MmioTransport::DeviceNeedsReset(const std::string& why) {
  if (needs_reset()) return;
  status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
  interrupt_status_ |= VIRTIO_MMIO_INT_CONFIG;
  // Wakes a polling guest so it can see the status and reset the device.
  guest_work_ = true;
  Log("device needs reset", why);
  if (interrupt_hook_) interrupt_hook_();
}

void MmioTransport::NoteBadInput(const std::string& why) {
  ++bad_inputs_;
  Log("dropped malformed input", why);
}

void MmioTransport::Log(const std::string& what, const std::string& why) {
  if (logged_) return;
  logged_ = true;
  std::fprintf(stderr, "%s: %s: %s (further guest errors are only counted)\n", name_.c_str(),
               what.c_str(), why.c_str());
}

}  // namespace kf::virtio
