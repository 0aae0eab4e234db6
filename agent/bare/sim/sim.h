// A host-side simulation of the bare guest's world, for tests without KVM:
// the guest's C code (built with KF_BARE_HOSTED) runs on a thread of its own,
// its port and MMIO accesses call into this file, which plays the VMM (the
// WAIT and SIGNAL ports) and a strict virtio-mmio vsock device over the
// guest's real ring memory, mapped at the guest's fixed addresses.
//
// The guest and the test thread take turns, as the guest and the VMM do: the
// guest runs until it blocks in WAIT (or panics); Run() lets it go once.
// Everything the guest does wrong by the virtio and vsock specifications is
// a violation, recorded with a message; hostile mode expects many.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/bare/bare_abi.h"

namespace kf::bare_sim {

// Guest memory the simulation maps: the driver region and the init region.
constexpr uint64_t kMapLo = KF_BARE_DRIVER_GPA;
constexpr uint64_t kMemSize = 16ull << 20;

struct Hdr {
  uint64_t src_cid = 0, dst_cid = 0;
  uint32_t src_port = 0, dst_port = 0, len = 0;
  uint16_t type = 0, op = 0;
  uint32_t flags = 0, buf_alloc = 0, fwd_cnt = 0;
};

struct Packet {
  Hdr hdr;
  std::vector<uint8_t> payload;
};

struct DeviceConfig {
  uint32_t magic = 0x74726976, version = 2, device_id = 19;
  uint64_t features = 1ull << 32;
  uint32_t queue_num_max = 256;
  uint64_t cid = 3;
};

class Sim {
 public:
  // Maps guest memory (false if the fixed addresses are taken).
  static bool MapMemory();

  Sim(const DeviceConfig& device, uint32_t boot_flags, uint64_t init_size, uint64_t seed);
  // Starts the guest and runs it to its first WAIT or panic.
  void Boot();
  // Delivers what is pending (rx packets, events) and lets the guest run
  // until it waits again. Returns false if it panicked.
  bool Run();

  // The host's side of the device.
  void QueueRx(const Packet& p) { rx_pending_.push_back(p); }
  void QueueTransportReset() { events_pending_.push_back(0); }
  // The device gives up on the driver (DEVICE_NEEDS_RESET) and wakes it.
  void SetNeedsReset() {
    status_ |= 0x40;
    for (Queue& q : queues_) q.broken = true;
    wake_ = true;
  }
  std::deque<Packet>& from_guest() { return from_guest_; }

  bool ready() const { return ready_; }
  bool panicked() const { return panicked_; }
  const kf_boot_info& boot() const { return boot_; }
  const std::vector<std::string>& violations() const { return violations_; }
  const std::vector<uint32_t>& status_writes() const { return status_writes_; }
  uint32_t queue_num(int q) const { return queues_[q].num; }
  uint64_t waits() const { return waits_; }
  uint64_t used_pushed() const { return used_pushed_; }

  // Hooks (called by the guest through kf_hosted_*).
  void OutL(uint16_t port, uint32_t value);
  uint32_t InL(uint16_t port);
  uint64_t MmioRead(uint64_t gpa, unsigned width);
  void MmioWrite(uint64_t gpa, unsigned width, uint64_t value);

 private:
  struct Queue {
    uint32_t num = 0, ready = 0;
    uint64_t desc = 0, avail = 0, used = 0;
    uint16_t last_avail = 0, used_idx = 0;
    bool broken = false;
  };
  struct Segment {
    uint64_t addr;
    uint32_t len;
    bool write;
  };

  void Violation(const std::string& what);
  static uint8_t* Ptr(uint64_t gpa, uint64_t len);
  bool PopChain(Queue& q, uint16_t* head, std::vector<Segment>* segs);
  void Break(Queue& q);
  void PushUsed(Queue& q, uint16_t id, uint32_t len);
  void ProcessTx();
  void DeliverRx();
  void DeliverEvents();
  void Handoff();  // guest thread: give the turn to the host, wait for it back

  DeviceConfig dev_;
  kf_boot_info boot_{};
  uint32_t status_ = 0, features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
  uint64_t driver_features_ = 0;
  Queue queues_[3];
  std::deque<Packet> rx_pending_, from_guest_;
  std::deque<uint32_t> events_pending_;
  std::vector<std::string> violations_;
  std::vector<uint32_t> status_writes_;
  bool wake_ = false, ready_ = false, panicked_ = false;
  uint64_t waits_ = 0, used_pushed_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool guest_turn_ = false;
  uint32_t wait_result_ = 0;
  std::thread guest_;
};

}  // namespace kf::bare_sim
