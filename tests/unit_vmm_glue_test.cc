// Unit tests of vmm-glue pieces that need no KVM: the I/O bus, the guest
// memory view, Result/Status.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/kvm_abi.h"
#include "vmm-glue/result.h"
#include "vmm-glue/vmm_thread.h"

namespace kf {
namespace {

class RecordingDevice : public IoDevice {
 public:
  IoAction Read(uint64_t addr, std::span<uint8_t> data) override {
    last_addr = addr;
    for (auto& b : data) b = 0x5a;
    return IoAction::kContinue;
  }
  IoAction Write(uint64_t addr, std::span<const uint8_t> data) override {
    last_addr = addr;
    written.assign(data.begin(), data.end());
    return stop_on_write ? IoAction::kStop : IoAction::kContinue;
  }
  uint64_t last_addr = 0;
  std::vector<uint8_t> written;
  bool stop_on_write = false;
};

TEST(IoBus, DispatchesToTheOwningRange) {
  IoBus bus;
  RecordingDevice a, b;
  ASSERT_TRUE(bus.AddPio(0x100, 8, &a, "a").ok());
  ASSERT_TRUE(bus.AddPio(0x108, 8, &b, "b").ok());
  uint8_t data[4] = {1, 2, 3, 4};
  EXPECT_EQ(bus.Pio(0x10c, true, data), IoAction::kContinue);
  EXPECT_EQ(b.last_addr, 0x10cu);
  EXPECT_EQ(b.written.size(), 4u);
  EXPECT_TRUE(a.written.empty());
  bus.Pio(0x100, false, data);
  EXPECT_EQ(data[0], 0x5a);
}

TEST(IoBus, RefusesOverlapsAndEmptyRanges) {
  IoBus bus;
  RecordingDevice a;
  ASSERT_TRUE(bus.AddPio(0x100, 8, &a, "a").ok());
  auto s = bus.AddPio(0x104, 8, &a, "b");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("overlaps a"), std::string::npos);
  EXPECT_FALSE(bus.AddPio(0xfc, 8, &a, "c").ok());
  EXPECT_FALSE(bus.AddPio(0x200, 0, &a, "d").ok());
  EXPECT_FALSE(bus.AddMmio(~0ull - 2, 8, &a, "wraps").ok());
}

TEST(IoBus, UnclaimedReadsAreAllOnesAndCounted) {
  IoBus bus;
  uint8_t data[2] = {0, 0};
  bus.Pio(0x3f8, false, data);
  EXPECT_EQ(data[0], 0xff);
  EXPECT_EQ(data[1], 0xff);
  EXPECT_EQ(bus.unclaimed_accesses(), 1u);
}

TEST(IoBus, AccessStraddlingTheEndOfARangeIsUnclaimed) {
  IoBus bus;
  RecordingDevice a;
  ASSERT_TRUE(bus.AddMmio(0x1000, 4, &a, "a").ok());
  uint8_t data[8] = {};
  bus.Mmio(0x1002, true, data);
  EXPECT_TRUE(a.written.empty());
  EXPECT_EQ(bus.unclaimed_accesses(), 1u);
}

TEST(IoBus, HandlerCanStopTheLoop) {
  IoBus bus;
  RecordingDevice a;
  a.stop_on_write = true;
  ASSERT_TRUE(bus.AddPio(0xf00, 8, &a, "a").ok());
  uint8_t data[4] = {};
  EXPECT_EQ(bus.Pio(0xf00, true, data), IoAction::kStop);
}

TEST(GuestMemoryView, BoundsAreOverflowSafe) {
  std::vector<uint8_t> mem(4096);
  GuestMemoryView v(mem.data(), mem.size());
  EXPECT_TRUE(v.Contains(0, 4096));
  EXPECT_TRUE(v.Contains(4096, 0));
  EXPECT_FALSE(v.Contains(1, 4096));
  EXPECT_FALSE(v.Contains(4097, 0));
  EXPECT_FALSE(v.Contains(~0ull - 1, 4));  // would wrap
  EXPECT_FALSE(v.Contains(8, ~0ull));
  EXPECT_EQ(v.At(4090, 8), nullptr);
  EXPECT_NE(v.As<uint64_t>(4088), nullptr);
  EXPECT_EQ(v.As<uint64_t>(4089), nullptr);
}

TEST(Result, CarriesValueOrError) {
  Result<int> ok = 5;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  Result<int> bad = Error::Sys("KVM_CREATE_VM", ENOMEM);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().sys_errno(), ENOMEM);
  EXPECT_NE(bad.error().message().find("KVM_CREATE_VM"), std::string::npos);
  EXPECT_NE(bad.error().message().find("errno 12"), std::string::npos);
  EXPECT_EQ(bad.error().Context("clone 3").message().rfind("clone 3: KVM_CREATE_VM", 0), 0u);
}

Status Chain(bool fail) {
  auto step = [&]() -> Result<int> {
    if (fail) return Error("step failed");
    return 1;
  };
  ASSIGN_OR_RETURN(int v, step());
  RETURN_IF_ERROR(v == 1 ? Status::Ok() : Status(Error("bad value")));
  return Status::Ok();
}

TEST(Result, MacrosPropagate) {
  EXPECT_TRUE(Chain(false).ok());
  EXPECT_EQ(Chain(true).error().message(), "step failed");
}

}  // namespace
}  // namespace kf

// The kernel reads kvm_msrs as {u32 nmsrs; u32 pad; kvm_msr_entry entries[]}:
// the first entry's index must be at byte 8, whatever C++ thinks of the
// header's flexible array (see kvm_abi.h).
TEST(KvmAbi, MsrsBufferHasTheKernelLayout) {
  kf::kvm_abi::MsrsBuffer msrs(2);
  msrs.set(1, kvm_msr_entry{.index = 0xc0000080, .data = 0x1234});
  const auto* bytes = static_cast<const uint8_t*>(msrs.data());
  uint32_t count, index;
  uint64_t data;
  std::memcpy(&count, bytes, 4);
  std::memcpy(&index, bytes + 8 + 16, 4);
  std::memcpy(&data, bytes + 8 + 16 + 8, 8);
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(index, 0xc0000080u);
  EXPECT_EQ(data, 0x1234u);
  EXPECT_EQ(msrs.elements().size(), 2u);
}

TEST(KvmAbi, ElementsNeverReadPastTheBuffer) {
  kf::kvm_abi::MsrListBuffer list(3);
  list.set_count(1000);  // as a confused kernel or caller might leave it
  EXPECT_EQ(list.elements().size(), 3u);
}

// The size of the mapping in /proc/self/maps that holds addr (0 if none).
static uint64_t MappingSizeHolding(uintptr_t addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uint64_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) return hi - lo;
  }
  return 0;
}

TEST(VmmThread, RunsOnAStackTooSmallForAHugePage) {
  std::atomic<uint64_t> stack_mapping{0};
  std::atomic<size_t> stack_size{0};
  auto t = kf::VmmThread::Start([&] {
    int local = 0;
    stack_mapping = MappingSizeHolding(reinterpret_cast<uintptr_t>(&local));
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstacksize(&attr, &size);
      pthread_attr_destroy(&attr);
    }
    stack_size = size;
  });
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_TRUE(t->joinable());
  t->join();
  EXPECT_FALSE(t->joinable());
  EXPECT_EQ(stack_size.load(), kf::VmmThread::kStackBytes);
  // The point: the whole mapping is under 2 MiB, so THP cannot back it
  // with a huge page (a std::thread's 8 MiB stack can be).
  EXPECT_GT(stack_mapping.load(), 0u);
  EXPECT_LT(stack_mapping.load(), uint64_t{2} << 20);
}

TEST(VmmThread, MovedThreadIsJoinedOnceByItsOwner) {
  std::atomic<int> runs{0};
  kf::VmmThread owner;
  EXPECT_FALSE(owner.joinable());
  {
    auto t = kf::VmmThread::Start([&] { ++runs; });
    ASSERT_TRUE(t.ok());
    owner = std::move(*t);
    EXPECT_FALSE(t->joinable());
  }  // the moved-from thread's destructor must not join or detach anything
  EXPECT_TRUE(owner.joinable());
  owner.join();
  EXPECT_EQ(runs.load(), 1);
  {
    auto t = kf::VmmThread::Start([&] { ++runs; });
    ASSERT_TRUE(t.ok());
  }  // the destructor joins
  EXPECT_EQ(runs.load(), 2);
}
