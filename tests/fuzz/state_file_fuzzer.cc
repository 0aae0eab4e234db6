// libFuzzer target: the template state loader, from state.bin to a device
// restored from it: the header, checksum, TemplateState protobuf and every
// decoder and check behind them (snapshot/state_file.h, state_codec.h,
// template_state.h), then the restore of the vsock device state the file
// carries (vmm-glue/vsock/hybrid_vsock.h), a clone's first use of it.
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
// guest memory fenced by PROT_NONE pages (tests/fake_virtio_driver.h).
#include <linux/virtio_mmio.h>
#include <xxhash.h>

#include <cstring>
#include <span>
#include <string>

#include "snapshot/file_io.h"
#include "snapshot/state_file.h"
#include "snapshot/template_files.h"
#include "tests/fake_virtio_driver.h"
#include "tests/fuzz/fuzz_util.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

constexpr uint64_t kMemory = 64 * 1024;  // guest memory for the vsock restore
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
  kf::fuzz::Seeds seeds;
  const std::pair<const char*, const kf::TemplateState*> states[] = {
      {"bare", &bare}, {"linux", &linux_guest}, {"full-vcpu", &full}};
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
  return 0;
}
