// Tests of the template format. No KVM needed: the state structs are filled
// by hand with distinctive byte patterns, so a field that is dropped, moved
// or truncated anywhere shows up as a difference.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "proto/snapshot.pb.h"
#include <xxhash.h>

#include "snapshot/memory_hash.h"
#include "snapshot/rootfs_image.h"
#include "snapshot/state_codec.h"
#include "snapshot/template_files.h"
#include "vmm-glue/unique_fd.h"

namespace kf {
namespace {

// Fills an object with bytes that depend on `seed` and the offset.
template <typename T>
void Fill(T* obj, uint8_t seed) {
  auto* p = reinterpret_cast<uint8_t*>(obj);
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
}

template <typename T>
T Filled(uint8_t seed) {
  T value{};
  Fill(&value, seed);
  return value;
}

template <typename T>
bool SameBytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <typename T>
bool SameBytes(const std::optional<T>& a, const std::optional<T>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || SameBytes(*a, *b);
}

VcpuState MakeVcpu(uint8_t seed) {
  VcpuState v;
  v.cpuid = {Filled<kvm_cpuid_entry2>(seed), Filled<kvm_cpuid_entry2>(seed + 1),
             Filled<kvm_cpuid_entry2>(seed + 2)};
  v.regs = Filled<kvm_regs>(seed + 3);
  v.sregs = Filled<kvm_sregs>(seed + 4);
  v.xsave.resize(kMinXsaveBytes + 64);
  for (size_t i = 0; i < v.xsave.size(); ++i) v.xsave[i] = static_cast<uint8_t>(seed ^ i);
  v.fpu = Filled<kvm_fpu>(seed + 5);
  v.xcrs = Filled<kvm_xcrs>(seed + 6);
  v.msrs = {{0x10, 0x1122334455667788ull + seed}, {0xc0000080, 0xd01}, {0x174, seed}};
  v.lapic = Filled<kvm_lapic_state>(seed + 7);
  v.events = Filled<kvm_vcpu_events>(seed + 8);
  v.debugregs = Filled<kvm_debugregs>(seed + 9);
  v.mp_state = kvm_mp_state{KVM_MP_STATE_RUNNABLE};
  v.tsc_khz = 2400000 + seed;
  v.unsupported = {"nested state: not supported by PVM"};
  return v;
}

VmState MakeVm() {
  VmState vm;
  vm.pic_master = Filled<kvm_irqchip>(20);
  vm.pic_master->chip_id = KVM_IRQCHIP_PIC_MASTER;
  vm.pic_slave = Filled<kvm_irqchip>(21);
  vm.pic_slave->chip_id = KVM_IRQCHIP_PIC_SLAVE;
  vm.ioapic = Filled<kvm_irqchip>(22);
  vm.ioapic->chip_id = KVM_IRQCHIP_IOAPIC;
  vm.pit = Filled<kvm_pit_state2>(23);
  vm.clock = Filled<kvm_clock_data>(24);
  vm.unsupported = {"clock: KVM_GET_CLOCK: not stable on this host"};
  return vm;
}

TemplateState MakeState() {
  TemplateState s;
  s.guest_kind = kGuestKindBare;
  s.created_unix_ns = 1700000000123456789;
  s.vm_config = {.irqchip = true, .pit = true};
  s.bare = {.init_bytes = 4 << 20, .seed = 0xfeedface12345678, .image_checksum = 0xabcdef};
  s.vm = MakeVm();
  s.vcpus = {MakeVcpu(1), MakeVcpu(100)};
  s.host = {.kernel_release = "6.18.0-fc", .cpu_model = "Test CPU @ 1GHz", .is_pvm = true};
  return s;
}

// The fields WriteTemplate would fill in, for tests of the codec alone.
TemplateState MakeCompleteState(uint64_t mem_size) {
  TemplateState s = MakeState();
  s.template_id = 0x0123456789abcdef;
  s.mem_size = mem_size;
  s.memory_file_size = mem_size + kMemoryFooterSize;
  s.memory_checksum = 0x55aa55aa;
  s.regions = {{0, mem_size / 2, 0}, {1ull << 32, mem_size / 2, mem_size / 2}};
  return s;
}

void ExpectSameVcpu(const VcpuState& a, const VcpuState& b) {
  ASSERT_EQ(a.cpuid.size(), b.cpuid.size());
  for (size_t i = 0; i < a.cpuid.size(); ++i) EXPECT_TRUE(SameBytes(a.cpuid[i], b.cpuid[i]));
  EXPECT_TRUE(SameBytes(a.regs, b.regs));
  EXPECT_TRUE(SameBytes(a.sregs, b.sregs));
  EXPECT_EQ(a.xsave, b.xsave);
  EXPECT_TRUE(SameBytes(a.fpu, b.fpu));
  EXPECT_TRUE(SameBytes(a.xcrs, b.xcrs));
  ASSERT_EQ(a.msrs.size(), b.msrs.size());
  for (size_t i = 0; i < a.msrs.size(); ++i) {
    EXPECT_EQ(a.msrs[i].index, b.msrs[i].index);
    EXPECT_EQ(a.msrs[i].value, b.msrs[i].value);
  }
  EXPECT_TRUE(SameBytes(a.lapic, b.lapic));
  EXPECT_TRUE(SameBytes(a.events, b.events));
  EXPECT_TRUE(SameBytes(a.debugregs, b.debugregs));
  EXPECT_TRUE(SameBytes(a.mp_state, b.mp_state));
  EXPECT_EQ(a.tsc_khz, b.tsc_khz);
  EXPECT_EQ(a.unsupported, b.unsupported);
}

void ExpectSameState(const TemplateState& a, const TemplateState& b) {
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.template_id, b.template_id);
  EXPECT_EQ(a.memory_file_size, b.memory_file_size);
  EXPECT_EQ(a.memory_checksum, b.memory_checksum);
  EXPECT_EQ(a.guest_kind, b.guest_kind);
  EXPECT_EQ(a.created_unix_ns, b.created_unix_ns);
  EXPECT_EQ(a.mem_size, b.mem_size);
  ASSERT_EQ(a.regions.size(), b.regions.size());
  for (size_t i = 0; i < a.regions.size(); ++i) {
    EXPECT_EQ(a.regions[i].gpa, b.regions[i].gpa);
    EXPECT_EQ(a.regions[i].size, b.regions[i].size);
    EXPECT_EQ(a.regions[i].file_offset, b.regions[i].file_offset);
  }
  EXPECT_EQ(a.vm_config.irqchip, b.vm_config.irqchip);
  EXPECT_EQ(a.vm_config.pit, b.vm_config.pit);
  EXPECT_EQ(a.bare.init_bytes, b.bare.init_bytes);
  EXPECT_EQ(a.bare.seed, b.bare.seed);
  EXPECT_EQ(a.bare.image_checksum, b.bare.image_checksum);
  EXPECT_TRUE(SameBytes(a.vm.pic_master, b.vm.pic_master));
  EXPECT_TRUE(SameBytes(a.vm.pic_slave, b.vm.pic_slave));
  EXPECT_TRUE(SameBytes(a.vm.ioapic, b.vm.ioapic));
  EXPECT_TRUE(SameBytes(a.vm.pit, b.vm.pit));
  EXPECT_TRUE(SameBytes(a.vm.clock, b.vm.clock));
  EXPECT_EQ(a.vm.unsupported, b.vm.unsupported);
  ASSERT_EQ(a.vcpus.size(), b.vcpus.size());
  for (size_t i = 0; i < a.vcpus.size(); ++i) ExpectSameVcpu(a.vcpus[i], b.vcpus[i]);
  EXPECT_EQ(a.host.kernel_release, b.host.kernel_release);
  EXPECT_EQ(a.host.cpu_model, b.host.cpu_model);
  EXPECT_EQ(a.host.is_pvm, b.host.is_pvm);
}

// ---- Codec ----

TEST(StateCodecTest, FullStateSurvivesProtoRoundTrip) {
  const TemplateState in = MakeCompleteState(8 << 20);
  snapshot_pb::TemplateState proto;
  EncodeTemplateState(in, &proto);
  std::string wire;
  ASSERT_TRUE(proto.SerializeToString(&wire));
  snapshot_pb::TemplateState parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  Result<TemplateState> out = DecodeTemplateState(parsed);
  ASSERT_TRUE(out.ok()) << out.error().message();
  ExpectSameState(in, *out);
}

TEST(StateCodecTest, AbsentPiecesStayAbsent) {
  VcpuState in;
  in.regs = Filled<kvm_regs>(1);
  in.sregs = Filled<kvm_sregs>(2);
  snapshot_pb::VcpuState proto;
  EncodeVcpuState(in, &proto);
  Result<VcpuState> out = DecodeVcpuState(proto, 0);
  ASSERT_TRUE(out.ok()) << out.error().message();
  ExpectSameVcpu(in, *out);
  EXPECT_FALSE(out->fpu || out->xcrs || out->lapic || out->events || out->debugregs ||
               out->mp_state || out->tsc_khz);

  snapshot_pb::VmState vm_proto;
  EncodeVmState(VmState{}, &vm_proto);
  Result<VmState> vm = DecodeVmState(vm_proto);
  ASSERT_TRUE(vm.ok());
  EXPECT_FALSE(vm->pic_master || vm->pic_slave || vm->ioapic || vm->pit || vm->clock);
}

struct BadField {
  const char* name;
  void (*damage)(snapshot_pb::TemplateState*);
  std::string expected;
};

TEST(StateCodecTest, RejectsWrongSizesNamingTheField) {
  const std::vector<BadField> cases = {
      {"sregs", [](auto* p) { p->mutable_vcpus(0)->mutable_sregs()->resize(300); },
       "vcpu 0 sregs: 300 bytes, expected " + std::to_string(sizeof(kvm_sregs))},
      {"regs", [](auto* p) { p->mutable_vcpus(1)->clear_regs(); },
       "vcpu 1 regs: 0 bytes, expected " + std::to_string(sizeof(kvm_regs))},
      {"lapic", [](auto* p) { p->mutable_vcpus(1)->mutable_lapic()->resize(1000); },
       "vcpu 1 lapic: 1000 bytes, expected " + std::to_string(sizeof(kvm_lapic_state))},
      {"mp_state", [](auto* p) { p->mutable_vcpus(0)->mutable_mp_state()->resize(8); },
       "vcpu 0 mp_state: 8 bytes, expected 4"},
      {"xsave small", [](auto* p) { p->mutable_vcpus(0)->mutable_xsave()->resize(100); },
       "vcpu 0 xsave: 100 bytes, expected 4096 to 1048576"},
      {"xsave big", [](auto* p) { p->mutable_vcpus(0)->mutable_xsave()->resize(2 << 20); },
       "vcpu 0 xsave: 2097152 bytes, expected 4096 to 1048576"},
      {"cpuid partial", [](auto* p) { p->mutable_vcpus(0)->mutable_cpuid()->resize(41); },
       "vcpu 0 cpuid: 41 bytes, not a multiple of 40"},
      {"cpuid many", [](auto* p) { p->mutable_vcpus(0)->mutable_cpuid()->resize(4097 * 40); },
       "vcpu 0 cpuid: 4097 entries, at most 4096"},
      {"pit", [](auto* p) { p->mutable_vm()->mutable_pit()->resize(7); },
       "vm pit: 7 bytes, expected " + std::to_string(sizeof(kvm_pit_state2))},
      {"clock", [](auto* p) { p->mutable_vm()->mutable_clock()->append("x"); },
       "vm clock: " + std::to_string(sizeof(kvm_clock_data) + 1) + " bytes, expected " +
           std::to_string(sizeof(kvm_clock_data))},
      {"ioapic chip", [](auto* p) { (*p->mutable_vm()->mutable_ioapic())[0] = 0; },
       "vm ioapic: chip_id 0, expected 2"},
      {"guest kind", [](auto* p) { p->set_guest_kind("windows"); },
       "guest kind \"windows\" is neither"},
      {"file size", [](auto* p) { p->mutable_memory()->set_file_size(8 << 20); },
       "memory file size 8388608 is not memory size 8388608 + 64-byte footer"},
      {"region overlap", [](auto* p) { p->mutable_memory()->mutable_regions(1)->set_gpa(4096); },
       "memory regions overlap in guest physical addresses"},
      {"region outside",
       [](auto* p) { p->mutable_memory()->mutable_regions(1)->set_file_offset(8 << 20); },
       "memory region 1: file range"},
      {"no vcpus", [](auto* p) { p->clear_vcpus(); }, "template has 0 vCPUs"},
  };
  snapshot_pb::TemplateState good;
  EncodeTemplateState(MakeCompleteState(8 << 20), &good);
  for (const BadField& c : cases) {
    snapshot_pb::TemplateState proto = good;
    c.damage(&proto);
    Result<TemplateState> out = DecodeTemplateState(proto);
    ASSERT_FALSE(out.ok()) << c.name;
    EXPECT_NE(out.error().message().find(c.expected), std::string::npos)
        << c.name << ": " << out.error().message();
  }
}

TEST(MemoryHashTest, SplitAndHolesAgreeWithOneShot) {
  std::vector<uint8_t> memory(1 << 20, 0);
  for (size_t i = 0; i < 4096; ++i) memory[i] = static_cast<uint8_t>(i);
  memory[700000] = 9;
  Result<uint64_t> whole = HashMemory(memory);
  ASSERT_TRUE(whole.ok());
  Result<MemoryHasher> h = MemoryHasher::Create();
  ASSERT_TRUE(h.ok());
  h->Update({memory.data(), 4096});
  h->UpdateZeros(700000 - 4096);
  h->Update({memory.data() + 700000, memory.size() - 700000});
  EXPECT_EQ(h->Digest(), *whole);
}

// ---- Template files ----

class TemplateFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/kf_snapshot_test.XXXXXX";
    ASSERT_NE(mkdtemp(path), nullptr);
    root_ = path;
    dir_ = root_ + "/tmpl";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Patterned pages at the start, one lone page in the middle (2 MiB of
  // 4 MiB), the rest zeros (which must become holes).
  static std::vector<uint8_t> MakeMemory(size_t size = 4 << 20) {
    std::vector<uint8_t> memory(size, 0);
    for (size_t i = 0; i < 64 * 4096; ++i) memory[i] = static_cast<uint8_t>(i * 13 + 1);
    for (size_t i = 0; i < 4096; ++i) memory[size / 2 + i] = 0xa5;
    return memory;
  }

  Status Write(const std::string& dir, size_t mem_size = 4 << 20) {
    memory_ = MakeMemory(mem_size);
    return WriteTemplate(dir, MakeState(), memory_);
  }

  std::string ReadError(const std::string& dir) {
    Result<TemplateState> s = ReadTemplateState(dir);
    return s.ok() ? "(no error)" : s.error().message();
  }

  // Reads a guest memory copy back through a memfd, as the zygote would.
  Status CopyToMemfd(const TemplateState& state, std::vector<uint8_t>* out = nullptr) {
    UniqueFd memfd(memfd_create("guest", MFD_CLOEXEC));
    EXPECT_TRUE(memfd.valid());
    EXPECT_EQ(ftruncate(memfd.get(), state.mem_size), 0);
    Status s = CopyAndVerifyMemory(dir_, state, memfd.get());
    if (s.ok() && out != nullptr) {
      out->resize(state.mem_size);
      EXPECT_EQ(pread(memfd.get(), out->data(), out->size(), 0), static_cast<ssize_t>(out->size()));
    }
    return s;
  }

  // Names in root_ other than the test's own leftovers: what a failed write
  // left behind.
  std::vector<std::string> Entries() {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(root_)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  void Patch(const std::string& path, uint64_t off, const void* data, size_t n) {
    UniqueFd fd(open(path.c_str(), O_WRONLY));
    ASSERT_TRUE(fd.valid()) << path;
    ASSERT_EQ(pwrite(fd.get(), data, n, off), static_cast<ssize_t>(n));
  }

  void FlipByte(const std::string& path, uint64_t off) {
    UniqueFd fd(open(path.c_str(), O_RDWR));
    ASSERT_TRUE(fd.valid()) << path;
    uint8_t b = 0;
    ASSERT_EQ(pread(fd.get(), &b, 1, off), 1);
    b ^= 0x40;
    ASSERT_EQ(pwrite(fd.get(), &b, 1, off), 1);
  }

  std::string root_, dir_;
  std::vector<uint8_t> memory_;
};

TEST_F(TemplateFilesTest, WriteReadRoundTrip) {
  ASSERT_TRUE(Write(dir_).ok());
  Result<TemplateState> state = ReadTemplateState(dir_);
  ASSERT_TRUE(state.ok()) << state.error().message();

  TemplateState expected = MakeState();
  expected.template_id = state->template_id;
  expected.mem_size = 4 << 20;
  expected.memory_file_size = (4 << 20) + kMemoryFooterSize;
  expected.memory_checksum = *HashMemory(memory_);
  expected.regions = {{0, 4 << 20, 0}};
  ExpectSameState(expected, *state);
  EXPECT_NE(state->template_id, 0u);

  std::vector<uint8_t> copy;
  Status copied = CopyToMemfd(*state, &copy);
  ASSERT_TRUE(copied.ok()) << copied.error().message();
  EXPECT_EQ(copy, memory_);

  // 65 data pages and the footer; the other ~3.7 MiB are holes.
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/memory.img").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (4 << 20) + 64);
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "memory.img is not sparse";

  EXPECT_EQ(Entries(), std::vector<std::string>{"tmpl"});  // no temporary left
  const std::string text = DescribeTemplate(*state);
  for (const char* want : {"kind:     bare", "memory:   4 MiB", "vcpus:    2", "PVM",
                           "unsupported: clock: KVM_GET_CLOCK", "6.18.0-fc"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << " in\n" << text;
  }
}

TEST_F(TemplateFilesTest, AllZeroMemoryIsOneBigHole) {
  std::vector<uint8_t> zeros(4 << 20, 0);
  ASSERT_TRUE(WriteTemplate(dir_ + "/", MakeState(), zeros).ok());
  Result<TemplateState> state = ReadTemplateState(dir_);
  ASSERT_TRUE(state.ok()) << state.error().message();
  std::vector<uint8_t> copy;
  ASSERT_TRUE(CopyToMemfd(*state, &copy).ok());
  EXPECT_EQ(copy, zeros);
}

TEST_F(TemplateFilesTest, FlippedStatePayloadByteIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  FlipByte(dir_ + "/state.bin", 32 + 10);
  EXPECT_EQ(ReadError(dir_),
            "template " + dir_ + ": state.bin payload checksum mismatch (damaged template)");
}

TEST_F(TemplateFilesTest, FlippedMemoryByteIsRefusedByCopy) {
  ASSERT_TRUE(Write(dir_).ok());
  FlipByte(dir_ + "/memory.img", 12345);
  Result<TemplateState> state = ReadTemplateState(dir_);
  ASSERT_TRUE(state.ok());  // the memory is only hashed when it is copied
  Status s = CopyToMemfd(*state);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "template " + dir_ + ": memory.img checksum mismatch (damaged template)");
}

TEST_F(TemplateFilesTest, TruncatedMemoryIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  ASSERT_EQ(truncate((dir_ + "/memory.img").c_str(), 1 << 20), 0);
  EXPECT_EQ(ReadError(dir_), "template " + dir_ + ": memory.img is 1048576 bytes, state says " +
                                 std::to_string((4 << 20) + 64));
}

TEST_F(TemplateFilesTest, OtherFormatVersionIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  const uint32_t version = 7;  // little endian, at offset 8 of the header
  Patch(dir_ + "/state.bin", 8, &version, sizeof(version));
  EXPECT_EQ(ReadError(dir_), "template " + dir_ +
                                 ": template format version 7 is not supported (this build "
                                 "reads " + std::to_string(kTemplateFormatVersion) + ")");
}

TEST_F(TemplateFilesTest, StateOfAnotherTemplateIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  for (size_t other_size : {8 << 20, 2 << 20, 4 << 20}) {
    const std::string other = root_ + "/other" + std::to_string(other_size);
    ASSERT_TRUE(Write(other, other_size).ok());
    const std::string copy = root_ + "/copy" + std::to_string(other_size);
    std::filesystem::create_directory(copy);
    std::filesystem::copy_file(dir_ + "/memory.img", copy + "/memory.img");
    std::filesystem::copy_file(other + "/state.bin", copy + "/state.bin");
    const std::string error = ReadError(copy);
    EXPECT_NE(error.find("state.bin and memory.img belong to different templates"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("with " + std::to_string(other_size) + " bytes of memory"),
              std::string::npos)
        << error;
  }
}

TEST_F(TemplateFilesTest, MissingStateIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  ASSERT_EQ(unlink((dir_ + "/state.bin").c_str()), 0);
  EXPECT_EQ(ReadError(dir_),
            "template " + dir_ + ": state.bin: No such file or directory (errno 2)");
}

TEST_F(TemplateFilesTest, MissingMemoryIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  ASSERT_EQ(unlink((dir_ + "/memory.img").c_str()), 0);
  EXPECT_EQ(ReadError(dir_),
            "template " + dir_ + ": memory.img: No such file or directory (errno 2)");
}

TEST_F(TemplateFilesTest, GarbageStateIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  std::ofstream(dir_ + "/state.bin", std::ios::trunc) << "abc";
  EXPECT_EQ(ReadError(dir_),
            "template " + dir_ + ": state.bin is 3 bytes, shorter than its 32-byte header");

  std::ofstream(dir_ + "/state.bin", std::ios::trunc) << std::string(100, 'x');
  EXPECT_NE(ReadError(dir_).find("not a template state file"), std::string::npos);
}

TEST_F(TemplateFilesTest, TruncatedStateIsRefused) {
  ASSERT_TRUE(Write(dir_).ok());
  const std::string path = dir_ + "/state.bin";
  ASSERT_EQ(truncate(path.c_str(), std::filesystem::file_size(path) - 1), 0);
  EXPECT_NE(ReadError(dir_).find("(truncated or damaged)"), std::string::npos);
}

TEST_F(TemplateFilesTest, OversizedPayloadIsRefusedBeforeReading) {
  ASSERT_TRUE(Write(dir_).ok());
  const uint64_t huge = 1ull << 40;
  Patch(dir_ + "/state.bin", 16, &huge, sizeof(huge));
  EXPECT_NE(ReadError(dir_).find("exceeds the cap of 64 MiB"), std::string::npos);
}

TEST_F(TemplateFilesTest, ExistingDirectoryIsNotOverwritten) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
  Status s = Write(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "template directory " + dir_ + " already exists; refusing to overwrite it");
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
  EXPECT_EQ(Entries(), std::vector<std::string>{"tmpl"});
}

TEST_F(TemplateFilesTest, MissingParentFailsCleanly) {
  const std::string dir = root_ + "/absent/tmpl";
  Status s = Write(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "creating " + dir + ".tmp-" + std::to_string(getpid()) +
                                     ": No such file or directory (errno 2)");
  EXPECT_TRUE(Entries().empty());
}

TEST_F(TemplateFilesTest, InvalidStateIsNotWritten) {
  TemplateState state = MakeState();
  state.guest_kind = "windows";
  std::vector<uint8_t> memory = MakeMemory();
  Status s = WriteTemplate(dir_, state, memory);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("guest kind"), std::string::npos);
  std::vector<uint8_t> odd(4097, 1);
  s = WriteTemplate(dir_, MakeState(), odd);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("not a positive multiple of 4 KiB"), std::string::npos);
  EXPECT_TRUE(Entries().empty());
}

// A write that fails halfway (here EFBIG from RLIMIT_FSIZE, as root cannot
// be stopped by permissions) names the file and errno, and leaves neither
// the template nor its temporary directory.
TEST_F(TemplateFilesTest, FailedWriteLeavesNothing) {
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = old;
  limited.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  Status s = Write(dir_);  // has a data page at 2 MiB
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().sys_errno(), EFBIG);
  EXPECT_EQ(s.error().message(), "writing " + dir_ + ".tmp-" + std::to_string(getpid()) +
                                     "/memory.img: File too large (errno 27)");
  EXPECT_TRUE(Entries().empty());
}

// A Linux template with a pmem rootfs: the image is copied in as
// rootfs.img, byte for byte, and its digest checked while copying.
TEST_F(TemplateFilesTest, RootfsImageIsCopiedAndChecked) {
  const std::string image = root_ + "/rootfs.ext4";
  std::string bytes(2 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); i += 4096) bytes[i] = static_cast<char>(i / 4096 + 1);
  std::ofstream(image, std::ios::binary) << bytes;
  auto linux_state = [&](uint64_t checksum) {
    TemplateState s = MakeState();
    s.guest_kind = kGuestKindLinux;
    s.bare = {};
    s.vcpus.resize(1);
    s.vsock.emplace();
    s.linux_guest.rootfs_size = bytes.size();
    s.linux_guest.rootfs_checksum = checksum;
    s.linux_guest.pmem.emplace();
    s.linux_guest.pmem->set_size(bytes.size());
    return s;
  };
  memory_ = MakeMemory();
  const uint64_t sum = XXH3_64bits(bytes.data(), bytes.size());

  // The image changed since the guest booted (another checksum): refused,
  // nothing left.
  Status s = WriteTemplate(dir_, linux_state(sum ^ 1), memory_, image);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("changed while the template was being made"),
            std::string::npos)
      << s.error().message();
  EXPECT_EQ(Entries(), std::vector<std::string>{"rootfs.ext4"});  // only the source
  // A rootfs size without an image, and an image without a size: refused.
  EXPECT_FALSE(WriteTemplate(dir_, linux_state(sum), memory_).ok());
  EXPECT_FALSE(WriteTemplate(dir_, MakeState(), memory_, image).ok());
  EXPECT_EQ(Entries(), std::vector<std::string>{"rootfs.ext4"});  // only the source

  ASSERT_TRUE(WriteTemplate(dir_, linux_state(sum), memory_, image).ok());
  std::ifstream in(dir_ + "/" + kRootfsFileName, std::ios::binary);
  std::string copied((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(copied == bytes) << "rootfs.img is not the image";
  auto back = ReadTemplateState(dir_);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->linux_guest.rootfs_size, bytes.size());
  EXPECT_EQ(back->linux_guest.rootfs_checksum, sum);
  ASSERT_TRUE(back->linux_guest.pmem.has_value());
  EXPECT_EQ(back->linux_guest.pmem->size(), bytes.size());
}

TEST_F(TemplateFilesTest, ErrorsAreDistinct) {
  // The refusals above, side by side: each names its own cause.
  std::set<std::string> messages;
  auto add = [&](const std::string& dir) {
    const std::string error = ReadError(dir);
    const std::string prefix = "template " + dir + ": ";
    ASSERT_EQ(error.substr(0, prefix.size()), prefix);
    messages.insert(error.substr(prefix.size()));
  };
  auto fresh = [&](const std::string& name) {
    const std::string dir = root_ + "/" + name;
    EXPECT_TRUE(Write(dir).ok());
    return dir;
  };
  std::string d = fresh("payload");
  FlipByte(d + "/state.bin", 40);
  add(d);
  d = fresh("trunc");
  ASSERT_EQ(truncate((d + "/memory.img").c_str(), 1 << 20), 0);
  add(d);
  d = fresh("version");
  const uint32_t version = kTemplateFormatVersion + 1;
  Patch(d + "/state.bin", 8, &version, sizeof(version));
  add(d);
  d = fresh("garbage");
  std::ofstream(d + "/state.bin", std::ios::trunc) << "abc";
  add(d);
  d = fresh("missing");
  unlink((d + "/state.bin").c_str());
  add(d);
  EXPECT_EQ(messages.size(), 5u);
}

}  // namespace
}  // namespace kf
