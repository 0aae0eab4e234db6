#include "vmm-glue/devices/serial.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

namespace kf {

using namespace uart;

namespace {

constexpr uint8_t kFcrStoredMask = kFcrEnableFifo | kFcrDmaSelect | kFcrTriggerMask;

std::string Hex8(uint8_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

}  // namespace

Serial8250::Serial8250(Sink sink, IrqLine irq, uint16_t base)
    : sink_(std::move(sink)), irq_(std::move(irq)), base_(base) {}

Status Serial8250::Register(IoBus& bus) { return bus.AddPio(base_, kSerialPortCount, this, "serial"); }

size_t Serial8250::rx_capacity(uint8_t fcr) {
  return (fcr & kFcrEnableFifo) ? kSerialFifoSize : 1;
}

IoAction Serial8250::Read(uint64_t addr, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t offset = addr + i - base_;
    if (addr + i < base_ || offset >= kSerialPortCount) {
      data[i] = 0xff;
      ++bad_accesses_;
      continue;
    }
    data[i] = ReadRegister(static_cast<uint8_t>(offset));
  }
  return IoAction::kContinue;
}

IoAction Serial8250::Write(uint64_t addr, std::span<const uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t offset = addr + i - base_;
    if (addr + i < base_ || offset >= kSerialPortCount) {
      ++bad_accesses_;
      continue;
    }
    WriteRegister(static_cast<uint8_t>(offset), data[i]);
  }
  return IoAction::kContinue;
}

uint8_t Serial8250::ModemStatusBits() const {
  if (!loopback()) return kMsrDcd | kMsrDsr | kMsrCts;
  uint8_t msr = 0;
  if (mcr_ & kMcrRts) msr |= kMsrCts;
  if (mcr_ & kMcrDtr) msr |= kMsrDsr;
  if (mcr_ & kMcrOut1) msr |= kMsrRi;
  if (mcr_ & kMcrOut2) msr |= kMsrDcd;
  return msr;
}

uint8_t Serial8250::InterruptId() const {
  if ((ier_ & kIerRlsi) && lsr_errors_) return kIirRlsi;
  if ((ier_ & kIerRdi) && !rx_.empty()) return kIirRdi;
  if ((ier_ & kIerThri) && thre_pending_) return kIirThri;
  if ((ier_ & kIerMsi) && msr_deltas_) return kIirMsi;
  return kIirNoInt;
}

void Serial8250::UpdateIrq() {
  const bool level = InterruptId() != kIirNoInt;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (irq_) irq_(level);
}

void Serial8250::SetMcr(uint8_t value) {
  const uint8_t before = ModemStatusBits();
  mcr_ = value & 0x1f;
  const uint8_t after = ModemStatusBits();
  const uint8_t changed = before ^ after;
  if (changed & kMsrCts) msr_deltas_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_deltas_ |= kMsrDdsr;
  if ((before & kMsrRi) && !(after & kMsrRi)) msr_deltas_ |= kMsrTeri;  // trailing edge
  if (changed & kMsrDcd) msr_deltas_ |= kMsrDdcd;
}

uint8_t Serial8250::ReadRegister(uint8_t offset) {
  const bool dlab = lcr_ & kLcrDlab;
  uint8_t value = 0;
  switch (offset) {
    case kRbrThr:
      if (dlab) return dll_;
      if (!rx_.empty()) {
        value = rx_.front();
        rx_.pop_front();
      }
      break;
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIirFcr: {
      const uint8_t id = InterruptId();
      value = id | ((fcr_ & kFcrEnableFifo) ? kIirFifoEnabled : 0);
      // Reading the IIR acknowledges a THRE interrupt it reports.
      if (id == kIirThri) thre_pending_ = false;
      break;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      value = kLsrThre | kLsrTemt | lsr_errors_ | (rx_.empty() ? 0 : kLsrDr);
      lsr_errors_ = 0;
      break;
    case kMsr:
      value = ModemStatusBits() | msr_deltas_;
      msr_deltas_ = 0;
      break;
    case kScr:
      return scr_;
  }
  UpdateIrq();
  return value;
}

void Serial8250::WriteRegister(uint8_t offset, uint8_t value) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      if (dlab) {
        dll_ = value;
        return;
      }
      if (loopback()) {
        if (rx_.size() < rx_capacity())
          rx_.push_back(value);
        else
          lsr_errors_ |= kLsrOe;
      } else if (sink_) {
        sink_(std::span<const uint8_t>(&value, 1));
      }
      // Sent at once: THR is empty again, which raises THRE.
      thre_pending_ = true;
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      // Enabling ETBEI while THR is empty (it always is) raises THRE at
      // once; disabling it drops a pending one. Rewriting the same value
      // changes nothing (the driver's THRE test relies on both).
      if ((ier_ ^ value) & kIerThri) thre_pending_ = value & kIerThri;
      ier_ = value & 0x0f;
      break;
    case kIirFcr: {
      const uint8_t fcr = (value & kFcrEnableFifo) ? (value & kFcrStoredMask) : 0;
      // Switching the FIFOs on or off clears them (16550A data sheet, FCR0).
      if (((fcr ^ fcr_) & kFcrEnableFifo) || (value & kFcrClearRcvr)) rx_.clear();
      fcr_ = fcr;
      break;
    }
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      SetMcr(value);
      break;
    case kLsr:
    case kMsr:
      return;  // read-only here (LSR writes are a factory test mode)
    case kScr:
      scr_ = value;
      return;
  }
  UpdateIrq();
}

size_t Serial8250::input_space() const {
  if (loopback()) return 0;
  const size_t cap = rx_capacity();
  return rx_.size() < cap ? cap - rx_.size() : 0;
}

bool Serial8250::EnqueueInput(uint8_t byte) {
  if (input_space() == 0) return false;
  rx_.push_back(byte);
  UpdateIrq();
  return true;
}

size_t Serial8250::EnqueueInput(std::span<const uint8_t> bytes) {
  const size_t n = std::min(bytes.size(), input_space());
  if (n == 0) return 0;
  rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + n);
  UpdateIrq();
  return n;
}

SerialState Serial8250::Save() const {
  SerialState s;
  s.dll = dll_;
  s.dlm = dlm_;
  s.ier = ier_;
  s.fcr = fcr_;
  s.lcr = lcr_;
  s.mcr = mcr_;
  s.scr = scr_;
  s.lsr_errors = lsr_errors_;
  s.msr_deltas = msr_deltas_;
  s.thre_pending = thre_pending_;
  s.rx_fifo.assign(rx_.begin(), rx_.end());
  return s;
}

Status Serial8250::Restore(const SerialState& s) {
  if (s.ier & ~0x0f) return Error("serial state: IER " + Hex8(s.ier) + " has reserved bits set");
  if ((s.fcr & ~kFcrStoredMask) || (s.fcr != 0 && !(s.fcr & kFcrEnableFifo)))
    return Error("serial state: FCR " + Hex8(s.fcr) + " is not a value the UART can hold");
  if (s.mcr & ~0x1f) return Error("serial state: MCR " + Hex8(s.mcr) + " has reserved bits set");
  if (s.lsr_errors & ~kLsrOe)
    return Error("serial state: LSR errors " + Hex8(s.lsr_errors) + " beyond OE");
  if (s.msr_deltas & ~0x0f)
    return Error("serial state: MSR deltas " + Hex8(s.msr_deltas) + " beyond bits 0-3");
  if (s.rx_fifo.size() > rx_capacity(s.fcr))
    return Error("serial state: " + std::to_string(s.rx_fifo.size()) + " bytes in a " +
                 std::to_string(rx_capacity(s.fcr)) + "-byte receive FIFO");
  dll_ = s.dll;
  dlm_ = s.dlm;
  ier_ = s.ier;
  fcr_ = s.fcr;
  lcr_ = s.lcr;
  mcr_ = s.mcr;
  scr_ = s.scr;
  lsr_errors_ = s.lsr_errors;
  msr_deltas_ = s.msr_deltas;
  thre_pending_ = s.thre_pending;
  rx_.assign(s.rx_fifo.begin(), s.rx_fifo.end());
  irq_level_ = InterruptId() != kIirNoInt;
  if (irq_) irq_(irq_level_);
  return Status::Ok();
}

}  // namespace kf
