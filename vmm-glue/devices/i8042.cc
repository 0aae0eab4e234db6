#include "vmm-glue/devices/i8042.h"

#include <cstring>
#include <utility>

namespace kf {

I8042::I8042(std::function<void()> on_reset, IoAction after_reset)
    : on_reset_(std::move(on_reset)), after_reset_(after_reset) {}

Status I8042::Register(IoBus& bus) {
  RETURN_IF_ERROR(bus.AddPio(kI8042DataPort, 1, this, "i8042 data"));
  return bus.AddPio(kI8042CommandPort, 1, this, "i8042 command");
}

IoAction I8042::Read(uint64_t, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  return IoAction::kContinue;
}

IoAction I8042::Write(uint64_t addr, std::span<const uint8_t> data) {
  if (addr != kI8042CommandPort || data.empty()) {
    ++ignored_writes_;
    return IoAction::kContinue;
  }
  const uint8_t cmd = data[0];
  // 0xf0-0xff: pulse the output-port lines whose bit is clear; bit 0 = reset.
  if ((cmd & 0xf0) == 0xf0 && !(cmd & 0x01)) {
    ++reset_requests_;
    if (on_reset_) on_reset_();
    return after_reset_;
  }
  ++ignored_writes_;
  return IoAction::kContinue;
}

}  // namespace kf
