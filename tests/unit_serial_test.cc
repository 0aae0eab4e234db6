// Unit tests of the legacy devices (vmm-glue/devices): the 16550A UART as
// Linux's 8250 driver probes and drives it, its snapshot state, and the
// i8042's reset line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vmm-glue/devices/i8042.h"
#include "vmm-glue/devices/serial.h"
#include "vmm-glue/io_bus.h"

namespace kf {
namespace {

using namespace uart;

// A UART on an I/O bus, driven the way a guest would: inb/outb.
class SerialTest : public ::testing::Test {
 protected:
  SerialTest()
      : serial_([this](std::span<const uint8_t> b) { out_.append(b.begin(), b.end()); },
                [this](bool level) {
                  levels_.push_back(level);
                  line_ = level;
                }) {
    EXPECT_TRUE(serial_.Register(bus_).ok());
  }

  uint8_t In(uint8_t reg) {
    uint8_t v = 0;
    bus_.Pio(kCom1Base + reg, false, std::span<uint8_t>(&v, 1));
    return v;
  }
  void Out(uint8_t reg, uint8_t v) { bus_.Pio(kCom1Base + reg, true, std::span<uint8_t>(&v, 1)); }

  IoBus bus_;
  std::string out_;
  std::vector<bool> levels_;
  bool line_ = false;
  Serial8250 serial_;
};

TEST_F(SerialTest, ResetState) {
  EXPECT_EQ(In(kIer), 0);
  EXPECT_EQ(In(kIirFcr), kIirNoInt);
  EXPECT_EQ(In(kLcr), 0);
  EXPECT_EQ(In(kMcr), 0);
  EXPECT_EQ(In(kLsr), kLsrThre | kLsrTemt);
  EXPECT_EQ(In(kMsr), kMsrDcd | kMsrDsr | kMsrCts);
  EXPECT_TRUE(levels_.empty());
  EXPECT_EQ(bus_.unclaimed_accesses(), 0u);
}

// The order of accesses of Linux's autoconfig() (8250_port.c) and of
// serial8250_do_startup()'s THRE test, with what each read must return for
// the driver to settle on PORT_16550A with no bugs flagged.
TEST_F(SerialTest, LinuxAutoconfigProbeFindsA16550A) {
  // IER test: write 0, read 0; write 0x0f, read 0x0f.
  const uint8_t saved_ier = In(kIer);
  Out(kIer, 0);
  EXPECT_EQ(In(kIer) & 0x0f, 0);
  Out(kIer, 0x0f);
  EXPECT_EQ(In(kIer) & 0x0f, 0x0f);
  Out(kIer, saved_ier);

  // Scratch register (the 8250-vs-16450 test).
  Out(kScr, 0xa5);
  EXPECT_EQ(In(kScr), 0xa5);
  Out(kScr, 0x5a);
  EXPECT_EQ(In(kScr), 0x5a);

  // Loopback check: MCR = LOOP | OUT2 | RTS -> MSR status = DCD | CTS.
  const uint8_t save_mcr = In(kMcr);
  const uint8_t save_lcr = In(kLcr);
  Out(kMcr, kMcrLoop | 0x0a);
  EXPECT_EQ(In(kMsr) & 0xf0, kMsrDcd | kMsrCts);
  Out(kMcr, save_mcr);

  // FIFO detection: LCR = 0xbf (DLAB), "EFR" = 0 (FCR on a 16550), LCR = 0,
  // FCR = ENABLE_FIFO, IIR >> 6 == 3 -> 16550A.
  Out(kLcr, 0xbf);
  Out(kIirFcr, 0);
  Out(kLcr, 0);
  Out(kIirFcr, kFcrEnableFifo);
  EXPECT_EQ(In(kIirFcr) & 0xc0, 0xc0);
  EXPECT_EQ(In(kIirFcr) >> 6, 3);

  // autoconfig_16550a: no EFR behind LCR 0x80 / 0xbf (reads IIR, non-zero).
  Out(kLcr, 0x80);
  EXPECT_NE(In(kIirFcr), 0);
  Out(kLcr, 0xbf);
  EXPECT_NE(In(kIirFcr), 0);
  // Not a 16750: the 64-byte FIFO bit (IIR bit 5) never sets.
  Out(kLcr, 0);
  Out(kIirFcr, kFcrEnableFifo | 0x20);
  EXPECT_EQ(In(kIirFcr) & 0xe0, 0xc0);
  Out(kLcr, 0x80);
  Out(kIirFcr, kFcrEnableFifo | 0x20);
  EXPECT_EQ(In(kIirFcr) & 0xe0, 0xc0);
  Out(kIirFcr, 0);
  Out(kLcr, 0);
  // Not an XScale UART: IER bit 6 (UUE) does not stick.
  Out(kIer, 0x40);
  EXPECT_EQ(In(kIer) & 0x40, 0);
  Out(kIer, 0);

  Out(kLcr, save_lcr);
  Out(kMcr, save_mcr);
  // serial8250_clear_fifos + read RX + clear IER
  Out(kIirFcr, kFcrEnableFifo);
  Out(kIirFcr, kFcrEnableFifo | kFcrClearRcvr | kFcrClearXmit);
  Out(kIirFcr, 0);
  In(kRbrThr);
  Out(kIer, 0);

  // serial8250_do_startup: LSR must not read 0xff.
  Out(kIirFcr, kFcrEnableFifo | 0x80);  // R_TRIG_10
  EXPECT_NE(In(kLsr), 0xff);
  // THRE re-assert test: IER = THRI -> IIR shows THRI; IER = 0; IER = THRI
  // -> THRI again (a UART that does not re-assert gets UART_BUG_THRE).
  Out(kIer, kIerThri);
  const uint8_t iir1 = In(kIirFcr);
  Out(kIer, 0);
  Out(kIer, kIerThri);
  const uint8_t iir = In(kIirFcr);
  Out(kIer, 0);
  EXPECT_EQ(iir1 & 0x0f, kIirThri);
  EXPECT_EQ(iir & 0x0f, kIirThri);
  // TXEN test: IER = THRI, LSR has TEMT, IIR must not say "no interrupt".
  Out(kIer, kIerThri);
  const uint8_t lsr = In(kLsr);
  const uint8_t iir2 = In(kIirFcr);
  Out(kIer, 0);
  EXPECT_TRUE(lsr & kLsrTemt);
  EXPECT_FALSE(iir2 & kIirNoInt);
  EXPECT_FALSE(line_);
}

TEST_F(SerialTest, LoopbackMsrFollowsMcrWithDeltas) {
  Out(kMcr, kMcrLoop);
  // Leaving the "connected modem" state: CTS, DSR, DCD all fell.
  EXPECT_EQ(In(kMsr), kMsrDcts | kMsrDdsr | kMsrDdcd);
  EXPECT_EQ(In(kMsr), 0);  // deltas are read-clear
  Out(kMcr, kMcrLoop | kMcrDtr | kMcrRts | kMcrOut1 | kMcrOut2);
  EXPECT_EQ(In(kMsr), kMsrCts | kMsrDsr | kMsrRi | kMsrDcd | kMsrDcts | kMsrDdsr | kMsrDdcd);
  Out(kMcr, kMcrLoop | kMcrDtr | kMcrRts | kMcrOut2);  // RI falls: trailing edge
  EXPECT_EQ(In(kMsr), kMsrCts | kMsrDsr | kMsrDcd | kMsrTeri);
  // Modem status interrupt when enabled.
  Out(kIer, kIerMsi);
  EXPECT_EQ(In(kIirFcr), kIirNoInt);
  Out(kMcr, kMcrLoop | kMcrDtr | kMcrOut2);  // CTS falls
  EXPECT_TRUE(line_);
  EXPECT_EQ(In(kIirFcr), kIirMsi);
  EXPECT_EQ(In(kMsr) & 0x0f, kMsrDcts);
  EXPECT_FALSE(line_);
  EXPECT_EQ(In(kIirFcr), kIirNoInt);
}

TEST_F(SerialTest, LoopbackTransmitsIntoTheReceiver) {
  Out(kIirFcr, kFcrEnableFifo);
  Out(kMcr, kMcrLoop);
  Out(kRbrThr, 'x');
  Out(kRbrThr, 'y');
  EXPECT_TRUE(out_.empty());
  EXPECT_FALSE(serial_.EnqueueInput('h'));  // the serial input is disconnected
  EXPECT_EQ(In(kLsr) & kLsrDr, kLsrDr);
  EXPECT_EQ(In(kRbrThr), 'x');
  EXPECT_EQ(In(kRbrThr), 'y');
  EXPECT_EQ(In(kLsr) & kLsrDr, 0);
  // Overrun: a full FIFO drops the byte and sets OE until LSR is read.
  for (size_t i = 0; i < kSerialFifoSize; ++i) Out(kRbrThr, static_cast<uint8_t>(i));
  Out(kIer, kIerRlsi | kIerRdi);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirRdi);
  Out(kRbrThr, 0xee);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirRlsi);  // highest priority
  EXPECT_EQ(In(kLsr), kLsrDr | kLsrOe | kLsrThre | kLsrTemt);
  EXPECT_EQ(In(kLsr) & kLsrOe, 0);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirRdi);
  for (size_t i = 0; i < kSerialFifoSize; ++i) EXPECT_EQ(In(kRbrThr), static_cast<uint8_t>(i));
  EXPECT_EQ(In(kIirFcr), kIirNoInt | kIirFifoEnabled);
  Out(kMcr, 0);
  EXPECT_TRUE(serial_.EnqueueInput('h'));
}

TEST_F(SerialTest, ThreInterruptRaisedOnEtbeiAndClearedByIirRead) {
  EXPECT_FALSE(line_);
  Out(kIer, kIerThri);  // THR is empty: THRE at once
  EXPECT_TRUE(line_);
  EXPECT_TRUE(serial_.irq_level());
  EXPECT_EQ(In(kIirFcr), kIirThri);
  EXPECT_FALSE(line_);  // acknowledged by the IIR read
  EXPECT_EQ(In(kIirFcr), kIirNoInt);
  EXPECT_EQ(levels_, (std::vector<bool>{true, false}));
  // Writing the same IER again does not re-raise it.
  Out(kIer, kIerThri);
  EXPECT_FALSE(line_);
  // Transmitting empties THR at once: THRE again, and the byte is in the sink.
  Out(kRbrThr, 'A');
  EXPECT_EQ(out_, "A");
  EXPECT_TRUE(line_);
  // Writing THR acknowledges and re-raises: the line stays up, no new edge.
  Out(kRbrThr, 'B');
  EXPECT_EQ(levels_, (std::vector<bool>{true, false, true}));
  // Turning ETBEI off drops it.
  Out(kIer, 0);
  EXPECT_FALSE(line_);
  EXPECT_EQ(out_, "AB");
  EXPECT_EQ(In(kLsr), kLsrThre | kLsrTemt);
}

TEST_F(SerialTest, ReceivePathAndFifoBound) {
  Out(kIirFcr, kFcrEnableFifo | kFcrClearRcvr);
  EXPECT_EQ(serial_.input_space(), kSerialFifoSize);
  Out(kIer, kIerRdi);
  EXPECT_FALSE(line_);
  EXPECT_TRUE(serial_.EnqueueInput('a'));
  EXPECT_TRUE(line_);
  EXPECT_EQ(In(kLsr), kLsrDr | kLsrThre | kLsrTemt);
  EXPECT_EQ(In(kIirFcr), kIirRdi | kIirFifoEnabled);
  EXPECT_TRUE(line_);  // reading IIR does not clear RDA; reading the data does
  EXPECT_EQ(In(kRbrThr), 'a');
  EXPECT_FALSE(line_);
  EXPECT_EQ(In(kLsr), kLsrThre | kLsrTemt);

  // Fill the FIFO: the excess is refused, not dropped.
  std::vector<uint8_t> input(100);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(serial_.EnqueueInput(input), kSerialFifoSize);
  EXPECT_FALSE(serial_.EnqueueInput(uint8_t{0xff}));
  EXPECT_EQ(serial_.EnqueueInput(std::span<const uint8_t>(input).subspan(kSerialFifoSize)), 0u);
  EXPECT_EQ(serial_.input_space(), 0u);
  EXPECT_EQ(In(kRbrThr), 0);
  EXPECT_EQ(serial_.input_space(), 1u);
  EXPECT_TRUE(serial_.EnqueueInput(input[kSerialFifoSize]));
  for (size_t i = 1; i <= kSerialFifoSize; ++i) EXPECT_EQ(In(kRbrThr), static_cast<uint8_t>(i));
  EXPECT_EQ(In(kLsr) & kLsrDr, 0);
  EXPECT_EQ(In(kRbrThr), 0);  // empty reads 0
  EXPECT_FALSE(line_);

  // FCR "clear receiver" empties it.
  serial_.EnqueueInput(input);
  Out(kIirFcr, kFcrEnableFifo | kFcrClearRcvr);
  EXPECT_EQ(In(kLsr) & kLsrDr, 0);
  EXPECT_FALSE(line_);
}

TEST_F(SerialTest, WithoutFifosTheReceiverHoldsOneByte) {
  EXPECT_TRUE(serial_.EnqueueInput('1'));
  EXPECT_FALSE(serial_.EnqueueInput('2'));
  EXPECT_EQ(In(kIirFcr), kIirNoInt);  // no FIFO bits, RDA not enabled
  EXPECT_EQ(In(kRbrThr), '1');
  // Switching the FIFOs on clears them.
  EXPECT_TRUE(serial_.EnqueueInput('3'));
  Out(kIirFcr, kFcrEnableFifo);
  EXPECT_EQ(In(kLsr) & kLsrDr, 0);
}

TEST_F(SerialTest, InterruptPriority) {
  Out(kIirFcr, kFcrEnableFifo);
  Out(kIer, kIerRdi | kIerThri);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirThri);  // acknowledges THRE
  Out(kRbrThr, '!');                         // THRE pending again
  serial_.EnqueueInput('r');
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirRdi);   // RDA outranks THRE
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirRdi);   // and is not acknowledged by IIR
  In(kRbrThr);
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirThri);  // THRE was still pending
  EXPECT_EQ(In(kIirFcr) & 0x0f, kIirNoInt);
}

TEST_F(SerialTest, DlabSelectsTheDivisorLatch) {
  Out(kIer, kIerRdi);
  Out(kLcr, kLcrDlab | 0x03);
  EXPECT_EQ(In(kRbrThr), 0x0c);  // 9600 baud at reset
  EXPECT_EQ(In(kIer), 0);
  Out(kRbrThr, 0x01);  // 115200 baud
  Out(kIer, 0x00);
  EXPECT_EQ(In(kRbrThr), 0x01);
  EXPECT_EQ(In(kIer), 0x00);
  EXPECT_TRUE(out_.empty());  // a DLL write is not a transmission
  Out(kIer, 0x42);
  Out(kLcr, 0x03);  // 8N1, DLAB off
  EXPECT_EQ(In(kIer), kIerRdi);  // IER untouched by the DLM writes
  Out(kRbrThr, 'z');
  EXPECT_EQ(out_, "z");
  Out(kLcr, kLcrDlab);
  EXPECT_EQ(In(kIer), 0x42);
  const SerialState s = serial_.Save();
  EXPECT_EQ(s.dll, 0x01);
  EXPECT_EQ(s.dlm, 0x42);
}

TEST_F(SerialTest, WideAccessesAreBytesAndOutOfRangeIsCounted) {
  uint8_t two[2] = {0x07, 0xab};  // outw 0x3fe: MSR (ignored), SCR
  bus_.Pio(kCom1Base + kMsr, true, two);
  EXPECT_EQ(In(kScr), 0xab);
  // A word access at the last port spills past the device: the bus does
  // not hand it to us at all.
  bus_.Pio(kCom1Base + kScr, true, two);
  EXPECT_EQ(bus_.unclaimed_accesses(), 1u);
  // Called directly with a range past the window: counted, reads 0xff.
  uint8_t buf[2] = {0, 0};
  serial_.Read(kCom1Base + 7, buf);
  EXPECT_EQ(buf[1], 0xff);
  EXPECT_EQ(serial_.bad_accesses(), 1u);
}

TEST_F(SerialTest, SaveRestoreRoundTrip) {
  Out(kLcr, kLcrDlab);
  Out(kRbrThr, 0x03);
  Out(kIer, 0x00);
  Out(kLcr, 0x1b);
  Out(kIirFcr, kFcrEnableFifo | 0x40);
  Out(kMcr, kMcrDtr | kMcrRts | kMcrOut2);
  Out(kScr, 0x77);
  Out(kIer, kIerRdi | kIerThri);
  serial_.EnqueueInput(std::vector<uint8_t>{'h', 'i', '!'});
  In(kRbrThr);
  const SerialState saved = serial_.Save();
  EXPECT_EQ(saved.rx_fifo, (std::vector<uint8_t>{'i', '!'}));
  EXPECT_TRUE(saved.thre_pending);
  EXPECT_EQ(saved.fcr, kFcrEnableFifo | 0x40);
  EXPECT_EQ(saved.lcr, 0x1b);
  EXPECT_EQ(saved.mcr, kMcrDtr | kMcrRts | kMcrOut2);

  std::string out2;
  std::vector<bool> levels2;
  Serial8250 clone([&](std::span<const uint8_t> b) { out2.append(b.begin(), b.end()); },
                   [&](bool l) { levels2.push_back(l); });
  ASSERT_TRUE(clone.Restore(saved).ok());
  EXPECT_EQ(levels2, std::vector<bool>{true});  // the line is driven to the restored level
  EXPECT_EQ(clone.Save(), saved);
  // Behaves the same: same registers, same data, same interrupts.
  auto in = [&](Serial8250& s, uint8_t reg) {
    uint8_t v;
    s.Read(kCom1Base + reg, std::span<uint8_t>(&v, 1));
    return v;
  };
  for (uint8_t reg : {kIer, kLcr, kMcr, kScr, kMsr})
    EXPECT_EQ(in(clone, reg), In(reg)) << int(reg);
  EXPECT_EQ(in(clone, kIirFcr), In(kIirFcr));
  EXPECT_EQ(in(clone, kRbrThr), 'i');
  EXPECT_EQ(in(clone, kRbrThr), '!');
  EXPECT_EQ(in(clone, kIirFcr), kIirThri | kIirFifoEnabled);
  EXPECT_EQ(in(clone, kIirFcr), kIirNoInt | kIirFifoEnabled);
  EXPECT_EQ(levels2.back(), false);
  uint8_t c = 'q';
  clone.Write(kCom1Base, std::span<const uint8_t>(&c, 1));
  EXPECT_EQ(out2, "q");
}

TEST_F(SerialTest, RestoreRefusesACorruptState) {
  Out(kScr, 0x11);
  const SerialState before = serial_.Save();
  auto refused = [&](SerialState s, const char* text) {
    Status st = serial_.Restore(s);
    ASSERT_FALSE(st.ok()) << text;
    EXPECT_NE(st.error().message().find(text), std::string::npos) << st.error().message();
    EXPECT_EQ(serial_.Save(), before);  // unchanged
  };
  SerialState s = before;
  s.ier = 0x10;
  refused(s, "IER 0x10");
  s = before;
  s.fcr = 0x40;  // trigger bits without the FIFO enabled
  refused(s, "FCR 0x40");
  s = before;
  s.fcr = kFcrEnableFifo | kFcrClearRcvr;  // self-clearing bits are never stored
  refused(s, "FCR 0x03");
  s = before;
  s.mcr = 0x20;
  refused(s, "MCR 0x20");
  s = before;
  s.lsr_errors = kLsrDr;
  refused(s, "LSR errors");
  s = before;
  s.msr_deltas = 0x10;
  refused(s, "MSR deltas");
  s = before;
  s.fcr = kFcrEnableFifo;
  s.rx_fifo.assign(kSerialFifoSize + 1, 'x');
  refused(s, "65 bytes in a 64-byte receive FIFO");
  s = before;
  s.fcr = 0;
  s.rx_fifo.assign(2, 'x');
  refused(s, "2 bytes in a 1-byte receive FIFO");
  EXPECT_EQ(In(kScr), 0x11);
}

// ------------------------------------------------------------------- i8042

TEST(I8042, StatusIsEmptyAndOnlyPulseResetResets) {
  IoBus bus;
  int resets = 0;
  I8042 kbc([&] { ++resets; });
  ASSERT_TRUE(kbc.Register(bus).ok());
  uint8_t v = 0xff;
  EXPECT_EQ(bus.Pio(kI8042CommandPort, false, std::span<uint8_t>(&v, 1)), IoAction::kContinue);
  EXPECT_EQ(v, 0);  // no output, input buffer empty
  v = 0xff;
  bus.Pio(kI8042DataPort, false, std::span<uint8_t>(&v, 1));
  EXPECT_EQ(v, 0);
  // Ports 0x61-0x63 are not claimed (0x61 is the in-kernel PIT's).
  bus.Pio(0x61, false, std::span<uint8_t>(&v, 1));
  EXPECT_EQ(bus.unclaimed_accesses(), 1u);

  // Linux's i8042 probe commands, and keyboard bytes: ignored.
  for (uint8_t cmd : {0x20, 0x60, 0xaa, 0xa7, 0xa8, 0xad, 0xae, 0xd4, 0xff, 0xf1}) {
    EXPECT_EQ(bus.Pio(kI8042CommandPort, true, std::span<uint8_t>(&cmd, 1)), IoAction::kContinue);
  }
  uint8_t data = 0xed;
  bus.Pio(kI8042DataPort, true, std::span<uint8_t>(&data, 1));
  data = 0xfe;  // 0xfe on the data port is not a command
  bus.Pio(kI8042DataPort, true, std::span<uint8_t>(&data, 1));
  EXPECT_EQ(resets, 0);
  EXPECT_EQ(kbc.ignored_writes(), 12u);

  // reboot=k: wait for status bit 1 clear, then outb(0xfe, 0x64).
  v = 0xff;
  bus.Pio(kI8042CommandPort, false, std::span<uint8_t>(&v, 1));
  EXPECT_EQ(v & 0x02, 0);
  uint8_t reset = kI8042CmdPulseReset;
  bus.Pio(kI8042CommandPort, true, std::span<uint8_t>(&reset, 1));
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(kbc.reset_requests(), 1u);
  // Any even 0xfX pulses the reset line too.
  uint8_t f0 = 0xf0;
  bus.Pio(kI8042CommandPort, true, std::span<uint8_t>(&f0, 1));
  EXPECT_EQ(resets, 2);
}

TEST(I8042, ResetCanStopTheRunLoop) {
  IoBus bus;
  bool reset = false;
  I8042 kbc([&] { reset = true; }, IoAction::kStop);
  ASSERT_TRUE(kbc.Register(bus).ok());
  uint8_t cmd = 0xfe;
  EXPECT_EQ(bus.Pio(kI8042CommandPort, true, std::span<uint8_t>(&cmd, 1)), IoAction::kStop);
  EXPECT_TRUE(reset);
  I8042 quiet(nullptr);  // no callback: still counted
  quiet.Write(kI8042CommandPort, std::span<const uint8_t>(&cmd, 1));
  EXPECT_EQ(quiet.reset_requests(), 1u);
}

}  // namespace
}  // namespace kf
