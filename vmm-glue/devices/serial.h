// An 8250-family UART, modelled as a 16550A well enough for Linux's 8250
// driver (autoconfig probe, THRE test, console and tty I/O): COM1 at port
// 0x3f8, 8 byte-wide registers.
//
//   offset  DLAB=0 read / write     DLAB=1 read / write
//   0       RBR    / THR            DLL / DLL
//   1       IER    / IER            DLM / DLM
//   2       IIR    / FCR            IIR / FCR
//   3       LCR (bit 7 = DLAB)
//   4       MCR (bits 0-4; bit 4 = loopback)
//   5       LSR    / (ignored)
//   6       MSR    / (ignored)
//   7       SCR
//
// Transmission is instantaneous: a THR write goes to the sink at once, so
// LSR always reads THRE|TEMT and the THRE interrupt re-arms after every
// write. The receive FIFO holds kSerialFifoSize bytes (one with the FIFOs
// off): host input beyond that is refused, not dropped, so the caller keeps
// it and offers it again when the guest has read some (16550A hardware has
// 16; a deeper FIFO is invisible to the driver, which drains while LSR.DR
// is set, and saves exits). The RDA interrupt is raised whenever data is
// waiting, i.e. at a trigger level of 1, which is what the 16550's
// character timeout would do a few character times later anyway.
//
// Interrupts: the IIR reports, by priority, receiver line status (an
// overrun, only possible in loopback), received data, THR empty, modem
// status; each one gated by its IER bit. The device calls `irq(level)` only
// when the level changes: true while the IIR reports an interrupt, false
// once none is pending. IRQ 4 is an ISA edge-triggered line; with KVM's
// in-kernel PIC/IOAPIC, KVM_IRQ_LINE 0 -> 1 is the edge, and since the line
// always drops when the last cause clears (the driver's handler loops until
// IIR reads "no interrupt"), every new cause makes a new edge: no extra
// pulse is needed. The line is not gated by MCR.OUT2 (as in QEMU and
// kvmtool); Linux sets OUT2 anyway.
//
// Loopback (MCR bit 4), as the driver's probe uses it: MSR's status bits
// follow MCR (RTS -> CTS, DTR -> DSR, OUT1 -> RI, OUT2 -> DCD), THR writes
// come back in the receive FIFO instead of the sink (an overrun sets LSR.OE
// when it is full), and host input is refused. Outside loopback the modem
// lines read DCD|DSR|CTS (a connected modem).
//
// Not thread-safe: like the rest of the device models, every call comes
// from the VMM's one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

#include "vmm-glue/io_bus.h"
#include "vmm-glue/result.h"

namespace kf {

inline constexpr uint16_t kCom1Base = 0x3f8;
inline constexpr uint16_t kSerialPortCount = 8;
inline constexpr uint32_t kCom1Irq = 4;
inline constexpr size_t kSerialFifoSize = 64;

// Register offsets and bits (the 16550A data sheet's names, as Linux's
// include/uapi/linux/serial_reg.h spells them).
namespace uart {
inline constexpr uint8_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5,
                         kMsr = 6, kScr = 7;
inline constexpr uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerRlsi = 0x04, kIerMsi = 0x08;
inline constexpr uint8_t kIirNoInt = 0x01, kIirMsi = 0x00, kIirThri = 0x02, kIirRdi = 0x04,
                         kIirRlsi = 0x06, kIirFifoEnabled = 0xc0;
inline constexpr uint8_t kFcrEnableFifo = 0x01, kFcrClearRcvr = 0x02, kFcrClearXmit = 0x04,
                         kFcrDmaSelect = 0x08, kFcrTriggerMask = 0xc0;
inline constexpr uint8_t kLcrDlab = 0x80;
inline constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08,
                         kMcrLoop = 0x10;
inline constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
inline constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08,
                         kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
}  // namespace uart

// The device's registers for a snapshot (Firecracker's Persist pattern:
// Save() cannot fail, Restore() validates). LSR's DR/THRE/TEMT, IIR and
// MSR's status bits are derived, not stored.
struct SerialState {
  uint8_t dll = 0x0c;  // divisor latch (12: 9600 baud)
  uint8_t dlm = 0;
  uint8_t ier = 0;     // bits 0-3
  uint8_t fcr = 0;     // 0, or FIFO enable | DMA mode | trigger bits (0xc9 mask)
  uint8_t lcr = 0;
  uint8_t mcr = 0;     // bits 0-4
  uint8_t scr = 0;
  uint8_t lsr_errors = 0;     // LSR.OE, latched until LSR is read
  uint8_t msr_deltas = 0;     // MSR bits 0-3, latched until MSR is read
  bool thre_pending = false;  // THRE interrupt raised and not yet acknowledged
  std::vector<uint8_t> rx_fifo;  // oldest first

  bool operator==(const SerialState&) const = default;
};

class Serial8250 final : public IoDevice {
 public:
  using Sink = std::function<void(std::span<const uint8_t>)>;
  using IrqLine = std::function<void(bool level)>;

  // `base` is the first port (IoBus hands handlers absolute ports). Either
  // callback may be empty.
  Serial8250(Sink sink, IrqLine irq, uint16_t base = kCom1Base);

  // Claims [base, base + 8) on `bus` as "serial".
  Status Register(IoBus& bus);

  // IoDevice. Byte registers: a wider access is taken as that many byte
  // accesses to consecutive ports, as on the ISA bus.
  IoAction Read(uint64_t addr, std::span<uint8_t> data) override;
  IoAction Write(uint64_t addr, std::span<const uint8_t> data) override;

  // Host -> guest. False (the byte is not taken) when the receive FIFO is
  // full or the UART is in loopback.
  bool EnqueueInput(uint8_t byte);
  // How many leading bytes were taken.
  size_t EnqueueInput(std::span<const uint8_t> bytes);
  // Bytes EnqueueInput would take now.
  size_t input_space() const;

  bool irq_level() const { return irq_level_; }
  // Accesses that touched no register (wider than the 8 ports).
  uint64_t bad_accesses() const { return bad_accesses_; }

  SerialState Save() const;
  // Checks `state`, then applies it and drives the interrupt line to the
  // restored level (irq(level) is called once, even if unchanged, so the
  // line agrees with the device after the irqchip was restored). A refused
  // state changes nothing.
  Status Restore(const SerialState& state);

 private:
  uint8_t ReadRegister(uint8_t offset);
  void WriteRegister(uint8_t offset, uint8_t value);
  size_t rx_capacity() const { return rx_capacity(fcr_); }
  static size_t rx_capacity(uint8_t fcr);
  bool loopback() const { return mcr_ & uart::kMcrLoop; }
  uint8_t ModemStatusBits() const;  // MSR bits 4-7
  uint8_t InterruptId() const;      // IIR bits 0-3
  void SetMcr(uint8_t value);
  void UpdateIrq();

  Sink sink_;
  IrqLine irq_;
  uint16_t base_;

  uint8_t dll_ = 0x0c, dlm_ = 0, ier_ = 0, fcr_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0;
  uint8_t lsr_errors_ = 0, msr_deltas_ = 0;
  bool thre_pending_ = false;
  std::deque<uint8_t> rx_;

  bool irq_level_ = false;
  uint64_t bad_accesses_ = 0;
};

}  // namespace kf
