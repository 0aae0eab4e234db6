// memshare: the copy-on-write backing of clones, on the real kernel (memfd,
// MAP_PRIVATE, smaps_rollup): no KVM needed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "memshare/accounting.h"
#include "memshare/guest_backing.h"

namespace kf {
namespace {

TEST(GuestBacking, PrivateMappingNeverWritesTheTemplate) {
  const uint64_t size = 4 << 20;
  auto fd = CreateMemfd("test", size);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  {
    auto shared = MapShared(fd->get(), size);
    ASSERT_TRUE(shared.ok());
    std::memset(shared->data(), 0xab, size);
  }
  ASSERT_TRUE(SealMemfd(fd->get()).ok());
  EXPECT_FALSE(MapShared(fd->get(), size).ok()) << "a sealed memfd refuses writable shared maps";
  auto a = MapPrivate(fd->get(), size);
  auto b = MapPrivate(fd->get(), size);
  ASSERT_TRUE(a.ok() && b.ok());
  a->data()[4096] = 0x11;
  EXPECT_EQ(b->data()[4096], 0xab);
  auto c = MapPrivate(fd->get(), size);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->data()[4096], 0xab) << "the template memory itself is untouched";
}

TEST(GuestBacking, MergeableIsAccepted) {
  auto fd = CreateMemfd("test", 1 << 20);
  ASSERT_TRUE(fd.ok());
  PrivateMapOptions o;
  o.mergeable = true;
  auto m = MapPrivate(fd->get(), 1 << 20, o);
  EXPECT_TRUE(m.ok()) << m.error().message();
}

TEST(Accounting, ParsesSmapsRollup) {
  const char* text =
      "55d0c0000000-7ffd00000000 ---p 00000000 00:00 0    [rollup]\n"
      "Rss:                2048 kB\nPss:                 512 kB\n"
      "Shared_Clean:       1536 kB\nPrivate_Dirty:       256 kB\nAnonymous:           256 kB\n";
  auto m = ParseSmapsRollup(text);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rss, 2048u * 1024);
  EXPECT_EQ(m->pss, 512u * 1024);
  EXPECT_EQ(m->shared_clean, 1536u * 1024);
  EXPECT_EQ(m->private_dirty, 256u * 1024);
  EXPECT_FALSE(ParseSmapsRollup("garbage\n").ok());
}

TEST(Accounting, ChildDirtyingPagesShowsAsPrivateDirty) {
  const uint64_t size = 8 << 20;
  auto fd = CreateMemfd("test", size);
  ASSERT_TRUE(fd.ok());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto m = MapPrivate(fd->get(), size);
    for (uint64_t off = 0; off < size / 2; off += 4096) m->data()[off] = 1;  // 4 MiB dirty
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto mem = ReadProcessMemory(pid);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(mem.ok()) << mem.error().message();
  EXPECT_GE(mem->private_dirty, size / 2);
  EXPECT_LT(mem->private_dirty, size / 2 + (4 << 20)) << "only the written half is copied";
}

TEST(Accounting, MemAvailableAndKvmEstimate) {
  auto avail = ReadMemAvailable();
  ASSERT_TRUE(avail.ok());
  EXPECT_GT(*avail, 0u);
  // Within 30% of ENVIRONMENT.md's measurements (390 KiB / 800 KiB / 2.8 MiB).
  EXPECT_NEAR(EstimateKvmVmBytes(64ull << 20, 1) / 1024.0, 390, 120);
  EXPECT_NEAR(EstimateKvmVmBytes(256ull << 20, 1) / 1024.0, 800, 240);
  EXPECT_NEAR(EstimateKvmVmBytes(1ull << 30, 1) / 1048576.0, 2.8, 0.9);
}

}  // namespace
}  // namespace kf
