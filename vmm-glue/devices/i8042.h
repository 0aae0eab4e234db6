// The least of an i8042 keyboard controller that a Linux guest needs: the
// reset line. Ports 0x60 (data) and 0x64 (status on read, command on write)
// are registered as two separate one-port ranges (Register()), because
// 0x61-0x63 are not ours: 0x61 is the speaker/PIT-gate port, which KVM's
// in-kernel PIT answers itself (it passes 0x62-0x64 on to userspace).
//
// Model: no keyboard, no aux port, no output buffer. Every read of either
// port returns 0: status 0 is "output buffer empty, input buffer empty", so
// nothing is ever waiting and a command may always be written. Commands
// 0xf0-0xff pulse the output-port lines whose bit is 0 in the low nibble;
// bit 0 is the CPU reset line, so 0xfe (and any even 0xfX) calls on_reset.
// Every other command and every data byte is accepted and ignored.
//
// What Linux does with it:
// - Reboot: reboot=k (or the fallback after ACPI reset when the FADT has
//   no reset register) runs the keyboard-controller method: up to 10 times
//   { wait until status bit 1 (input buffer full) is 0; outb(0xfe, 0x64) }.
//   Status 0 lets the first 0xfe through at once; on_reset should stop the
//   vCPU (the guest keeps writing 0xfe, then tries other methods, if it is
//   resumed), and must tolerate being called more than once.
// - The i8042 driver (built into Debian's kernel): with ACPI tables whose
//   FADT (revision >= 2) lacks the IAPC_BOOT_ARCH 8042 flag, as a
//   hardware-reduced FADT does, and no PNP0303/PNP0F13 device in the DSDT,
//   it logs "i8042: PNP: No PS/2 controller found." and gives up without
//   touching the ports. Without that hint it logs "Probing ports directly.",
//   finds the output buffer empty (so not "No controller found"), writes
//   command 0x20 (read CTR) and waits ~0.5 s for a reply that never comes:
//   "i8042: Can't read CTR while initializing i8042", and the probe fails
//   with -EIO. Either way no serio port is registered and boot goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "vmm-glue/io_bus.h"
#include "vmm-glue/result.h"

namespace kf {

inline constexpr uint16_t kI8042DataPort = 0x60;
inline constexpr uint16_t kI8042CommandPort = 0x64;  // status on read
inline constexpr uint8_t kI8042CmdPulseReset = 0xfe;

class I8042 final : public IoDevice {
 public:
  // `on_reset` may be empty. `after_reset` is what the write that pulsed
  // the reset line returns to the run loop (kStop makes RunVcpu return
  // StopReason::kDevice at once).
  explicit I8042(std::function<void()> on_reset, IoAction after_reset = IoAction::kContinue);

  // Claims port 0x60 as "i8042 data" and 0x64 as "i8042 command".
  Status Register(IoBus& bus);

  IoAction Read(uint64_t addr, std::span<uint8_t> data) override;
  IoAction Write(uint64_t addr, std::span<const uint8_t> data) override;

  uint64_t reset_requests() const { return reset_requests_; }
  uint64_t ignored_writes() const { return ignored_writes_; }

 private:
  std::function<void()> on_reset_;
  IoAction after_reset_;
  uint64_t reset_requests_ = 0;
  uint64_t ignored_writes_ = 0;
};

}  // namespace kf
