// libFuzzer target: the device side of a split virtqueue
// (vmm-glue/virtio/virtqueue.h) against a hostile driver's rings.
//
// Feeds: a queue configuration and the first bytes of 64 KiB of guest
// memory (descriptor table, rings and buffers wherever the input put them),
// fenced by PROT_NONE pages (tests/fake_virtio_driver.h). Input layout:
//   0   u8   queue size: 1 << (b % 9)
//   1   u8   the direction the device asks for: b % 3 (ChainDirection)
//   2   u8   chains to pop at most: b + 1
//   3   u8   offset into each chain for the copies
//   4   u16  last_avail_idx, u16 next_used_idx
//   8   u16  descriptor table, u16 avail ring, u16 used ring (guest addresses)
//  14   ...  guest memory from address 0
// A configuration that ValidateConfig refuses stops there (as DRIVER_OK
// would). Otherwise chains are popped until the ring is empty or broken,
// read and written through CopyFrom/CopyTo/Iovecs, and returned.
// Checks: no access outside guest memory (guard pages, ASan), and every
// chain keeps Pop's promises: segments inside guest memory, in the asked
// direction, readable before writable, lengths adding up; the copies and
// iovecs cover exactly the bytes they should; PushUsed publishes the entry.
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tests/fake_virtio_driver.h"
#include "tests/fuzz/fuzz_util.h"
#include "vmm-glue/virtio/virtqueue.h"

namespace {

using kf::virtio::ChainDirection;
using kf::virtio::DescChain;
using kf::virtio::PopStatus;
using kf::virtio::Virtqueue;

constexpr uint64_t kMemory = 64 * 1024;
constexpr uint16_t kMaxSize = 256;
constexpr size_t kHeader = 14;

// The chain's readable (or writable) bytes, gathered here segment by
// segment: what CopyFrom and Iovecs must agree with.
std::vector<uint8_t> Gather(kf::GuestMemoryView mem, const DescChain& c, bool writable) {
  std::vector<uint8_t> out;
  for (const auto& s : c.segments) {
    if (s.writable != writable) continue;
    const uint8_t* p = mem.At(s.gpa, s.len);
    out.insert(out.end(), p, p + s.len);
  }
  return out;
}

void CheckChain(kf::GuestMemoryView mem, const DescChain& c, ChainDirection dir, uint16_t size,
                uint64_t offset) {
  KF_FUZZ_CHECK(c.head < size, "head %u, queue size %u", c.head, size);
  KF_FUZZ_CHECK(!c.segments.empty() && c.segments.size() <= size, "%zu segments, queue size %u",
                c.segments.size(), size);
  uint64_t readable = 0, writable = 0;
  bool seen_writable = false;
  for (const auto& s : c.segments) {
    KF_FUZZ_CHECK(mem.Contains(s.gpa, s.len), "segment [0x%llx, +%u) outside guest memory",
                  static_cast<unsigned long long>(s.gpa), s.len);
    KF_FUZZ_CHECK(!(s.writable && dir == ChainDirection::kDeviceReadable), "a writable segment");
    KF_FUZZ_CHECK(s.writable || dir != ChainDirection::kDeviceWritable, "a readable segment");
    KF_FUZZ_CHECK(s.writable || !seen_writable, "a readable segment after a writable one");
    seen_writable |= s.writable;
    (s.writable ? writable : readable) += s.len;
  }
  KF_FUZZ_CHECK(readable == c.readable_len && writable == c.writable_len,
                "lengths %llu/%llu, the segments add up to %llu/%llu",
                static_cast<unsigned long long>(c.readable_len),
                static_cast<unsigned long long>(c.writable_len),
                static_cast<unsigned long long>(readable),
                static_cast<unsigned long long>(writable));

  // Reads first: CopyTo may write over readable buffers (the driver's
  // business) and change what they hold.
  const std::vector<uint8_t> in = Gather(mem, c, false);
  const size_t want = offset < in.size() ? in.size() - offset : 0;
  std::vector<uint8_t> got(std::min<size_t>(want + 7, 2 * kMemory));
  const size_t n = c.CopyFrom(mem, offset, got);
  KF_FUZZ_CHECK(n == std::min(want, got.size()), "CopyFrom gave %zu of %zu bytes", n, want);
  KF_FUZZ_CHECK(n == 0 || std::equal(got.begin(), got.begin() + n, in.begin() + offset),
                "CopyFrom gave other bytes than the chain holds");

  for (const bool w : {false, true}) {
    const uint64_t total = w ? c.writable_len : c.readable_len;
    const uint64_t limit = offset * 3 + 1;  // sometimes short of the end, sometimes past it
    std::vector<iovec> iov;
    c.Iovecs(mem, w, offset, limit, iov);
    uint64_t covered = 0;
    for (const iovec& v : iov) {
      const auto* p = static_cast<const uint8_t*>(v.iov_base);
      KF_FUZZ_CHECK(p >= mem.base() && v.iov_len <= kMemory &&
                        static_cast<uint64_t>(p - mem.base()) <= kMemory - v.iov_len,
                    "an iovec outside guest memory");
      covered += v.iov_len;
    }
    const uint64_t expect = offset < total ? std::min(total - offset, limit) : 0;
    KF_FUZZ_CHECK(covered == expect, "iovecs cover %llu bytes, expected %llu",
                  static_cast<unsigned long long>(covered),
                  static_cast<unsigned long long>(expect));
  }

  const std::vector<uint8_t> pattern(std::min<uint64_t>(c.writable_len + 5, 2 * kMemory), 0xa5);
  const size_t wrote = c.CopyTo(mem, offset, pattern);
  const uint64_t room = offset < c.writable_len ? c.writable_len - offset : 0;
  KF_FUZZ_CHECK(wrote == std::min<uint64_t>(room, pattern.size()), "CopyTo wrote %zu of %llu bytes",
                wrote, static_cast<unsigned long long>(room));
}

kf::fuzz::Seeds MakeSeeds() {
  // Queue of 4 at desc 0x100, avail 0x200, used 0x300; two chains: a
  // readable 2-descriptor one and a writable one, both posted.
  auto seed = [](uint8_t dir, bool bad) {
    std::string s;
    kf::fuzz::Put<uint8_t>(s, 2);  // size 4
    kf::fuzz::Put<uint8_t>(s, dir);
    kf::fuzz::Put<uint8_t>(s, 3);
    kf::fuzz::Put<uint8_t>(s, 10);
    kf::fuzz::Put<uint16_t>(s, 0);
    kf::fuzz::Put<uint16_t>(s, 0);
    for (uint16_t gpa : {0x100, 0x200, 0x300}) kf::fuzz::Put<uint16_t>(s, gpa);
    std::string mem(0x200 + 4 + 2 * 4, '\0');
    auto desc = [&](int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
      std::string d;
      kf::fuzz::Put(d, addr);
      kf::fuzz::Put(d, len);
      kf::fuzz::Put(d, flags);
      kf::fuzz::Put(d, next);
      mem.replace(0x100 + 16 * i, 16, d);
    };
    desc(0, 0x400, 44, 1, 1);               // readable, NEXT -> 1
    desc(1, 0x500, 100, bad ? 1 : 0, 0);    // bad: NEXT back to 0, a loop
    desc(2, 0x1000, 4096, 2, 0);            // writable
    const uint16_t avail[] = {0, 2, 0, 2};  // flags, idx 2, ring: 0, 2
    std::memcpy(mem.data() + 0x200, avail, sizeof avail);
    return s + mem;
  };
  return {{"readable-chain", seed(0, false)},
          {"any-direction", seed(2, false)},
          {"writable", seed(1, false)},
          {"loop", seed(0, true)}};
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kf::testing::GuardedMemory memory(kMemory);
  const kf::GuestMemoryView mem = memory.view();
  if (size < kHeader) return 0;
  kf::fuzz::Reader in(data, size);
  const uint16_t qsize = static_cast<uint16_t>(1u << (in.Take<uint8_t>() % 9));
  const auto dir = static_cast<ChainDirection>(in.Take<uint8_t>() % 3);
  const int pops = in.Take<uint8_t>() + 1;
  const uint64_t offset = in.Take<uint8_t>();
  const uint16_t last_avail = in.Take<uint16_t>();
  const uint16_t next_used = in.Take<uint16_t>();
  Virtqueue q(kMaxSize);
  q.config() = {qsize, true, in.Take<uint16_t>(), in.Take<uint16_t>(), in.Take<uint16_t>()};
  q.set_indices(last_avail, next_used);
  if (!Virtqueue::ValidateConfig(q.config(), kMaxSize, mem, "fuzz").ok()) return 0;

  std::memset(mem.base(), 0, kMemory);
  const auto image = in.Bytes(kMemory);
  std::memcpy(mem.base(), image.data(), image.size());

  DescChain chain;
  std::string why;
  for (int i = 0; i < pops; ++i) {
    why.clear();
    const PopStatus st = q.Pop(mem, dir, &chain, &why);
    if (st == PopStatus::kEmpty) break;
    if (st == PopStatus::kBroken) {
      KF_FUZZ_CHECK(!why.empty(), "a broken ring without a reason");
      break;
    }
    uint32_t len = 0;
    if (st == PopStatus::kBadChain) {
      KF_FUZZ_CHECK(!why.empty() && chain.head < qsize, "a bad chain (head %u) without a reason",
                    chain.head);
    } else {
      CheckChain(mem, chain, dir, qsize, offset);
      len = static_cast<uint32_t>(std::min<uint64_t>(chain.writable_len, offset));
    }
    q.PushUsed(mem, chain.head, len);
    uint16_t used_idx;
    uint32_t elem[2];
    const uint64_t slot = static_cast<uint16_t>(q.next_used_idx() - 1) % qsize;
    std::memcpy(&used_idx, mem.At(q.config().used_gpa + 2, 2), 2);
    std::memcpy(elem, mem.At(q.config().used_gpa + 4 + 8 * slot, 8), 8);
    KF_FUZZ_CHECK(used_idx == q.next_used_idx() && elem[0] == chain.head && elem[1] == len,
                  "used ring: idx %u entry {%u, %u}, expected idx %u entry {%u, %u}", used_idx,
                  elem[0], elem[1], q.next_used_idx(), chain.head, len);
  }
  return 0;
}
