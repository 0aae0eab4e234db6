// The bare guest ABI: layout facts both sides rely on, and the embedded image.
#include <gtest/gtest.h>

#include <cstddef>
#include <iterator>

#include "agent/bare/bare_abi.h"
#include "agent/bare/bare_image.h"

namespace {

TEST(BareAbi, LayoutDoesNotOverlap) {
  EXPECT_LE(KF_BARE_GDT_GPA + 8 * 8, KF_BARE_TSS_GPA);
  EXPECT_LE(KF_BARE_TSS_GPA + 0x68, KF_BARE_PML4_GPA);
  EXPECT_LE(KF_BARE_PML4_GPA + 4096, KF_BARE_PDPT_GPA);
  EXPECT_LE(KF_BARE_PDPT_GPA + 4096, KF_BARE_PD_GPA);
  EXPECT_LE(KF_BARE_PD_GPA + KF_BARE_PD_PAGES * 4096, KF_BARE_BOOT_GPA);
  EXPECT_LE(KF_BARE_BOOT_GPA + KF_BARE_BOOT_SIZE, KF_BARE_STACK_TOP - 64 * 1024);
  EXPECT_LE(KF_BARE_STACK_TOP, KF_BARE_IMAGE_GPA);
  EXPECT_LE(KF_BARE_IMAGE_GPA + KF_BARE_IMAGE_MAX, KF_BARE_DRIVER_GPA);
  EXPECT_LE(KF_BARE_DRIVER_GPA + KF_BARE_DRIVER_SIZE, KF_BARE_INIT_GPA);
  EXPECT_LT(KF_BARE_INIT_GPA, KF_BARE_MIN_MEM);
  EXPECT_LE(KF_BARE_MIN_MEM, KF_BARE_MAX_MEM);
}

TEST(BareAbi, BootInfoFitsItsPage) {
  EXPECT_LE(sizeof(kf_boot_info), KF_BARE_BOOT_SIZE);
  EXPECT_EQ(offsetof(kf_boot_info, magic), 0u);
  EXPECT_EQ(KF_BARE_BOOT_GPA % 4096, 0u);
  // Fields the guest writes are 8-byte aligned: single stores, no tearing.
  EXPECT_EQ(offsetof(kf_boot_info, init_hash) % 8, 0u);
  EXPECT_EQ(offsetof(kf_boot_info, panic_detail) % 8, 0u);
}

TEST(BareAbi, MmioWindowAboveMemoryAndMapped) {
  EXPECT_LE(KF_BARE_MAX_MEM, KF_BARE_VSOCK_MMIO_GPA);
  EXPECT_EQ(KF_BARE_MAX_MEM % (2ull << 20), 0u);
  EXPECT_EQ(KF_BARE_VSOCK_MMIO_GPA % 4096, 0u);
  // Inside one 2 MiB page, inside the 4 GiB the page directories cover.
  EXPECT_EQ(KF_BARE_VSOCK_MMIO_GPA >> 21,
            (KF_BARE_VSOCK_MMIO_GPA + KF_BARE_VSOCK_MMIO_SIZE - 1) >> 21);
  EXPECT_LE(KF_BARE_VSOCK_MMIO_GPA + KF_BARE_VSOCK_MMIO_SIZE, KF_BARE_PD_PAGES << 30);
  // Its page-directory entry lies in the page-table area, below the boot info.
  EXPECT_LT(KF_BARE_PD_GPA + (KF_BARE_VSOCK_MMIO_GPA >> 21) * 8, KF_BARE_BOOT_GPA);
  EXPECT_GT(KF_BARE_GUEST_CID, 2u);  // 0-2 are reserved CIDs
}

TEST(BareAbi, SignalsAndCodesAreDistinct) {
  EXPECT_NE(KF_SIGNAL_READY, KF_SIGNAL_PANIC);
  EXPECT_NE(KF_PORT_SIGNAL, KF_PORT_WAIT);
  const uint32_t codes[] = {KF_PANIC_NONE,
                            KF_PANIC_BAD_BOOT_INFO,
                            KF_PANIC_INIT_RANGE,
                            KF_PANIC_MMIO_GPA,
                            KF_PANIC_MMIO_MAGIC,
                            KF_PANIC_MMIO_VERSION,
                            KF_PANIC_DEVICE_ID,
                            KF_PANIC_RESET_TIMEOUT,
                            KF_PANIC_NO_VERSION_1,
                            KF_PANIC_FEATURES_REFUSED,
                            KF_PANIC_QUEUE_BUSY,
                            KF_PANIC_QUEUE_MISSING,
                            KF_PANIC_QUEUE_NOT_READY,
                            KF_PANIC_BAD_CID,
                            KF_PANIC_DEVICE_STATUS};
  for (size_t i = 0; i < std::size(codes); ++i)
    for (size_t j = i + 1; j < std::size(codes); ++j) EXPECT_NE(codes[i], codes[j]);
  EXPECT_EQ(KF_BOOT_FLAGS_KNOWN & KF_BOOT_FLAG_HOSTILE, KF_BOOT_FLAG_HOSTILE);
}

TEST(BareAbi, HashIsOrderSensitive) {
  uint64_t a[2] = {1, 2}, b[2] = {2, 1};
  EXPECT_NE(kf_hash_words(KF_HASH_SEED, a, 2), kf_hash_words(KF_HASH_SEED, b, 2));
  EXPECT_EQ(kf_hash_words(KF_HASH_SEED, a, 0), KF_HASH_SEED);
  EXPECT_NE(kf_init_pattern(0), kf_init_pattern(8));
}

TEST(BareImage, IsEmbeddedAndFits) {
  auto image = kf::EmbeddedBareImage();
  EXPECT_GT(image.size(), 64u);
  EXPECT_LT(image.size(), KF_BARE_IMAGE_MAX);
  // link.ld also asserts that .bss, not in the flat file, ends below the
  // driver region.
  EXPECT_LE(KF_BARE_IMAGE_GPA + image.size(), KF_BARE_DRIVER_GPA);
}

}  // namespace
