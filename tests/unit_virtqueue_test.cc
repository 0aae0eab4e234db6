// The split virtqueue and the virtio-mmio transport, driven by hand: one
// case per validation rule (virtqueue.h), then the register-level init
// handshake and the status machine (mmio_transport.h).
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/mman.h>

#include <cstring>

#include "tests/fake_virtio_driver.h"
#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/virtio/virtqueue.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

namespace {

using kf::testing::FakeVirtioDriver;
using kf::testing::GuardedMemory;
using kf::virtio::ChainDirection;
using kf::virtio::DescChain;
using kf::virtio::PopStatus;
using kf::virtio::QueueConfig;
using kf::virtio::Virtqueue;

constexpr uint16_t F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4;
constexpr uint64_t kMem = 1 << 20;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBuf = 0x10000;

// A queue of 8 over 1 MiB of guarded memory, with raw ring writers.
class VirtqueueTest : public ::testing::Test {
 protected:
  VirtqueueTest() : mem_(kMem), q_(256) {
    q_.config() = QueueConfig{8, true, kDesc, kAvail, kUsed};
  }
  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    uint8_t* d = mem_.at(kDesc + 16 * i);
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }
  void Avail(uint16_t head) {
    std::memcpy(mem_.at(kAvail + 4 + 2 * (avail_idx_ % 8)), &head, 2);
    ++avail_idx_;
    SetAvailIdx(avail_idx_);
  }
  void SetAvailIdx(uint16_t idx) { std::memcpy(mem_.at(kAvail + 2), &idx, 2); }
  PopStatus Pop(ChainDirection dir = ChainDirection::kAny) {
    return q_.Pop(mem_.view(), dir, &chain_, &why_);
  }
  // Expects a bad chain whose reason mentions `needle`, and that the head
  // was consumed (the driver gets it back with len 0).
  void ExpectBad(const std::string& needle, ChainDirection dir = ChainDirection::kAny) {
    const uint16_t before = q_.last_avail_idx();
    EXPECT_EQ(Pop(dir), PopStatus::kBadChain);
    EXPECT_NE(why_.find(needle), std::string::npos) << why_;
    EXPECT_EQ(q_.last_avail_idx(), uint16_t(before + 1));
  }

  GuardedMemory mem_;
  Virtqueue q_;
  DescChain chain_;
  std::string why_;
  uint16_t avail_idx_ = 0;
};

TEST_F(VirtqueueTest, ValidateConfig) {
  auto check = [&](QueueConfig c) { return Virtqueue::ValidateConfig(c, 256, mem_.view(), "q"); };
  EXPECT_TRUE(check({8, true, kDesc, kAvail, kUsed}).ok());
  EXPECT_TRUE(check({256, true, kDesc, kAvail + 0x1000, kUsed + 0x2000}).ok());
  for (uint16_t bad_size : {0, 3, 6, 100, 512}) {
    auto s = check({bad_size, true, kDesc, kAvail, kUsed});
    ASSERT_FALSE(s.ok()) << bad_size;
    EXPECT_NE(s.error().message().find("power of two"), std::string::npos);
  }
  EXPECT_NE(check({8, true, kDesc + 8, kAvail, kUsed}).error().message().find("16-byte aligned"),
            std::string::npos);
  EXPECT_NE(check({8, true, kDesc, kAvail + 1, kUsed}).error().message().find("2-byte aligned"),
            std::string::npos);
  EXPECT_NE(check({8, true, kDesc, kAvail, kUsed + 2}).error().message().find("4-byte aligned"),
            std::string::npos);
  // Outside guest memory, at the edge, and wrapping around 2^64.
  EXPECT_NE(check({8, true, kMem, kAvail, kUsed}).error().message().find("outside guest memory"),
            std::string::npos);
  EXPECT_FALSE(check({8, true, kDesc, kAvail, kMem - 16}).ok());  // used ring needs 6 + 64
  EXPECT_TRUE(check({8, true, kDesc, kAvail, kMem - 72}).ok());
  EXPECT_FALSE(check({8, true, ~uint64_t{0} - 15, kAvail, kUsed}).ok());
}

TEST_F(VirtqueueTest, EmptyThenSimpleChain) {
  EXPECT_EQ(Pop(), PopStatus::kEmpty);
  Desc(0, kBuf, 44, F_NEXT, 1);
  Desc(1, kBuf + 44, 10, 0);
  Avail(0);
  ASSERT_EQ(Pop(ChainDirection::kDeviceReadable), PopStatus::kChain) << why_;
  EXPECT_EQ(chain_.head, 0);
  EXPECT_EQ(chain_.segments.size(), 2u);
  EXPECT_EQ(chain_.readable_len, 54u);
  EXPECT_EQ(chain_.writable_len, 0u);
  EXPECT_EQ(Pop(), PopStatus::kEmpty);
}

TEST_F(VirtqueueTest, ReadableThenWritableIsFineForAny) {
  Desc(2, kBuf, 8, F_NEXT, 5);
  Desc(5, kBuf + 8, 16, F_WRITE | F_NEXT, 7);
  Desc(7, kBuf + 24, 0, F_WRITE);  // zero length is allowed
  Avail(2);
  ASSERT_EQ(Pop(), PopStatus::kChain) << why_;
  EXPECT_EQ(chain_.readable_len, 8u);
  EXPECT_EQ(chain_.writable_len, 16u);
}

TEST_F(VirtqueueTest, AvailIdxTooFarAheadBreaksTheRing) {
  Desc(0, kBuf, 8, 0);
  Avail(0);
  SetAvailIdx(9);  // 9 entries pending in a queue of 8
  EXPECT_EQ(Pop(), PopStatus::kBroken);
  EXPECT_NE(why_.find("ahead"), std::string::npos) << why_;
  SetAvailIdx(0xffff);  // "behind" is ahead by 65535 in wrapping arithmetic
  EXPECT_EQ(Pop(), PopStatus::kBroken);
  SetAvailIdx(8);  // exactly the queue size is fine
  EXPECT_NE(Pop(), PopStatus::kBroken);
}

TEST_F(VirtqueueTest, HeadOutOfRangeBreaksTheRing) {
  Avail(8);
  EXPECT_EQ(Pop(), PopStatus::kBroken);
  EXPECT_NE(why_.find("head index 8"), std::string::npos) << why_;
}

TEST_F(VirtqueueTest, LoopsAndLongChains) {
  Desc(0, kBuf, 8, F_NEXT, 0);  // itself
  Avail(0);
  ExpectBad("longer than the queue");
  Desc(1, kBuf, 8, F_NEXT, 2);
  Desc(2, kBuf, 8, F_NEXT, 1);  // 1 -> 2 -> 1
  Avail(1);
  ExpectBad("longer than the queue");
  for (uint16_t i = 0; i < 8; ++i) Desc(i, kBuf, 8, F_NEXT, (i + 1) % 8);  // a full cycle
  Avail(3);
  ExpectBad("longer than the queue");
  // Exactly queue-size descriptors is a legal chain.
  for (uint16_t i = 0; i < 7; ++i) Desc(i, kBuf, 8, F_NEXT, i + 1);
  Desc(7, kBuf, 8, 0);
  Avail(0);
  ASSERT_EQ(Pop(), PopStatus::kChain) << why_;
  EXPECT_EQ(chain_.segments.size(), 8u);
}

TEST_F(VirtqueueTest, NextOutOfRange) {
  Desc(0, kBuf, 8, F_NEXT, 8);
  Avail(0);
  ExpectBad("links to 8");
}

TEST_F(VirtqueueTest, IndirectIsRefused) {
  Desc(0, kBuf, 32, F_INDIRECT);
  Avail(0);
  ExpectBad("indirect");
}

TEST_F(VirtqueueTest, BuffersOutsideMemory) {
  Desc(0, kMem - 4, 8, 0);  // crosses the end
  Avail(0);
  ExpectBad("outside guest memory");
  Desc(0, ~uint64_t{0} - 3, 8, 0);  // addr + len overflows
  Avail(0);
  ExpectBad("outside guest memory");
  Desc(0, kMem, 0, 0);  // empty at the very end is inside
  Avail(0);
  EXPECT_EQ(Pop(), PopStatus::kChain) << why_;
  Desc(0, kMem + 1, 0, 0);
  Avail(0);
  ExpectBad("outside guest memory");
}

TEST_F(VirtqueueTest, Directions) {
  Desc(0, kBuf, 8, F_WRITE | F_NEXT, 1);
  Desc(1, kBuf, 8, 0);
  Avail(0);
  ExpectBad("after a writable one");
  Desc(0, kBuf, 0, F_WRITE | F_NEXT, 1);  // even an empty writable one
  Avail(0);
  ExpectBad("after a writable one");
  Desc(0, kBuf, 8, F_WRITE);
  Avail(0);
  ExpectBad("where a readable one is required", ChainDirection::kDeviceReadable);
  Desc(0, kBuf, 8, 0);
  Avail(0);
  ExpectBad("where a writable one is required", ChainDirection::kDeviceWritable);
}

TEST_F(VirtqueueTest, PushUsedAndUndo) {
  Desc(3, kBuf, 100, F_WRITE);
  Avail(3);
  ASSERT_EQ(Pop(), PopStatus::kChain);
  q_.UndoPop();
  ASSERT_EQ(Pop(), PopStatus::kChain);
  EXPECT_EQ(chain_.head, 3);
  q_.PushUsed(mem_.view(), 3, 77);
  EXPECT_TRUE(q_.TakeUsedFlag());
  EXPECT_FALSE(q_.TakeUsedFlag());
  uint16_t idx;
  uint32_t id, len;
  std::memcpy(&idx, mem_.at(kUsed + 2), 2);
  std::memcpy(&id, mem_.at(kUsed + 4), 4);
  std::memcpy(&len, mem_.at(kUsed + 8), 4);
  EXPECT_EQ(idx, 1);
  EXPECT_EQ(id, 3u);
  EXPECT_EQ(len, 77u);
}

TEST_F(VirtqueueTest, GatherAndScatterAcrossSegments) {
  const char text[] = "0123456789abcdef";
  std::memcpy(mem_.at(kBuf), text, 5);
  std::memcpy(mem_.at(kBuf + 0x100), text + 5, 11);
  Desc(0, kBuf, 5, F_NEXT, 1);
  Desc(1, kBuf + 0x100, 11, F_NEXT, 2);
  Desc(2, kBuf + 0x200, 3, F_WRITE | F_NEXT, 3);
  Desc(3, kBuf + 0x300, 20, F_WRITE);
  Avail(0);
  ASSERT_EQ(Pop(), PopStatus::kChain);
  uint8_t out[16];
  EXPECT_EQ(chain_.CopyFrom(mem_.view(), 0, out), 16u);
  EXPECT_EQ(std::memcmp(out, text, 16), 0);
  EXPECT_EQ(chain_.CopyFrom(mem_.view(), 3, std::span<uint8_t>(out, 4)), 4u);
  EXPECT_EQ(std::memcmp(out, "3456", 4), 0);
  EXPECT_EQ(chain_.CopyFrom(mem_.view(), 14, out), 2u);  // only 2 readable bytes left
  const uint8_t data[6] = {'A', 'B', 'C', 'D', 'E', 'F'};
  EXPECT_EQ(chain_.CopyTo(mem_.view(), 1, data), 6u);
  EXPECT_EQ(std::memcmp(mem_.at(kBuf + 0x201), "AB", 2), 0);
  EXPECT_EQ(std::memcmp(mem_.at(kBuf + 0x300), "CDEF", 4), 0);
  std::vector<iovec> iov;
  chain_.Iovecs(mem_.view(), true, 2, 100, iov);
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(iov[0].iov_len, 1u);
  EXPECT_EQ(iov[1].iov_len, 20u);
  chain_.Iovecs(mem_.view(), false, 4, 3, iov);
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(iov[0].iov_len, 1u);
  EXPECT_EQ(iov[1].iov_len, 2u);
}

// --- the transport, through the register window ---

constexpr uint64_t kBase = 0xd0000000;

class MmioTest : public ::testing::Test {
 protected:
  MmioTest() : mem_(FakeVirtioDriver::kMemorySize) {
    auto v = kf::vsock::HybridVsock::Create(mem_.view(), kBase, {});
    if (!v.ok()) ADD_FAILURE() << v.error().message();
    vsock_ = std::move(*v);
    driver_ = std::make_unique<FakeVirtioDriver>(vsock_->mmio(), kBase, &mem_);
  }
  uint64_t bad_accesses() { return vsock_->transport().bad_accesses(); }

  GuardedMemory mem_;
  std::unique_ptr<kf::vsock::HybridVsock> vsock_;
  std::unique_ptr<FakeVirtioDriver> driver_;
};

TEST_F(MmioTest, IdentityRegisters) {
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_VERSION), 2u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_ID), 19u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_VENDOR_ID), 0x4b46u);
  driver_->Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_FEATURES), 0u);
  driver_->Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_FEATURES), 1u);  // VERSION_1 (bit 32)
  driver_->Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_DEVICE_FEATURES), 0u);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 2);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 256u);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 3);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0u);  // no such queue
  // guest_cid, le64, byte by byte and at odd offsets.
  EXPECT_EQ(driver_->ReadConfig8(0), 3);
  for (int i = 1; i < 12; ++i) EXPECT_EQ(driver_->ReadConfig8(i), 0) << i;
  uint8_t four[4];
  vsock_->mmio()->Read(kBase + 0x100, four);
  EXPECT_EQ(four[0], 3);
}

TEST_F(MmioTest, OnlyAlignedWordAccessesReachRegisters) {
  uint8_t b2[2] = {0xaa, 0xaa};
  vsock_->mmio()->Read(kBase + VIRTIO_MMIO_MAGIC_VALUE, b2);
  EXPECT_EQ(b2[0], 0);
  uint8_t b4[4] = {1, 1, 1, 1};
  vsock_->mmio()->Read(kBase + 2, b4);
  EXPECT_EQ(b4[0], 0);
  const uint8_t ack[4] = {VIRTIO_CONFIG_S_ACKNOWLEDGE, 0, 0, 0};
  vsock_->mmio()->Write(kBase + VIRTIO_MMIO_STATUS + 1, std::span<const uint8_t>(ack, 4));
  vsock_->mmio()->Write(kBase + VIRTIO_MMIO_STATUS, std::span<const uint8_t>(ack, 1));
  EXPECT_EQ(driver_->status(), 0u);
  vsock_->mmio()->Write(kBase + 0x100, std::span<const uint8_t>(ack, 4));  // config is read-only
  EXPECT_EQ(driver_->ReadConfig8(0), 3);
  EXPECT_EQ(bad_accesses(), 5u);
}

TEST_F(MmioTest, InitHandshake) {
  std::string why;
  ASSERT_TRUE(driver_->Init(3, 64, 0, &why)) << why;
  EXPECT_EQ(driver_->status(), uint32_t{VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                        VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK});
  EXPECT_EQ(vsock_->transport().driver_features(), uint64_t{1} << VIRTIO_F_VERSION_1);
  EXPECT_FALSE(vsock_->needs_reset());
  // Queue registers are frozen after DRIVER_OK.
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  driver_->Write32(VIRTIO_MMIO_QUEUE_NUM, 8);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM), 64u);
  driver_->Write32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_DESC_LOW), FakeVirtioDriver::DescGpa(0));
  // Clearing a bit without a reset is ignored; 0 resets everything.
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  EXPECT_TRUE(driver_->status() & VIRTIO_CONFIG_S_DRIVER_OK);
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  EXPECT_EQ(driver_->status(), 0u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_READY), 0u);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_QUEUE_NUM), 256u);
  ASSERT_TRUE(driver_->Init(3, 256, 0, &why)) << why;
}

TEST_F(MmioTest, FeaturesOkRefusedForUnofferedFeatures) {
  std::string why;
  EXPECT_FALSE(driver_->Init(3, 64, uint64_t{1} << 28, &why));  // INDIRECT_DESC
  EXPECT_EQ(why, "FEATURES_OK refused");
  EXPECT_FALSE(driver_->Init(3, 64, uint64_t{1} << 29, &why));  // EVENT_IDX
  // Without VERSION_1 (a legacy driver) FEATURES_OK is refused too.
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                           VIRTIO_CONFIG_S_FEATURES_OK);
  EXPECT_FALSE(driver_->status() & VIRTIO_CONFIG_S_FEATURES_OK);
  // Features above bit 63.
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                           VIRTIO_CONFIG_S_FEATURES_OK);
  EXPECT_FALSE(driver_->status() & VIRTIO_CONFIG_S_FEATURES_OK);
}

TEST_F(MmioTest, StepsOutOfOrderAreDropped) {
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER);  // no ACKNOWLEDGE
  EXPECT_EQ(driver_->status(), 0u);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                           VIRTIO_CONFIG_S_DRIVER_OK);  // no FEATURES_OK
  EXPECT_EQ(driver_->status(),
            uint32_t{VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER});
}

TEST_F(MmioTest, DriverOkWithBadRingsNeedsReset) {
  std::string why;
  ASSERT_TRUE(driver_->Init(3, 64, 0, &why));
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  const uint32_t fok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                       VIRTIO_CONFIG_S_FEATURES_OK;
  driver_->Write32(VIRTIO_MMIO_STATUS, fok);
  for (int q = 0; q < 3; ++q) driver_->SetupQueue(q, 64);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 1);
  driver_->Write32(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);  // 4 GiB up: outside the 128 MiB
  ASSERT_FALSE(vsock_->TakeGuestWork());
  driver_->Write32(VIRTIO_MMIO_STATUS, fok | VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_TRUE(vsock_->needs_reset());
  EXPECT_TRUE(driver_->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_INTERRUPT_STATUS), uint32_t{VIRTIO_MMIO_INT_CONFIG});
  EXPECT_TRUE(vsock_->TakeGuestWork());
  driver_->Write32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
  EXPECT_EQ(driver_->Read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0u);
  // A queue size that is not a power of two is caught the same way.
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  EXPECT_FALSE(vsock_->needs_reset());
  ASSERT_TRUE(driver_->Init(3, 64, 0, &why));
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);
  driver_->Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  driver_->Write32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  driver_->Write32(VIRTIO_MMIO_STATUS, fok);
  for (int q = 0; q < 3; ++q) driver_->SetupQueue(q, 64);
  driver_->Write32(VIRTIO_MMIO_QUEUE_SEL, 2);
  driver_->Write32(VIRTIO_MMIO_QUEUE_NUM, 48);
  driver_->Write32(VIRTIO_MMIO_STATUS, fok | VIRTIO_CONFIG_S_DRIVER_OK);
  EXPECT_TRUE(vsock_->needs_reset());
}

TEST_F(MmioTest, NotifyBeforeDriverOkIsIgnored) {
  driver_->Write32(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
  EXPECT_FALSE(vsock_->TakeGuestWork());
  EXPECT_FALSE(vsock_->needs_reset());
}

}  // namespace
