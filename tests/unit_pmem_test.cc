// The virtio-pmem device (vmm-glue/pmem/) behind its virtio-mmio transport,
// driven by the fake guest driver in guarded memory, and the host helper
// that maps its image (memshare/pmem_backing.h).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "memshare/pmem_backing.h"
#include "tests/fake_virtio_driver.h"
#include "vmm-glue/pmem/pmem_device.h"
#include "vmm-glue/unique_fd.h"
#include "vmm-glue/virtio/mmio_transport.h"

namespace {

using kf::testing::FakeVirtioDriver;
using kf::testing::GuardedMemory;
using kf::testing::Seg;
using kf::testing::UsedElem;
using kf::pmem::PmemOptions;
using kf::pmem::VirtioPmem;

constexpr uint64_t kBase = 0xd0001000;
constexpr uint64_t kRegionGpa = 0x100000000;  // 4 GiB, above guest RAM
constexpr uint64_t kRegionSize = 64ull << 20;
constexpr uint64_t kPage = 4096;
// Request buffers, well away from the rings (FakeVirtioDriver's layout).
constexpr uint64_t kReq = 0x4000000;
constexpr uint64_t kResp = 0x4001000;
constexpr uint32_t kSentinel = 0xa5a5a5a5;

class PmemTest : public ::testing::Test {
 protected:
  PmemTest() : mem_(FakeVirtioDriver::kMemorySize) {}
  void SetUp() override { MakeDevice({kRegionGpa, kRegionSize, -1, true}); }

  void MakeDevice(PmemOptions options) {
    driver_.reset();
    pmem_.reset();
    auto p = VirtioPmem::Create(mem_.view(), kBase, options);
    ASSERT_TRUE(p.ok()) << p.error().message();
    pmem_ = std::move(*p);
    driver_ = std::make_unique<FakeVirtioDriver>(pmem_->mmio(), kBase, &mem_);
  }
  bool Start() { return driver_->Init(1, 16); }

  uint32_t Load32(uint64_t gpa) {
    uint32_t v;
    std::memcpy(&v, mem_.at(gpa), 4);
    return v;
  }
  void Store32(uint64_t gpa, uint32_t v) { std::memcpy(mem_.at(gpa), &v, 4); }

  // Posts one chain, notifies, returns the used elements.
  std::vector<UsedElem> Submit(const std::vector<Seg>& segs) {
    driver_->Post(0, segs);
    driver_->Notify(0);
    return driver_->TakeUsed(0);
  }
  // A well-formed request of `type`: 4 readable bytes, then 4 writable.
  std::vector<UsedElem> Request(uint32_t type) {
    Store32(kReq, type);
    Store32(kResp, kSentinel);
    return Submit({{kReq, 4, false}, {kResp, 4, true}});
  }
  // A chain that must be refused: returned with used len 0, the response
  // buffer untouched, counted, and the device still running.
  void ExpectRefused(const std::vector<Seg>& segs, const std::string& what) {
    const uint64_t before = pmem_->counters().bad_chains;
    Store32(kResp, kSentinel);
    auto used = Submit(segs);
    ASSERT_EQ(used.size(), 1u) << what;
    EXPECT_EQ(used[0].len, 0u) << what;
    EXPECT_EQ(Load32(kResp), kSentinel) << what;
    EXPECT_EQ(pmem_->counters().bad_chains, before + 1) << what;
    EXPECT_FALSE(pmem_->needs_reset()) << what;
  }

  GuardedMemory mem_;
  std::unique_ptr<VirtioPmem> pmem_;
  std::unique_ptr<FakeVirtioDriver> driver_;
};

TEST_F(PmemTest, IdentityFeaturesAndConfigSpace) {
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_VERSION), 2u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_ID), 27u);
  EXPECT_EQ(uint32_t{VIRTIO_ID_PMEM}, 27u);
  // VERSION_1 (bit 32) and nothing else: not VIRTIO_PMEM_F_SHMEM_REGION (bit 0).
  driver_->Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_FEATURES), 0u);
  driver_->Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_FEATURES), 1u);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM_MAX), kf::pmem::kQueueMaxSize);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 1);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0u);  // one queue only

  // le64 start, le64 size, byte by byte; nothing after them.
  const uint8_t expected[16] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0};
  for (uint64_t i = 0; i < 16; ++i) EXPECT_EQ(driver_->ReadConfig8(i), expected[i]) << i;
  for (uint64_t i = 16; i < 32; ++i) EXPECT_EQ(driver_->ReadConfig8(i), 0u) << i;
  // Wider reads, as a driver's virtio_cread would do them.
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_CONFIG + 4), 1u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_CONFIG + 8), uint32_t(kRegionSize));
  uint8_t wide[8];
  pmem_->mmio()->Read(kBase + VIRTIO_MMIO_CONFIG, wide);
  uint64_t start;
  std::memcpy(&start, wide, 8);
  EXPECT_EQ(start, kRegionGpa);
  // The config space is read-only.
  driver_->Write32(VIRTIO_MMIO_CONFIG, 0x12345678);
  EXPECT_EQ(driver_->ReadConfig8(0), 0u);
}

TEST_F(PmemTest, ShmemRegionFeatureIsRefused) {
  std::string why;
  EXPECT_FALSE(driver_->Init(1, 16, /*VIRTIO_PMEM_F_SHMEM_REGION*/ 1, &why));
  EXPECT_EQ(why, "FEATURES_OK refused");
  EXPECT_TRUE(Start());
}

TEST_F(PmemTest, FlushIsAnsweredOk) {
  ASSERT_TRUE(Start());
  auto used = Request(kf::pmem::kReqTypeFlush);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), 0u);
  EXPECT_TRUE(pmem_->TakeGuestWork());
  EXPECT_FALSE(pmem_->TakeGuestWork());
  EXPECT_EQ(pmem_->transport().interrupt_status() & VIRTIO_MMIO_INT_VRING,
            uint32_t{VIRTIO_MMIO_INT_VRING});
  EXPECT_EQ(pmem_->counters().flushes, 1u);
  EXPECT_EQ(Load32(kReq), 0u);  // the request buffer is not written

  // The fields split into 1-byte descriptors: the device assumes no framing.
  Store32(kReq, 0);
  Store32(kResp, kSentinel);
  used = Submit({{kReq, 1, false}, {kReq + 1, 1, false}, {kReq + 2, 1, false},
                 {kReq + 3, 1, false}, {kResp, 1, true}, {kResp + 1, 1, true},
                 {kResp + 2, 1, true}, {kResp + 3, 1, true}});
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), 0u);
  // A bigger response buffer: only its first 4 bytes are written.
  Store32(kResp, kSentinel);
  Store32(kResp + 4, kSentinel);
  used = Submit({{kReq, 4, false}, {kResp, 8, true}});
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), 0u);
  EXPECT_EQ(Load32(kResp + 4), kSentinel);
  EXPECT_EQ(pmem_->counters().flushes, 3u);
  EXPECT_EQ(pmem_->counters().bad_chains, 0u);
}

TEST_F(PmemTest, SeveralRequestsInOneNotify) {
  ASSERT_TRUE(Start());
  for (uint32_t i = 0; i < 3; ++i) {
    Store32(kReq + 16 * i, 0);
    Store32(kResp + 16 * i, kSentinel);
    driver_->Post(0, {{kReq + 16 * i, 4, false}, {kResp + 16 * i, 4, true}});
  }
  driver_->Notify(0);
  auto used = driver_->TakeUsed(0);
  ASSERT_EQ(used.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(used[i].len, 4u);
    EXPECT_EQ(Load32(kResp + 16 * i), 0u);
  }
}

TEST_F(PmemTest, UnknownTypeIsAnsweredWithAnError) {
  ASSERT_TRUE(Start());
  for (uint32_t type : {1u, 2u, 0xffffffffu}) {
    auto used = Request(type);
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 4u);
    EXPECT_EQ(Load32(kResp), kf::pmem::kRespEio) << type;
  }
  EXPECT_EQ(pmem_->counters().unknown_requests, 3u);
  EXPECT_EQ(pmem_->counters().flushes, 0u);
  EXPECT_EQ(pmem_->counters().bad_chains, 0u);
  EXPECT_FALSE(pmem_->needs_reset());
}

TEST_F(PmemTest, BadChainsAreRefusedWithoutTouchingMemory) {
  ASSERT_TRUE(Start());
  Store32(kReq, 0);
  // Wrong directions.
  ExpectRefused({{kReq, 4, true}, {kResp, 4, true}}, "type buffer writable");
  ExpectRefused({{kReq, 4, false}, {kResp, 4, false}}, "ret buffer readable");
  ExpectRefused({{kResp, 4, true}, {kReq, 4, false}}, "writable before readable");
  ExpectRefused({{kReq, 4, false}}, "no ret buffer");
  ExpectRefused({{kResp, 4, true}}, "no type buffer");
  // Short and long buffers.
  ExpectRefused({{kReq, 3, false}, {kResp, 4, true}}, "short type");
  ExpectRefused({{kReq, 8, false}, {kResp, 4, true}}, "long type");
  ExpectRefused({{kReq, 4, false}, {kResp, 3, true}}, "short ret");
  ExpectRefused({{kReq, 4, false}, {kResp, 0, true}}, "empty ret");
  // More descriptors than a request has bytes.
  ExpectRefused({{kReq, 1, false}, {kReq + 1, 1, false}, {kReq + 2, 1, false},
                 {kReq + 3, 1, false}, {kResp, 1, true}, {kResp + 1, 1, true},
                 {kResp + 2, 1, true}, {kResp + 3, 1, true}, {kResp + 4, 0, true}},
                "nine descriptors");
  // A buffer outside guest memory.
  ExpectRefused({{kReq, 4, false}, {FakeVirtioDriver::kMemorySize - 2, 4, true}},
                "ret outside guest memory");
  EXPECT_EQ(pmem_->counters().bad_chains, 11u);
  EXPECT_EQ(pmem_->counters().flushes, 0u);
  EXPECT_GE(pmem_->transport().bad_inputs(), 11u);

  // A short ret buffer at the end of a page followed by an inaccessible one:
  // a device that wrote 4 bytes anyway would fault here.
  const uint64_t edge = kResp + 2 * kPage;
  mem_.Protect(edge + kPage, kPage, PROT_NONE);
  Store32(edge + kPage - 4, kSentinel);
  ExpectRefused({{kReq, 4, false}, {edge + kPage - 2, 2, true}}, "short ret at a page edge");
  EXPECT_EQ(Load32(edge + kPage - 4), kSentinel);
  mem_.Protect(edge + kPage, kPage, PROT_READ | PROT_WRITE);

  // The request buffer is never written, even when refused: make it read-only.
  mem_.Protect(kReq, kPage, PROT_READ);
  ExpectRefused({{kReq, 4, false}, {kResp, 2, true}}, "short ret, read-only request");
  Store32(kResp, kSentinel);
  auto used = Submit({{kReq, 4, false}, {kResp, 4, true}});  // kReq still holds FLUSH
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), 0u);
  mem_.Protect(kReq, kPage, PROT_READ | PROT_WRITE);
}

TEST_F(PmemTest, LoopingChainIsRefused) {
  ASSERT_TRUE(Start());
  // Two descriptors linking to each other, by hand.
  auto desc = [&](uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t* d = mem_.at(FakeVirtioDriver::DescGpa(0) + 16 * i);
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  };
  desc(14, kReq, 4, 1, 15);
  desc(15, kResp, 4, 1 | 2, 14);  // writable, then a readable again: refused either way
  const uint16_t head = 14;
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(0) + 4), &head, 2);
  const uint16_t idx = 1;
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(0) + 2), &idx, 2);
  Store32(kResp, kSentinel);
  driver_->Notify(0);
  EXPECT_EQ(pmem_->counters().bad_chains, 1u);
  EXPECT_EQ(Load32(kResp), kSentinel);
  uint16_t used_idx;
  std::memcpy(&used_idx, mem_.at(FakeVirtioDriver::UsedGpa(0) + 2), 2);
  EXPECT_EQ(used_idx, 1u);
  uint32_t elem[2];
  std::memcpy(elem, mem_.at(FakeVirtioDriver::UsedGpa(0) + 4), 8);
  EXPECT_EQ(elem[0], 14u);
  EXPECT_EQ(elem[1], 0u);

  // A pure loop of writable descriptors: longer than the queue.
  desc(12, kResp, 4, 1 | 2, 13);
  desc(13, kResp + 4, 4, 1 | 2, 12);
  const uint16_t head2 = 12;
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(0) + 6), &head2, 2);
  const uint16_t idx2 = 2;
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(0) + 2), &idx2, 2);
  driver_->Notify(0);
  EXPECT_EQ(pmem_->counters().bad_chains, 2u);
  EXPECT_EQ(Load32(kResp), kSentinel);
  EXPECT_FALSE(pmem_->needs_reset());
}

TEST_F(PmemTest, BrokenRingNeedsReset) {
  ASSERT_TRUE(Start());
  const uint16_t ahead = 100;  // 100 entries pending in a queue of 16
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(0) + 2), &ahead, 2);
  driver_->Notify(0);
  EXPECT_TRUE(pmem_->needs_reset());
  EXPECT_TRUE(driver_->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_TRUE(pmem_->TakeGuestWork());
  // Nothing more is taken until the driver resets the device.
  uint16_t used_idx;
  std::memcpy(&used_idx, mem_.at(FakeVirtioDriver::UsedGpa(0) + 2), 2);
  EXPECT_EQ(used_idx, 0u);
  driver_->Notify(0);
  EXPECT_EQ(pmem_->counters().bad_chains, 0u);
  ASSERT_TRUE(Start());  // a reset and a new init
  EXPECT_FALSE(pmem_->needs_reset());
  auto used = Request(0);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Load32(kResp), 0u);
}

TEST_F(PmemTest, NoRequestsBeforeDriverOk) {
  // Queue set up but DRIVER_OK not yet written: a notify is ignored.
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver_->SetupQueue(0, 16);
  Store32(kReq, 0);
  Store32(kResp, kSentinel);
  driver_->Post(0, {{kReq, 4, false}, {kResp, 4, true}});
  driver_->Notify(0);
  EXPECT_TRUE(driver_->TakeUsed(0).empty());
  EXPECT_EQ(Load32(kResp), kSentinel);
}

// --- the backing file ---

class PmemFileTest : public PmemTest {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-pmem-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    driver_.reset();
    pmem_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string MakeFile(const std::string& name, uint64_t size) {
    const std::string path = dir_ + "/" + name;
    kf::UniqueFd fd(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    return path;
  }
  std::string dir_;
};

// The permissions of the mapping that starts at `addr`, from /proc/self/maps
// ("r--s", "rw-s"), or "" when there is none.
std::string MapPerms(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  char want[32];
  std::snprintf(want, sizeof want, "%lx-", reinterpret_cast<unsigned long>(addr));
  std::string line;
  while (std::getline(maps, line)) {
    if (line.rfind(want, 0) != 0) continue;
    std::istringstream in(line);
    std::string range, perms;
    in >> range >> perms;
    return perms;
  }
  return "";
}

TEST_F(PmemFileTest, MapPmemImageRefusesBadFiles) {
  struct Case {
    std::string path;
    bool read_only;
    std::string needle;
  };
  std::vector<Case> cases;
  for (bool ro : {true, false}) {
    cases.push_back({dir_ + "/missing.img", ro, "No such file"});
    cases.push_back({MakeFile("empty.img", 0), ro, "empty"});
    cases.push_back({MakeFile("odd.img", (2ull << 20) + 4096), ro, "not a multiple of 2 MiB"});
    cases.push_back({MakeFile("small.img", 1ull << 20), ro, "not a multiple of 2 MiB"});
  }
  cases.push_back({dir_, true, "not a regular file"});
  cases.push_back({dir_, false, "Is a directory"});  // open(O_RDWR) refuses it first
  for (const Case& c : cases) {
    auto b = kf::MapPmemImage(c.path, c.read_only);
    ASSERT_FALSE(b.ok()) << c.path;
    EXPECT_NE(b.error().message().find(c.path), std::string::npos) << b.error().message();
    EXPECT_NE(b.error().message().find(c.needle), std::string::npos) << b.error().message();
  }
}

TEST_F(PmemFileTest, MapPmemImageReadOnly) {
  const std::string path = MakeFile("rootfs.ext4", 2ull << 20);
  {
    std::FILE* f = std::fopen(path.c_str(), "r+");
    ASSERT_NE(f, nullptr);
    std::fputs("ext4?", f);
    std::fclose(f);
  }
  auto b = kf::MapPmemImage(path, /*read_only=*/true);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_TRUE(b->fd.valid());
  EXPECT_TRUE(b->read_only);
  EXPECT_EQ(b->size, 2ull << 20);
  EXPECT_EQ(b->mapping.size(), 2ull << 20);
  ASSERT_NE(b->mapping.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->mapping.data()) % (2ull << 20), 0u);
  EXPECT_EQ(std::memcmp(b->mapping.data(), "ext4?", 5), 0);
  // Writes through it would fault: readable, not writable, shared.
  EXPECT_EQ(MapPerms(b->mapping.data()), "r--s");
  EXPECT_EQ(::fcntl(b->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST_F(PmemFileTest, WritableImageIsFlushedByTheDevice) {
  const std::string path = MakeFile("data.img", 4ull << 20);
  auto b = kf::MapPmemImage(path, /*read_only=*/false);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(MapPerms(b->mapping.data()), "rw-s");
  std::memcpy(b->mapping.data() + (3ull << 20), "guest", 5);  // a guest store, as it were

  MakeDevice({kRegionGpa, b->size, b->fd.get(), false});
  ASSERT_TRUE(Start());
  auto used = Request(kf::pmem::kReqTypeFlush);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), kf::pmem::kRespOk);
  EXPECT_EQ(pmem_->counters().flushes, 1u);
  // The store is in the file.
  std::ifstream in(path, std::ios::binary);
  in.seekg(3ll << 20);
  char got[5];
  in.read(got, 5);
  EXPECT_EQ(std::string(got, 5), "guest");
}

TEST_F(PmemFileTest, FailedFsyncIsAnsweredEio) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);  // fsync on a pipe: EINVAL
  kf::UniqueFd r(p[0]), w(p[1]);
  MakeDevice({kRegionGpa, kRegionSize, w.get(), false});
  ASSERT_TRUE(Start());
  auto used = Request(kf::pmem::kReqTypeFlush);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), kf::pmem::kRespEio);
  EXPECT_EQ(pmem_->counters().flush_errors, 1u);
  // A read-only region never syncs: OK even with that fd.
  MakeDevice({kRegionGpa, kRegionSize, w.get(), true});
  ASSERT_TRUE(Start());
  used = Request(kf::pmem::kReqTypeFlush);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Load32(kResp), kf::pmem::kRespOk);
}

// --- Create ---

TEST(PmemCreate, RefusesBadRegions) {
  GuardedMemory mem(1 << 20);
  struct Case {
    uint64_t mmio_base;
    PmemOptions options;
    const char* needle;
  };
  const uint64_t M2 = 2ull << 20;
  const Case cases[] = {
      {kBase, {kRegionGpa, 0, -1, true}, "empty"},
      {kBase, {kRegionGpa + 4096, M2, -1, true}, "2 MiB aligned"},
      {kBase, {kRegionGpa, M2 + 4096, -1, true}, "2 MiB aligned"},
      {kBase, {0, M2, -1, true}, "overlaps guest RAM"},
      {kBase, {~uint64_t{0} - M2 + 1, 2 * M2, -1, true}, "wraps"},
      {kBase, {kBase & ~(M2 - 1), M2, -1, true}, "overlaps its MMIO window"},
      {~uint64_t{0} - 0xfff + 1, {kRegionGpa, M2, -1, true}, "wraps"},
  };
  for (const Case& c : cases) {
    auto p = VirtioPmem::Create(mem.view(), c.mmio_base, c.options);
    ASSERT_FALSE(p.ok()) << c.needle;
    EXPECT_NE(p.error().message().find(c.needle), std::string::npos) << p.error().message();
  }
  EXPECT_TRUE(VirtioPmem::Create(mem.view(), kBase, {M2, M2, -1, true}).ok());  // right above RAM
}

// --- snapshot ---

TEST_F(PmemTest, SaveRestoreRoundTrip) {
  ASSERT_TRUE(Start());
  ASSERT_EQ(Request(0).size(), 1u);
  ASSERT_EQ(Request(0).size(), 1u);
  const auto saved = pmem_->Save();
  EXPECT_EQ(saved.gpa(), kRegionGpa);
  EXPECT_EQ(saved.size(), kRegionSize);
  EXPECT_TRUE(saved.read_only());
  EXPECT_EQ(saved.transport().status() & VIRTIO_CONFIG_S_DRIVER_OK,
            uint32_t{VIRTIO_CONFIG_S_DRIVER_OK});
  ASSERT_EQ(saved.transport().queues_size(), 1);
  EXPECT_EQ(saved.transport().queues(0).size(), 16u);
  EXPECT_EQ(saved.transport().queues(0).desc_gpa(), FakeVirtioDriver::DescGpa(0));
  EXPECT_EQ(saved.transport().queues(0).last_avail_idx(), 2u);
  EXPECT_EQ(saved.transport().queues(0).next_used_idx(), 2u);

  // A clone: a new device on the same memory.
  auto clone = VirtioPmem::Create(mem_.view(), kBase, {kRegionGpa, kRegionSize, -1, true});
  ASSERT_TRUE(clone.ok());
  ASSERT_TRUE((*clone)->Restore(saved).ok());
  EXPECT_EQ((*clone)->Save().SerializeAsString(), saved.SerializeAsString());
  EXPECT_FALSE((*clone)->needs_reset());

  // The restored ring carries on.
  pmem_ = std::move(*clone);
  driver_->set_mmio(pmem_->mmio());
  auto used = Request(0);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
  EXPECT_EQ(Load32(kResp), 0u);
  EXPECT_EQ(pmem_->Save().transport().queues(0).next_used_idx(), 3u);
}

TEST_F(PmemTest, RestoreAnswersRequestsQueuedBeforeTheSnapshot) {
  ASSERT_TRUE(Start());
  Store32(kReq, 0);
  Store32(kResp, kSentinel);
  driver_->Post(0, {{kReq, 4, false}, {kResp, 4, true}});  // posted, not yet notified
  const auto saved = pmem_->Save();
  auto clone = VirtioPmem::Create(mem_.view(), kBase, {kRegionGpa, kRegionSize, -1, true});
  ASSERT_TRUE(clone.ok());
  ASSERT_TRUE((*clone)->Restore(saved).ok());
  EXPECT_TRUE((*clone)->TakeGuestWork());
  auto used = driver_->TakeUsed(0);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Load32(kResp), 0u);
}

TEST_F(PmemTest, RestoreRefusesMismatchedOrBadState) {
  ASSERT_TRUE(Start());
  const auto good = pmem_->Save();
  auto clone_or = VirtioPmem::Create(mem_.view(), kBase, {kRegionGpa, kRegionSize, -1, true});
  ASSERT_TRUE(clone_or.ok());
  auto& clone = *clone_or;
  const std::string before = clone->Save().SerializeAsString();

  struct Case {
    const char* needle;
    std::function<void(katafactory::snapshot::v1::PmemDeviceState&)> mutate;
  };
  const Case cases[] = {
      {"differs", [](auto& s) { s.set_gpa(kRegionGpa + (2ull << 20)); }},
      {"differs", [](auto& s) { s.set_gpa(0); }},
      {"differs", [](auto& s) { s.set_size(kRegionSize * 2); }},
      {"differs", [](auto& s) { s.set_size(0); }},
      {"read-only", [](auto& s) { s.set_read_only(false); }},
      {"no transport", [](auto& s) { s.clear_transport(); }},
      {"the device has 1", [](auto& s) { s.mutable_transport()->add_queues(); }},
      {"does not offer", [](auto& s) { s.mutable_transport()->set_driver_features(s.transport().driver_features() | 1); }},
      {"outside guest memory", [](auto& s) { s.mutable_transport()->mutable_queues(0)->set_used_gpa(FakeVirtioDriver::kMemorySize - 8); }},
      {"power of two", [](auto& s) { s.mutable_transport()->mutable_queues(0)->set_size(256); }},
  };
  for (const Case& c : cases) {
    auto bad = good;
    c.mutate(bad);
    kf::Status s = clone->Restore(bad);
    ASSERT_FALSE(s.ok()) << c.needle;
    EXPECT_NE(s.error().message().find(c.needle), std::string::npos) << s.error().message();
    EXPECT_EQ(clone->Save().SerializeAsString(), before) << c.needle << ": state changed";
  }
  EXPECT_TRUE(clone->Restore(good).ok());

  // And the other way: a writable device refuses a read-only template's state.
  auto rw = VirtioPmem::Create(mem_.view(), kBase, {kRegionGpa, kRegionSize, -1, false});
  ASSERT_TRUE(rw.ok());
  kf::Status s = (*rw)->Restore(good);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("writable"), std::string::npos) << s.error().message();
}

}  // namespace
