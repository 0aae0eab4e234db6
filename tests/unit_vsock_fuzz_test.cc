// Seeded, reproducible garbage for the vsock device: random descriptor
// tables, avail rings, packet headers and saved states, thrown at it with
// guest memory fenced by PROT_NONE guard pages and, while the device runs
// (in a sample of the runs), the driver's rings and readable buffers made
// read-only. A touch outside
// guest memory or a write to what the driver owns faults the test.
//
// KF_FUZZ_SEED=<n> reruns one seed; KF_FUZZ_ITERATIONS=<n> changes the count.
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/mman.h>

#include <cstring>
#include <random>

#include "tests/vsock_test_util.h"
#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/vsock/unix_muxer.h"

namespace {

using kf::testing::FakeVirtioDriver;
using kf::testing::FakeVsockDriver;

constexpr uint16_t kSize = 64;
constexpr uint64_t kReadArena = 0x100000;   // the device may only read here
constexpr uint64_t kWriteArena = 0x200000;  // the device may write here
constexpr uint64_t kArena = 0x10000;  // 64 KiB each: small enough to fence cheaply

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 0) : fallback;
}

class VsockFuzz : public kf::testing::VsockFixture {
 protected:
  uint16_t UsedIdx(int q) {
    uint16_t v;
    std::memcpy(&v, mem_.at(FakeVirtioDriver::UsedGpa(q) + 2), 2);
    return v;
  }
  uint16_t AvailIdx(int q) {
    uint16_t v;
    std::memcpy(&v, mem_.at(FakeVirtioDriver::AvailGpa(q) + 2), 2);
    return v;
  }
  void SetAvailIdx(int q, uint16_t v) { std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(q) + 2), &v, 2); }
  void Desc(int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t* d = mem_.at(FakeVirtioDriver::DescGpa(q) + 16 * uint64_t{i});
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }
  void AvailEntry(int q, uint16_t slot, uint16_t head) {
    std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(q) + 4 + 2 * uint64_t(slot % kSize)), &head, 2);
  }
  // The driver's side goes read-only while the device runs: queue q's
  // descriptor table and avail ring (-1: all queues) and the read arena.
  // mprotect costs ~100 us here, so callers fence a sample of the runs.
  void Fence(bool on, int q = -1) {
    const int prot = on ? PROT_READ : PROT_READ | PROT_WRITE;
    for (int k = 0; k < 3; ++k) {
      if (q < 0 || q == k) mem_.Protect(FakeVirtioDriver::DescGpa(k), 0x4000, prot);
    }
    mem_.Protect(kReadArena, kArena, prot);
  }
  void Restart() {
    std::string why;
    ASSERT_TRUE(driver_->Init(3, kSize, 0, &why)) << why;
  }

  // A random buffer address: mostly sane, sometimes at or past the edges.
  uint64_t Addr(std::mt19937_64& rng, bool writable) {
    const uint64_t arena = writable ? kWriteArena : kReadArena;
    switch (rng() % 8) {
      case 0: return rng();
      case 1: return FakeVirtioDriver::kMemorySize - (rng() % 128);
      // The rings themselves, to read as a buffer (a writable buffer there
      // would be the driver's own mistake, and fault under the fence).
      case 2: return writable ? kWriteArena : FakeVirtioDriver::DescGpa(rng() % 3);
      default: return arena + rng() % kArena;
    }
  }
  uint32_t Len(std::mt19937_64& rng) {
    switch (rng() % 8) {
      case 0: return static_cast<uint32_t>(rng());
      case 1: return 0;
      case 2: return 44;
      default: return static_cast<uint32_t>(rng() % 200);
    }
  }
  // A packet header that is right in most fields and wrong in a few.
  void WriteHeader(std::mt19937_64& rng, uint64_t gpa, uint32_t payload) {
    static const uint32_t kPorts[] = {1024, kf::vsock::kFirstHostPort, kf::vsock::kFirstHostPort + 1,
                                      5000};
    auto h = FakeVsockDriver::Hdr(static_cast<uint16_t>(rng() % 9), kPorts[rng() % 4],
                                  kPorts[rng() % 4], static_cast<uint32_t>(rng() % 300000),
                                  static_cast<uint32_t>(rng() % 3000));
    h.len = payload;
    if (rng() % 16 == 0) h.len = static_cast<uint32_t>(rng());
    if (rng() % 16 == 0) h.type = static_cast<uint16_t>(rng() % 4);
    if (rng() % 16 == 0) h.src_cid = rng() % 5;
    if (rng() % 16 == 0) h.dst_cid = rng() % 5;
    if (rng() % 4 == 0) h.flags = static_cast<uint32_t>(rng() % 4);
    uint8_t raw[44];
    kf::vsock::EncodeHeader(h, raw);
    std::memcpy(mem_.at(gpa), raw, 44);
  }
};

TEST_F(VsockFuzz, RandomRingsAndPackets) {
  const uint64_t seed = EnvOr("KF_FUZZ_SEED", 0x6b66'7673'6f63'6b01);
  const uint64_t iterations = EnvOr("KF_FUZZ_ITERATIONS", 20000);
  SCOPED_TRACE("KF_FUZZ_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  MakeDevice("");  // guest REQUESTs get RST without touching the filesystem
  Restart();
  for (size_t i = 0; i < kArena; i += 8) {
    const uint64_t r = rng();
    std::memcpy(mem_.at(kReadArena + i), &r, 8);
  }
  // A few host connections, so that guest packets can hit live ones.
  std::vector<kf::UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(NewClient());
    Write(clients.back().get(), "CONNECT 1024\ndata");
  }
  Pump();

  uint64_t resets = 0, used_total = 0;
  for (uint64_t it = 0; it < iterations; ++it) {
    SCOPED_TRACE("iteration " + std::to_string(it));
    const int q = static_cast<int>(rng() % 3);
    const bool want_writable = q != 1;
    // Descriptors: random ones, or one well-formed packet (tx) / buffer (rx).
    const int ndesc = 1 + static_cast<int>(rng() % 4);
    uint16_t head = static_cast<uint16_t>(rng() % kSize);
    if (rng() % 3 == 0) {
      const uint64_t buf = (want_writable ? kWriteArena : kReadArena) + (rng() % 100) * 512;
      const uint32_t payload = rng() % 4 == 0 ? static_cast<uint32_t>(rng() % 300) : 0;
      if (!want_writable) WriteHeader(rng, buf, payload);
      const uint16_t second = static_cast<uint16_t>((head + 1) % kSize);
      const uint16_t w = want_writable ? 2 : 0;
      Desc(q, head, buf, payload ? 44 : 44 + static_cast<uint32_t>(rng() % 4096) * want_writable,
           static_cast<uint16_t>(w | (payload ? 1 : 0)), second);
      if (payload) Desc(q, second, buf + 44, payload, w, 0);
    } else {
      for (int d = 0; d < ndesc; ++d) {
        const bool pick_writable = rng() % 4 ? want_writable : !want_writable;
        uint16_t flags = pick_writable ? 2 : 0;
        if (d + 1 < ndesc) flags |= 1;
        if (rng() % 32 == 0) flags |= 4;
        if (rng() % 32 == 0) flags = static_cast<uint16_t>(rng());
        const uint16_t idx = d == 0 ? head : static_cast<uint16_t>(rng() % kSize);
        const uint16_t next = rng() % 16 ? static_cast<uint16_t>(rng() % kSize)
                                         : static_cast<uint16_t>(rng());
        // The address follows the final WRITE flag: a writable buffer in the
        // read-only arena would be the driver's fault, not the device's.
        Desc(q, idx, Addr(rng, flags & 2), Len(rng), flags, next);
      }
    }
    // Avail ring: usually one or two entries, sometimes a wild index.
    const uint16_t avail = AvailIdx(q);
    const int entries = 1 + static_cast<int>(rng() % 2);
    for (int e = 0; e < entries; ++e) {
      AvailEntry(q, static_cast<uint16_t>(avail + e),
                 rng() % 64 ? head : static_cast<uint16_t>(rng()));
    }
    SetAvailIdx(q, rng() % 128 ? static_cast<uint16_t>(avail + entries)
                               : static_cast<uint16_t>(rng()));

    uint16_t before[3];
    for (int k = 0; k < 3; ++k) before[k] = UsedIdx(k);
    const bool was_broken = vsock_->needs_reset();
    const bool fenced = it % 2 == 0;
    if (fenced) Fence(true, q);
    if (rng() % 64 == 0) {
      // A random register write (but not a reset: that is the driver's job).
      const uint32_t reg = static_cast<uint32_t>(rng() % 0x40) * 4;
      if (reg != VIRTIO_MMIO_STATUS) driver_->Write32(reg, static_cast<uint32_t>(rng() % 4));
    }
    driver_->Notify(q);
    if (rng() % 8 == 0) Pump();
    if (fenced) Fence(false, q);

    bool moved = false;
    for (int k = 0; k < 3; ++k) {
      const uint16_t delta = static_cast<uint16_t>(UsedIdx(k) - before[k]);
      ASSERT_LE(delta, kSize) << "queue " << k;
      moved |= delta != 0;
      used_total += delta;
    }
    const bool broke = vsock_->needs_reset() && !was_broken;
    ASSERT_EQ(vsock_->TakeGuestWork(), moved || broke);
    if (vsock_->needs_reset()) {
      // A broken device touches nothing until the driver resets it.
      for (int k = 0; k < 3; ++k) before[k] = UsedIdx(k);
      for (int k = 0; k < 3; ++k) driver_->Notify(k);
      Pump();
      for (int k = 0; k < 3; ++k) ASSERT_EQ(UsedIdx(k), before[k]);
      ASSERT_FALSE(vsock_->TakeGuestWork());
      ++resets;
      Restart();
    }
  }
  // The run must have exercised both outcomes, or it tested little.
  EXPECT_GT(resets, 10u);
  EXPECT_GT(vsock_->counters().bad_chains, 100u);
  EXPECT_GT(vsock_->counters().tx_packets, 100u);
  EXPECT_GT(used_total, 1000u);
  RecordProperty("resets", std::to_string(resets));
}

TEST_F(VsockFuzz, RandomSavedStates) {
  const uint64_t seed = EnvOr("KF_FUZZ_SEED", 0x5eed'0002);
  SCOPED_TRACE("KF_FUZZ_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  ASSERT_TRUE(driver_->Start());
  const auto good = vsock_->Save();
  auto clone_or = kf::vsock::HybridVsock::Create(mem_.view(), kf::testing::kVsockBase, {});
  ASSERT_TRUE(clone_or.ok());
  auto& clone = *clone_or;
  int accepted = 0;
  for (int it = 0; it < 3000; ++it) {
    SCOPED_TRACE("iteration " + std::to_string(it));
    auto s = good;
    auto* t = s.mutable_transport();
    for (int m = 0; m < 1 + static_cast<int>(rng() % 3); ++m) {
      auto* q = t->mutable_queues(static_cast<int>(rng() % 3));
      switch (rng() % 9) {
        case 0: q->set_size(static_cast<uint32_t>(1u << (rng() % 10))); break;
        case 1: q->set_desc_gpa(FakeVirtioDriver::kMemorySize - (rng() % 0x2000)); break;
        case 2: q->set_used_gpa(rng() % 2 ? rng() : q->used_gpa() + 4); break;
        case 3: q->set_avail_gpa(q->avail_gpa() + rng() % 4); break;
        case 4: q->set_last_avail_idx(static_cast<uint32_t>(rng() % 70000)); break;
        case 5: q->set_next_used_idx(static_cast<uint32_t>(rng())); break;
        case 6: t->set_status(static_cast<uint32_t>(rng() % 256)); break;
        case 7: t->set_driver_features(rng() % 2 ? rng() : t->driver_features()); break;
        case 8: q->set_ready(!q->ready()); break;
      }
    }
    if (!clone->Restore(s).ok()) continue;
    ++accepted;
    // Whatever was accepted must be safe to run on.
    driver_->set_mmio(clone->mmio());
    const bool fenced = accepted % 4 == 0;
    if (fenced) Fence(true);
    for (int k = 0; k < 3; ++k) driver_->Notify(k);
    if (fenced) Fence(false);
    (void)clone->TakeGuestWork();
  }
  EXPECT_GT(accepted, 100);
}

}  // namespace
