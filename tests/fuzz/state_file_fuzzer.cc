// libFuzzer target: the template state loader, from state.bin to the devices
// restored from it: the header, checksum, TemplateState protobuf and every
// decoder and check behind them (snapshot/state_file.h, state_codec.h,
// template_state.h), then the restore of the device states the file carries,
// as a clone restores them (factory/linux_machine.cc): the vsock device
// (vmm-glue/vsock/hybrid_vsock.h), a Linux guest's UART
// (vmm-glue/devices/serial.h) and virtio-pmem rootfs device
// (vmm-glue/pmem/pmem_device.h), and a guest's first use of each.
//
// Feeds: the input as a whole state.bin. Random bytes rarely get past the
// checksum, so the custom mutator below rewrites the header after most
// mutations (magic, version, sizes, XXH3 of the mutated payload): those
// inputs are valid files around a mutated payload, and reach the protobuf
// parser and the field decoders. The seeds are valid files (MakeSeeds).
// Checks: no crash, leak or undefined behaviour on any file; a state the
// loader accepted describes itself (`template inspect`), encodes again, and
// that encoding loads to the same encoding; a vsock state it accepted is
// either refused by Restore or safe to run on: the queues are notified over
// guest memory fenced by PROT_NONE pages (tests/fake_virtio_driver.h). A
// serial state Restore accepted is the one Save() gives back, drives the
// interrupt line to the level the registers call for (and only on a change
// afterwards), and reads back as a guest would see it: IIR and LSR agree
// with the line and the receive FIFO, which drains in order. A pmem state
// Restore accepted (over a clone's device: the region at kPmemGpa, the
// template's rootfs size, read-only) is safe to run on too: the guest
// reads every register and posts a FLUSH on the restored queue, which an
// active device answers OK in its used ring where the layout lets it.
#include <linux/virtio_mmio.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "factory/linux_layout.h"
#include "snapshot/file_io.h"
#include "snapshot/state_codec.h"
#include "snapshot/state_file.h"
#include "snapshot/template_files.h"
#include "tests/fake_virtio_driver.h"
#include "tests/fuzz/fuzz_util.h"
#include "vmm-glue/devices/serial.h"
#include "vmm-glue/pmem/pmem_device.h"
#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

namespace pb = katafactory::snapshot::v1;
using kf::linux_layout::kPmemGpa;
using kf::linux_layout::kPmemMmioGpa;

constexpr uint64_t kMemory = 64 * 1024;  // guest memory for the device restores
constexpr uint64_t kMmioBase = 0xd0000000;

kf::testing::GuardedMemory& Memory() {
  static kf::testing::GuardedMemory memory(kMemory);
  return memory;
}

// The header state.bin would have around data[32..size) (SNAPSHOT_FORMAT.md).
void FixHeader(uint8_t* data, size_t size) {
  const uint64_t payload = size - kf::kStateHeaderSize;
  std::memcpy(data, "KFTMPL01", 8);
  kf::PutLe32(data + 8, kf::kTemplateFormatVersion);
  kf::PutLe32(data + 12, kf::kStateHeaderSize);
  kf::PutLe64(data + 16, payload);
  kf::PutLe64(data + 24, XXH3_64bits(data + kf::kStateHeaderSize, payload));
}

kf::Result<kf::TemplateState> Load(std::span<const uint8_t> file) {
  ASSIGN_OR_RETURN(
      kf::StateHeader h,
      kf::DecodeStateHeader(file.first(std::min<size_t>(file.size(), 32)), file.size()));
  return kf::DecodeStatePayload(h, file.subspan(std::min<size_t>(file.size(), 32)));
}

// A clone restoring the template's vsock device, then the guest touching
// every queue.
void RestoreVsock(const katafactory::snapshot::v1::VsockDeviceState& state) {
  const kf::GuestMemoryView mem = Memory().view();
  std::memset(mem.base(), 0, kMemory);
  auto vsock = kf::vsock::HybridVsock::Create(mem, kMmioBase, {});
  KF_FUZZ_CHECK(vsock.ok(), "HybridVsock::Create: %s", vsock.error().message().c_str());
  if (!(*vsock)->Restore(state).ok()) return;
  kf::testing::FakeVirtioDriver driver((*vsock)->mmio(), kMmioBase, &Memory());
  for (int q = 0; q < 4; ++q) driver.Notify(q);
  (*vsock)->PollGuestQueues();
  (void)(*vsock)->ProcessHostEvents();
  (void)driver.Read32(VIRTIO_MMIO_INTERRUPT_STATUS);
}

// A clone restoring the template's UART, then the guest's console driver
// reading and writing it.
void RestoreSerial(const pb::SerialState& proto) {
  // The clone's own decoding (snapshot/state_codec.h).
  auto decoded = kf::DecodeSerialState(proto);
  if (!decoded.ok()) return;
  kf::SerialState state = std::move(*decoded);
  std::string sunk;
  int irq_calls = 0;
  bool line = false, restored = false;
  kf::Serial8250 uart([&](std::span<const uint8_t> b) { sunk.append(b.begin(), b.end()); },
                      [&](bool level) {
                        // Restore sets the line once whatever it was; after
                        // that, only a change is signalled.
                        KF_FUZZ_CHECK(!restored || level != line, "the line set again to %d",
                                      level);
                        ++irq_calls;
                        line = level;
                      });
  if (!uart.Restore(state).ok()) {
    KF_FUZZ_CHECK(irq_calls == 0, "a refused serial state drove the interrupt line");
    return;
  }
  restored = true;
  KF_FUZZ_CHECK(irq_calls == 1 && line == uart.irq_level(),
                "Restore drove the line %d times, to %d, for level %d", irq_calls, line,
                uart.irq_level());
  KF_FUZZ_CHECK(uart.Save() == state, "a restored serial state saves differently");

  namespace u = kf::uart;
  auto in = [&](uint8_t reg) {
    uint8_t v = 0;
    uart.Read(kf::kCom1Base + reg, {&v, 1});
    KF_FUZZ_CHECK(line == uart.irq_level(), "line %d, device level %d after reading %u", line,
                  uart.irq_level(), reg);
    return v;
  };
  auto out = [&](uint8_t reg, uint8_t v) {
    uart.Write(kf::kCom1Base + reg, {&v, 1});
    KF_FUZZ_CHECK(line == uart.irq_level(), "line %d, device level %d after writing %u", line,
                  uart.irq_level(), reg);
  };
  const bool level = uart.irq_level();
  const uint8_t iir = in(u::kIirFcr);
  KF_FUZZ_CHECK(((iir & u::kIirNoInt) == 0) == level, "IIR 0x%02x with the line at %d", iir, level);
  const uint8_t lsr = in(u::kLsr);
  KF_FUZZ_CHECK(((lsr & u::kLsrDr) != 0) == !state.rx_fifo.empty(),
                "LSR 0x%02x with %zu bytes in the FIFO", lsr, state.rx_fifo.size());
  // The FIFO as the driver drains it (RBR is DLL while DLAB is set).
  out(u::kLcr, state.lcr & ~u::kLcrDlab);
  for (size_t i = 0; i < state.rx_fifo.size(); ++i) {
    const uint8_t b = in(u::kRbrThr);
    KF_FUZZ_CHECK(b == state.rx_fifo[i], "FIFO byte %zu reads 0x%02x, saved 0x%02x", i, b,
                  state.rx_fifo[i]);
  }
  const uint8_t drained = in(u::kLsr);
  KF_FUZZ_CHECK((drained & u::kLsrDr) == 0, "LSR 0x%02x with the FIFO drained", drained);
  const bool loop = state.mcr & u::kMcrLoop;
  out(u::kRbrThr, 'k');
  KF_FUZZ_CHECK(sunk == (loop ? "" : "k"), "a THR write sent %zu bytes in%s loopback", sunk.size(),
                loop ? "" : " no");
  const uint8_t input[] = {'o', 'k', '\n'};
  const size_t space = uart.input_space();
  KF_FUZZ_CHECK(uart.EnqueueInput(input) == std::min(space, sizeof input), "input taken");
  KF_FUZZ_CHECK(line == uart.irq_level(), "line and level apart after input");
  for (uint8_t reg = 0; reg < kf::kSerialPortCount; ++reg) (void)in(reg);
  out(u::kLcr, state.lcr | u::kLcrDlab);
  KF_FUZZ_CHECK(in(u::kRbrThr) == state.dll && in(u::kIer) == state.dlm, "the divisor changed");
  out(u::kIirFcr, u::kFcrEnableFifo | u::kFcrClearRcvr);
  out(u::kMcr, state.mcr ^ u::kMcrLoop);
  uint8_t wide[4];
  uart.Read(kf::kCom1Base + 6, wide);  // two ports past the end
  KF_FUZZ_CHECK(uart.bad_accesses() == 2, "%llu bad accesses, not 2",
                static_cast<unsigned long long>(uart.bad_accesses()));
}

// [a, a + alen) and [b, b + blen) apart.
bool Apart(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a + alen <= b || b + blen <= a;
}

// A clone restoring the template's pmem device over its own region (what
// LoadTemplate maps: kPmemGpa, the template's rootfs size, read-only), then
// the guest reading its registers and posting one FLUSH on the restored
// queue, where the queue's rings say, with the request at kFlushGpa.
void RestorePmem(const pb::PmemDeviceState& state, uint64_t rootfs_size) {
  constexpr uint64_t kFlushGpa = kMemory - 16;  // le32 type, le32 ret
  const kf::GuestMemoryView mem = Memory().view();
  std::memset(mem.base(), 0, kMemory);
  auto pmem = kf::pmem::VirtioPmem::Create(
      mem, kPmemMmioGpa, {.gpa = kPmemGpa, .size = rootfs_size, .read_only = true});
  if (!pmem.ok()) return;  // no clone maps such a rootfs either
  const std::string fresh = (*pmem)->Save().SerializeAsString();
  if (!(*pmem)->Restore(state).ok()) {
    KF_FUZZ_CHECK((*pmem)->Save().SerializeAsString() == fresh, "a refused pmem state changed it");
    return;
  }
  kf::virtio::MmioTransport& t = (*pmem)->transport();
  kf::testing::FakeVirtioDriver driver((*pmem)->mmio(), kPmemMmioGpa, &Memory());
  for (uint64_t reg = 0; reg < 0x120; reg += 4) (void)driver.Read32(reg);

  const kf::virtio::Virtqueue& q = t.queue(kf::pmem::kRequestQueue);
  const kf::virtio::QueueConfig c = q.config();
  const bool serving = t.active() && !t.needs_reset();
  const uint16_t avail = q.last_avail_idx(), used = q.next_used_idx();
  const uint64_t flushes = (*pmem)->counters().flushes;
  bool apart = false;
  if (serving && c.size >= 2) {
    const uint64_t desc_bytes = 16 * c.size, avail_bytes = 6 + 2 * c.size,
                   used_bytes = 6 + 8 * c.size;
    apart = Apart(c.desc_gpa, desc_bytes, c.avail_gpa, avail_bytes) &&
            Apart(c.desc_gpa, desc_bytes, c.used_gpa, used_bytes) &&
            Apart(c.avail_gpa, avail_bytes, c.used_gpa, used_bytes) &&
            Apart(c.desc_gpa, desc_bytes, kFlushGpa, 8) &&
            Apart(c.avail_gpa, avail_bytes, kFlushGpa, 8) &&
            Apart(c.used_gpa, used_bytes, kFlushGpa, 8);
    // Descriptors 0 (type, readable) -> 1 (ret, writable), head 0 published.
    const struct {
      uint64_t addr;
      uint32_t len;
      uint16_t flags, next;
    } descs[2] = {{kFlushGpa, 4, 1, 1}, {kFlushGpa + 4, 4, 2, 0}};
    static_assert(sizeof descs == 32);
    std::memcpy(Memory().at(c.desc_gpa), descs, sizeof descs);
    const uint16_t head = 0, next = static_cast<uint16_t>(avail + 1);
    std::memcpy(Memory().at(c.avail_gpa + 4 + 2 * (avail % c.size)), &head, 2);
    std::memcpy(Memory().at(c.avail_gpa + 2), &next, 2);
    kf::PutLe32(Memory().at(kFlushGpa), kf::pmem::kReqTypeFlush);
    kf::PutLe32(Memory().at(kFlushGpa + 4), 0xffffffff);
  }
  driver.Notify(kf::pmem::kRequestQueue);
  driver.Notify(1);  // a queue it does not have
  if (apart) {
    uint16_t used_idx;
    uint32_t elem[2];
    std::memcpy(&used_idx, Memory().at(c.used_gpa + 2), 2);
    std::memcpy(elem, Memory().at(c.used_gpa + 4 + 8 * (used % c.size)), 8);
    KF_FUZZ_CHECK(!t.needs_reset() && used_idx == static_cast<uint16_t>(used + 1) && elem[0] == 0 &&
                      elem[1] == kf::pmem::kResponseBytes &&
                      (*pmem)->counters().flushes == flushes + 1 &&
                      kf::GetLe32(Memory().at(kFlushGpa + 4)) == kf::pmem::kRespOk,
                  "a restored pmem device did not answer a FLUSH: used idx %u (was %u), "
                  "element {%u, %u}",
                  used_idx, used, elem[0], elem[1]);
  }
  const uint32_t status = driver.Read32(VIRTIO_MMIO_INTERRUPT_STATUS);
  driver.Write32(VIRTIO_MMIO_INTERRUPT_ACK, status);
  (void)(*pmem)->TakeGuestWork();
}

// ---- seeds: valid state files ----

template <typename T>
T Filled(uint8_t seed) {
  T v;
  auto* p = reinterpret_cast<uint8_t*>(&v);
  for (size_t i = 0; i < sizeof v; ++i) p[i] = static_cast<uint8_t>(seed + i);
  return v;
}

// A vsock device as a running guest leaves it: driver OK, queues of 8 in the
// first pages of the 64 KiB the target restores into.
katafactory::snapshot::v1::VsockDeviceState LiveVsockState() {
  auto vsock = kf::vsock::HybridVsock::Create(Memory().view(), kMmioBase, {});
  if (!vsock.ok()) std::abort();
  kf::testing::FakeVirtioDriver driver((*vsock)->mmio(), kMmioBase, &Memory());
  if (!driver.Negotiate()) std::abort();
  for (int q = 0; q < 3; ++q) {
    const uint64_t base = 0x1000 * static_cast<uint64_t>(q);
    driver.ProgramQueue(q, 8, base, base + 0x200, base + 0x400);
  }
  if (!driver.DriverOk()) std::abort();
  return (*vsock)->Save();
}

// A UART as Linux's 8250 driver leaves it with input waiting: FIFOs on,
// 115200 baud 8N1, interrupts enabled.
pb::SerialState LiveSerialState() {
  kf::Serial8250 uart(nullptr, nullptr);
  auto out = [&](uint8_t reg, uint8_t v) { uart.Write(kf::kCom1Base + reg, {&v, 1}); };
  out(kf::uart::kLcr, 0x83);
  out(kf::uart::kRbrThr, 1);
  out(kf::uart::kIer, 0);
  out(kf::uart::kLcr, 0x03);
  out(kf::uart::kIirFcr, 0xc7);
  out(kf::uart::kMcr, 0x0b);
  out(kf::uart::kIer, 0x07);
  out(kf::uart::kScr, 0x5a);
  const uint8_t typed[] = {'l', 's', '\n'};
  uart.EnqueueInput(typed);
  return kf::EncodeSerialState(uart.Save());
}

// A pmem device as a running guest leaves it: driver OK, a queue of 8 in
// pages of the 64 KiB apart from the vsock device's.
pb::PmemDeviceState LivePmemState(uint64_t size) {
  auto pmem = kf::pmem::VirtioPmem::Create(Memory().view(), kPmemMmioGpa,
                                           {.gpa = kPmemGpa, .size = size, .read_only = true});
  if (!pmem.ok()) std::abort();
  kf::testing::FakeVirtioDriver driver((*pmem)->mmio(), kPmemMmioGpa, &Memory());
  if (!driver.Negotiate()) std::abort();
  driver.ProgramQueue(0, 8, 0x8000, 0x8200, 0x8400);
  if (!driver.DriverOk()) std::abort();
  return (*pmem)->Save();
}

kf::TemplateState BaseState(const std::string& kind, int vcpus, bool full) {
  kf::TemplateState s;
  s.template_id = 0x0123456789abcdef;
  s.guest_kind = kind;
  s.created_unix_ns = 1700000000123456789;
  s.mem_size = 8 << 20;
  s.memory_file_size = s.mem_size + kf::kMemoryFooterSize;
  s.memory_checksum = 0x55aa55aa;
  s.regions = {{0, s.mem_size / 2, 0}, {1ull << 32, s.mem_size / 2, s.mem_size / 2}};
  s.vm_config = {.irqchip = true, .pit = true};
  s.host = {.kernel_release = "6.1.0", .cpu_model = "Fuzz CPU", .is_pvm = false};
  s.vsock = LiveVsockState();
  for (int i = 0; i < vcpus; ++i) {
    kf::VcpuState v;
    v.regs = Filled<kvm_regs>(static_cast<uint8_t>(i));
    v.sregs = Filled<kvm_sregs>(static_cast<uint8_t>(i + 1));
    v.msrs = {{0x10, 0x1122334455667788ull}, {0xc0000080, 0xd01}};
    v.tsc_khz = 2400000;
    if (full) {
      v.cpuid = {Filled<kvm_cpuid_entry2>(3)};
      v.xsave.assign(kf::kMinXsaveBytes, 0);
      v.xcrs = Filled<kvm_xcrs>(4);
      v.lapic = Filled<kvm_lapic_state>(5);
      v.events = Filled<kvm_vcpu_events>(6);
      v.debugregs = Filled<kvm_debugregs>(7);
      v.mp_state = kvm_mp_state{KVM_MP_STATE_RUNNABLE};
      v.unsupported = {"nested state: not supported"};
    }
    s.vcpus.push_back(std::move(v));
  }
  if (full) {
    s.vm.pic_master = Filled<kvm_irqchip>(20);
    s.vm.pic_master->chip_id = KVM_IRQCHIP_PIC_MASTER;
    s.vm.pic_slave = Filled<kvm_irqchip>(21);
    s.vm.pic_slave->chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s.vm.ioapic = Filled<kvm_irqchip>(22);
    s.vm.ioapic->chip_id = KVM_IRQCHIP_IOAPIC;
    s.vm.pit = Filled<kvm_pit_state2>(23);
    s.vm.clock = Filled<kvm_clock_data>(24);
  }
  return s;
}

kf::fuzz::Seeds MakeSeeds() {
  kf::TemplateState bare = BaseState(kf::kGuestKindBare, 1, false);
  bare.bare = {.init_bytes = 4 << 20, .seed = 0xfeedface12345678, .image_checksum = 0xabcdef};
  kf::TemplateState linux_guest = BaseState(kf::kGuestKindLinux, 2, false);
  linux_guest.linux_guest.cmdline = "console=ttyS0 root=/dev/pmem0";
  linux_guest.linux_guest.serial.emplace().set_lcr(3);
  linux_guest.linux_guest.rootfs_size = 1 << 20;
  linux_guest.linux_guest.pmem.emplace().set_size(1 << 20);
  const kf::TemplateState full = BaseState(kf::kGuestKindBare, 1, true);
  // A Linux clone's devices as they run: the UART and the pmem rootfs.
  kf::TemplateState linux_live = BaseState(kf::kGuestKindLinux, 1, false);
  linux_live.linux_guest.cmdline =
      std::string(kf::linux_layout::kDefaultCmdline) + " " + kf::linux_layout::kRootfsCmdline;
  linux_live.linux_guest.serial = LiveSerialState();
  linux_live.linux_guest.rootfs_size = kf::pmem::kRegionAlignment;
  linux_live.linux_guest.rootfs_checksum = 0x1234;
  linux_live.linux_guest.pmem = LivePmemState(linux_live.linux_guest.rootfs_size);
  kf::fuzz::Seeds seeds;
  const std::pair<const char*, const kf::TemplateState*> states[] = {
      {"bare", &bare},
      {"linux", &linux_guest},
      {"full-vcpu", &full},
      {"linux-devices", &linux_live}};
  for (const auto& [name, state] : states) {
    auto file = kf::EncodeStateFile(*state);
    if (!file.ok() || !Load({reinterpret_cast<const uint8_t*>(file->data()), file->size()}).ok()) {
      std::fprintf(stderr, "seed %s does not load\n", name);
      std::exit(1);
    }
    seeds.push_back({name, *file});
  }
  return seeds;
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

// Most mutations get a header that matches their payload; one in eight
// keeps the header as mutated, for the header checks themselves.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (seed % 8 != 0 && size >= kf::kStateHeaderSize) FixHeader(data, size);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto state = Load({data, size});
  if (!state.ok()) {
    KF_FUZZ_CHECK(!state.error().message().empty(), "a refusal without a reason");
    return 0;
  }
  KF_FUZZ_CHECK(!kf::DescribeTemplate(*state).empty(), "an empty description");

  auto again = kf::EncodeStateFile(*state);
  KF_FUZZ_CHECK(again.ok(), "an accepted state does not encode: %s",
                again.error().message().c_str());
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(again->data()),
                                       again->size());
  auto reloaded = Load(bytes);
  KF_FUZZ_CHECK(reloaded.ok(), "a re-encoded state does not load: %s",
                reloaded.error().message().c_str());
  auto third = kf::EncodeStateFile(*reloaded);
  KF_FUZZ_CHECK(third.ok() && *third == *again, "a state changed in an encode/load round trip");

  if (state->vsock) RestoreVsock(*state->vsock);
  const kf::LinuxGuestConfig& lg = state->linux_guest;
  if (lg.serial) RestoreSerial(*lg.serial);
  if (lg.pmem) RestorePmem(*lg.pmem, lg.rootfs_size);
  return 0;
}
