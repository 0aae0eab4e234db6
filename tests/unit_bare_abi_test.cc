// The bare guest ABI: layout facts both sides rely on, and the embedded image.
#include <gtest/gtest.h>

#include <cstddef>

#include "agent/bare/bare_abi.h"
#include "agent/bare/bare_image.h"

namespace {

TEST(BareAbi, LayoutDoesNotOverlap) {
  EXPECT_LE(KF_BARE_TSS_GPA + 0x68, KF_BARE_PML4_GPA);
  EXPECT_LE(KF_BARE_PD_GPA + 4 * 4096, KF_BARE_MAILBOX_GPA);
  EXPECT_LE(KF_BARE_MAILBOX_GPA + KF_BARE_MAILBOX_SIZE, KF_BARE_STACK_TOP - 64 * 1024);
  EXPECT_LE(KF_BARE_STACK_TOP, KF_BARE_IMAGE_GPA);
  EXPECT_LE(KF_BARE_IMAGE_GPA + KF_BARE_IMAGE_MAX, KF_BARE_INIT_GPA);
  EXPECT_LE(sizeof(kf_mailbox), KF_BARE_MAILBOX_SIZE);
  EXPECT_EQ(offsetof(kf_mailbox, boot), 0u);
  EXPECT_LE(sizeof(kf_identity), KF_MAILBOX_DATA_MAX);
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
}

}  // namespace
