#include "tests/fake_virtio_driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace kf::testing {
namespace {

constexpr uint64_t kPage = 4096;

template <typename T>
T Load(GuardedMemory& m, uint64_t gpa) {
  T v;
  std::memcpy(&v, m.at(gpa), sizeof v);
  return v;
}

template <typename T>
void Store(GuardedMemory& m, uint64_t gpa, T v) {
  std::memcpy(m.at(gpa), &v, sizeof v);
}

}  // namespace

GuardedMemory::GuardedMemory(uint64_t size) : size_(size) {
  void* p = ::mmap(nullptr, size + 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED) std::abort();
  map_ = static_cast<uint8_t*>(p);
  base_ = map_ + kPage;
  if (::mprotect(base_, size, PROT_READ | PROT_WRITE) != 0) std::abort();
}

GuardedMemory::~GuardedMemory() { ::munmap(map_, size_ + 2 * kPage); }

void GuardedMemory::Protect(uint64_t gpa, uint64_t len, int prot) {
  if (::mprotect(base_ + gpa, len, prot) != 0) std::abort();
}

uint32_t FakeVirtioDriver::Read32(uint64_t offset) {
  uint8_t b[4];
  mmio_->Read(base_ + offset, b);
  uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

void FakeVirtioDriver::Write32(uint64_t offset, uint32_t value) {
  uint8_t b[4];
  std::memcpy(b, &value, 4);
  mmio_->Write(base_ + offset, b);
}

uint8_t FakeVirtioDriver::ReadConfig8(uint64_t offset) {
  uint8_t b[1];
  mmio_->Read(base_ + VIRTIO_MMIO_CONFIG + offset, b);
  return b[0];
}

void FakeVirtioDriver::SetupQueue(int q, uint16_t size) {
  if (queues_.size() <= static_cast<size_t>(q)) queues_.resize(q + 1);
  Queue& queue = queues_[q];
  queue = Queue{};
  queue.size = size;
  for (int i = size - 1; i >= 0; --i) queue.free.push_back(static_cast<uint16_t>(i));
  queue.chain.resize(size);
  queue.first_gpa.resize(size);
  std::memset(mem_->at(DescGpa(q)), 0, 0x6000);
  ProgramQueue(q, size, DescGpa(q), AvailGpa(q), UsedGpa(q));
}

void FakeVirtioDriver::ProgramQueue(int q, uint16_t size, uint64_t desc, uint64_t avail,
                                    uint64_t used) {
  Write32(VIRTIO_MMIO_QUEUE_SEL, q);
  Write32(VIRTIO_MMIO_QUEUE_NUM, size);
  Write32(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(desc));
  Write32(VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(desc >> 32));
  Write32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(avail));
  Write32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, static_cast<uint32_t>(avail >> 32));
  Write32(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(used));
  Write32(VIRTIO_MMIO_QUEUE_USED_HIGH, static_cast<uint32_t>(used >> 32));
  Write32(VIRTIO_MMIO_QUEUE_READY, 1);
}

bool FakeVirtioDriver::Init(int num_queues, uint16_t queue_size, uint64_t extra_features,
                            std::string* why) {
  if (!Negotiate(extra_features, why)) return false;
  queues_.clear();
  for (int q = 0; q < num_queues; ++q) {
    Write32(VIRTIO_MMIO_QUEUE_SEL, q);
    if (Read32(VIRTIO_MMIO_QUEUE_NUM_MAX) < queue_size) {
      if (why) *why = "queue too small";
      return false;
    }
    SetupQueue(q, queue_size);
  }
  return DriverOk(why);
}

bool FakeVirtioDriver::Negotiate(uint64_t extra_features, std::string* why) {
  auto fail = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (Read32(VIRTIO_MMIO_MAGIC_VALUE) != 0x74726976) return fail("magic");
  if (Read32(VIRTIO_MMIO_VERSION) != 2) return fail("version");
  Write32(VIRTIO_MMIO_STATUS, 0);
  Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  const uint64_t offered = uint64_t{Read32(VIRTIO_MMIO_DEVICE_FEATURES)} << 32;
  Write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  const uint64_t features = (offered | Read32(VIRTIO_MMIO_DEVICE_FEATURES)) | extra_features;
  Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  Write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features));
  Write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  Write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features >> 32));
  const uint32_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
  Write32(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_FEATURES_OK);
  if (!(status() & VIRTIO_CONFIG_S_FEATURES_OK)) return fail("FEATURES_OK refused");
  return true;
}

bool FakeVirtioDriver::DriverOk(std::string* why) {
  Write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                  VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
  const uint32_t st = status();
  if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET)) {
    if (why) *why = "DRIVER_OK refused, status " + std::to_string(st);
    return false;
  }
  return true;
}

uint16_t FakeVirtioDriver::Post(int q, const std::vector<Seg>& segs) {
  Queue& queue = queues_[q];
  if (segs.empty() || queue.free.size() < segs.size()) std::abort();  // a test bug
  std::vector<uint16_t> ids;
  for (size_t i = 0; i < segs.size(); ++i) {
    ids.push_back(queue.free.back());
    queue.free.pop_back();
  }
  for (size_t i = 0; i < segs.size(); ++i) {
    const uint64_t d = DescGpa(q) + 16 * uint64_t{ids[i]};
    Store<uint64_t>(*mem_, d, segs[i].gpa);
    Store<uint32_t>(*mem_, d + 8, segs[i].len);
    uint16_t flags = segs[i].writable ? 2 : 0;
    if (i + 1 < segs.size()) flags |= 1;
    Store<uint16_t>(*mem_, d + 12, flags);
    Store<uint16_t>(*mem_, d + 14, i + 1 < segs.size() ? ids[i + 1] : 0);
  }
  const uint16_t head = ids[0];
  queue.chain[head] = ids;
  queue.first_gpa[head] = segs[0].gpa;
  Store<uint16_t>(*mem_, AvailGpa(q) + 4 + 2 * uint64_t(queue.avail_idx % queue.size), head);
  std::atomic_thread_fence(std::memory_order_release);
  ++queue.avail_idx;
  Store<uint16_t>(*mem_, AvailGpa(q) + 2, queue.avail_idx);
  return head;
}

std::vector<UsedElem> FakeVirtioDriver::TakeUsed(int q) {
  Queue& queue = queues_[q];
  std::vector<UsedElem> out;
  const uint16_t used_idx = Load<uint16_t>(*mem_, UsedGpa(q) + 2);
  std::atomic_thread_fence(std::memory_order_acquire);
  while (queue.last_used != used_idx) {
    const uint64_t e = UsedGpa(q) + 4 + 8 * uint64_t(queue.last_used % queue.size);
    UsedElem u{static_cast<uint16_t>(Load<uint32_t>(*mem_, e)), Load<uint32_t>(*mem_, e + 4)};
    ++queue.last_used;
    if (u.id < queue.size) {
      for (uint16_t id : queue.chain[u.id]) queue.free.push_back(id);
      queue.chain[u.id].clear();
    }
    out.push_back(u);
  }
  return out;
}

bool FakeVsockDriver::Start(uint16_t queue_size, int rx_buffers, uint32_t rx_size) {
  if (!Init(3, queue_size)) return false;
  PostRx(rx_buffers, rx_size);
  PostEvents(4);
  return true;
}

void FakeVsockDriver::PostRx(int count, uint32_t size) {
  for (int i = 0; i < count; ++i) {
    const uint16_t slot = queues_[0].free.back();  // the head Post will take
    Post(0, {{BufferGpa(0, slot), size, true}});
    rx_size_by_head_[slot] = size;
  }
  Notify(0);
}

void FakeVsockDriver::PostEvents(int count) {
  for (int i = 0; i < count; ++i) {
    const uint16_t slot = queues_[2].free.back();
    Post(2, {{BufferGpa(2, slot), 4, true}});
  }
  Notify(2);
}

vsock::PacketHeader FakeVsockDriver::Hdr(uint16_t op, uint32_t guest_port, uint32_t host_port,
                                         uint32_t buf_alloc, uint32_t fwd_cnt) {
  vsock::PacketHeader h;
  h.src_cid = kGuestCid;
  h.dst_cid = vsock::kHostCid;
  h.src_port = guest_port;
  h.dst_port = host_port;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

std::vector<UsedElem> FakeVsockDriver::Send(vsock::PacketHeader h, const std::string& payload,
                                            int header_pieces) {
  if (h.op == VIRTIO_VSOCK_OP_RW && h.len == 0) h.len = static_cast<uint32_t>(payload.size());
  uint8_t raw[vsock::kHeaderSize];
  vsock::EncodeHeader(h, raw);
  const uint64_t buf = BufferGpa(1, queues_[1].free.back());
  std::memcpy(mem_->at(buf), raw, sizeof raw);
  std::memcpy(mem_->at(buf + sizeof raw), payload.data(), payload.size());
  std::vector<Seg> segs;
  uint32_t at = 0;
  for (int i = 0; i < header_pieces; ++i) {
    const uint32_t end = i + 1 == header_pieces ? 44 : (44 * (i + 1)) / header_pieces;
    segs.push_back({buf + at, end - at, false});
    at = end;
  }
  if (!payload.empty()) segs.push_back({buf + 44, static_cast<uint32_t>(payload.size()), false});
  Post(1, segs);
  Notify(1);
  return TakeUsed(1);
}

std::vector<RxPacket> FakeVsockDriver::Receive(bool repost) {
  std::vector<RxPacket> out;
  std::vector<uint32_t> sizes;
  for (const UsedElem& u : TakeUsed(0)) {
    const uint64_t buf = BufferGpa(0, u.id);
    RxPacket p;
    if (u.len >= vsock::kHeaderSize) {
      uint8_t raw[vsock::kHeaderSize];
      std::memcpy(raw, mem_->at(buf), sizeof raw);
      p.hdr = vsock::DecodeHeader(raw);
      p.payload.assign(reinterpret_cast<const char*>(mem_->at(buf + 44)), u.len - 44);
    } else {
      p.hdr.op = 0xffff;  // a buffer given back unused
    }
    out.push_back(p);
    sizes.push_back(rx_size_by_head_[u.id]);
  }
  if (repost && !sizes.empty()) {
    for (uint32_t size : sizes) {
      const uint16_t slot = queues_[0].free.back();
      Post(0, {{BufferGpa(0, slot), size, true}});
      rx_size_by_head_[slot] = size;
    }
    Notify(0);
  }
  return out;
}

int FakeVsockDriver::TakeEvents() {
  int n = 0;
  for (const UsedElem& u : TakeUsed(2)) {
    if (u.len == 4 && Load<uint32_t>(*mem_, BufferGpa(2, u.id)) == 0) ++n;
  }
  if (n) PostEvents(n);
  return n;
}

}  // namespace kf::testing
