// Test-only guest side for the virtio device model: guest memory fenced by
// PROT_NONE guard pages, and a driver that programs the virtio-mmio
// registers through IoDevice::Read/Write and lays out split rings in guest
// memory the way a guest driver would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/vsock/packet.h"

namespace kf::testing {

// [0, size) of anonymous memory with an inaccessible page before and after:
// any access outside faults at once.
class GuardedMemory {
 public:
  explicit GuardedMemory(uint64_t size);
  ~GuardedMemory();
  GuardedMemory(const GuardedMemory&) = delete;
  GuardedMemory& operator=(const GuardedMemory&) = delete;

  GuestMemoryView view() const { return GuestMemoryView(base_, size_); }
  uint8_t* at(uint64_t gpa) { return base_ + gpa; }
  // mprotect a page-aligned range (e.g. PROT_READ to catch device writes).
  void Protect(uint64_t gpa, uint64_t len, int prot);

 private:
  uint8_t* map_ = nullptr;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

struct Seg {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint16_t id;
  uint32_t len;
};

// Fixed layout: queue q has its descriptor table, avail ring and used ring
// on their own pages at RingGpa(q), and one buffer slot per descriptor at
// BufferGpa(q, slot).
class FakeVirtioDriver {
 public:
  static constexpr uint64_t kMemorySize = 128ull << 20;
  static constexpr uint64_t kSlotSize = 0x11000;  // 64 KiB payload + header, page rounded
  static uint64_t DescGpa(int q) { return 0x10000 + 0x10000 * uint64_t(q); }
  static uint64_t AvailGpa(int q) { return DescGpa(q) + 0x2000; }
  static uint64_t UsedGpa(int q) { return DescGpa(q) + 0x4000; }
  static uint64_t BufferGpa(int q, uint16_t slot) {
    return 0x1000000 + 0x2000000 * uint64_t(q) + kSlotSize * slot;
  }

  FakeVirtioDriver(IoDevice* mmio, uint64_t mmio_base, GuardedMemory* mem)
      : mmio_(mmio), base_(mmio_base), mem_(mem) {}

  // A restored device takes over the same rings: point the driver at it.
  void set_mmio(IoDevice* mmio) { mmio_ = mmio; }
  uint32_t Read32(uint64_t offset);
  void Write32(uint64_t offset, uint32_t value);
  uint8_t ReadConfig8(uint64_t offset);

  // The 3.1.1 sequence: reset, ACKNOWLEDGE, DRIVER, features (VERSION_1,
  // plus `extra_features`), FEATURES_OK, queues of `queue_size`, DRIVER_OK.
  // Returns false (with *why) when the device refused a step.
  bool Init(int num_queues, uint16_t queue_size, uint64_t extra_features = 0,
            std::string* why = nullptr);
  void SetupQueue(int q, uint16_t size);
  // Init's steps, for a driver that lays out its own rings (tests/fuzz):
  // reset through FEATURES_OK; then one ProgramQueue per queue (QueueSel ..
  // QueueReady = 1, nothing in guest memory); then DRIVER_OK.
  bool Negotiate(uint64_t extra_features = 0, std::string* why = nullptr);
  void ProgramQueue(int q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used);
  bool DriverOk(std::string* why = nullptr);
  uint32_t status() { return Read32(0x70); }

  // Writes a chain into free descriptors and publishes it; returns the head.
  uint16_t Post(int q, const std::vector<Seg>& segs);
  void Notify(int q) { Write32(0x50, static_cast<uint32_t>(q)); }
  // New used elements since the last call; their descriptors become free.
  std::vector<UsedElem> TakeUsed(int q);
  // The head's first segment, as posted.
  uint64_t HeadGpa(int q, uint16_t head) const { return queues_[q].first_gpa[head]; }
  size_t free_descriptors(int q) const { return queues_[q].free.size(); }
  uint16_t queue_size(int q) const { return queues_[q].size; }
  GuardedMemory& mem() { return *mem_; }

 protected:
  struct Queue {
    uint16_t size = 0;
    uint16_t avail_idx = 0;
    uint16_t last_used = 0;
    std::vector<uint16_t> free;
    std::vector<std::vector<uint16_t>> chain;  // by head
    std::vector<uint64_t> first_gpa;           // by head
  };
  IoDevice* mmio_;
  uint64_t base_;
  GuardedMemory* mem_;
  std::vector<Queue> queues_;
};

struct RxPacket {
  vsock::PacketHeader hdr;
  std::string payload;
};

// The vsock driver on top: rx and event buffers posted, packets sent on tx.
class FakeVsockDriver : public FakeVirtioDriver {
 public:
  using FakeVirtioDriver::FakeVirtioDriver;
  static constexpr uint64_t kGuestCid = 3;

  // Init with 3 queues, then `rx_buffers` rx buffers of `rx_size` bytes and
  // 4 event buffers.
  bool Start(uint16_t queue_size = 64, int rx_buffers = 16, uint32_t rx_size = 4096);
  void PostRx(int count, uint32_t size);
  void PostEvents(int count);

  // A header from the guest's side: src = guest port, dst = host port.
  static vsock::PacketHeader Hdr(uint16_t op, uint32_t guest_port, uint32_t host_port,
                                 uint32_t buf_alloc = 1 << 20, uint32_t fwd_cnt = 0);
  // Sends one packet (header split across `header_pieces` descriptors) and
  // notifies tx. Returns the used elements of the tx queue.
  std::vector<UsedElem> Send(vsock::PacketHeader h, const std::string& payload = "",
                             int header_pieces = 1);
  // Packets the device placed in the rx queue; each buffer is re-posted
  // (with the same size) unless `repost` is false. Notifies rx after
  // re-posting.
  std::vector<RxPacket> Receive(bool repost = true);
  // TRANSPORT_RESET events received (buffers re-posted).
  int TakeEvents();

 private:
  std::vector<uint32_t> rx_size_by_head_ = std::vector<uint32_t>(256);
};

}  // namespace kf::testing
