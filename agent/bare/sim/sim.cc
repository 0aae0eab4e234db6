#include "agent/bare/sim/sim.h"

#include <sys/mman.h>

#include <cstring>

extern "C" {
void kf_main(volatile kf_boot_info* boot);
void kf_hosted_outl(uint16_t port, uint32_t value);
uint32_t kf_hosted_inl(uint16_t port);
uint64_t kf_hosted_mmio_read(uint64_t gpa, unsigned width);
void kf_hosted_mmio_write(uint64_t gpa, unsigned width, uint64_t value);
}

namespace kf::bare_sim {
namespace {

Sim* g_sim = nullptr;

constexpr uint32_t kAck = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8;

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void Store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

void ParseHdr(const uint8_t* p, Hdr* h) {
  std::memcpy(&h->src_cid, p, 8);
  std::memcpy(&h->dst_cid, p + 8, 8);
  std::memcpy(&h->src_port, p + 16, 4);
  std::memcpy(&h->dst_port, p + 20, 4);
  std::memcpy(&h->len, p + 24, 4);
  std::memcpy(&h->type, p + 28, 2);
  std::memcpy(&h->op, p + 30, 2);
  std::memcpy(&h->flags, p + 32, 4);
  std::memcpy(&h->buf_alloc, p + 36, 4);
  std::memcpy(&h->fwd_cnt, p + 40, 4);
}

void WriteHdr(const Hdr& h, uint8_t* p) {
  std::memcpy(p, &h.src_cid, 8);
  std::memcpy(p + 8, &h.dst_cid, 8);
  std::memcpy(p + 16, &h.src_port, 4);
  std::memcpy(p + 20, &h.dst_port, 4);
  std::memcpy(p + 24, &h.len, 4);
  std::memcpy(p + 28, &h.type, 2);
  std::memcpy(p + 30, &h.op, 2);
  std::memcpy(p + 32, &h.flags, 4);
  std::memcpy(p + 36, &h.buf_alloc, 4);
  std::memcpy(p + 40, &h.fwd_cnt, 4);
}

}  // namespace

bool Sim::MapMemory() {
  void* p = mmap(reinterpret_cast<void*>(kMapLo), kMemSize - kMapLo, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  return p == reinterpret_cast<void*>(kMapLo);
}

Sim::Sim(const DeviceConfig& device, uint32_t boot_flags, uint64_t init_size, uint64_t seed)
    : dev_(device) {
  boot_.magic = KF_BARE_MAGIC;
  boot_.abi_version = KF_BARE_ABI_VERSION;
  boot_.flags = boot_flags;
  boot_.mem_size = kMemSize;
  boot_.init_gpa = KF_BARE_INIT_GPA;
  boot_.init_size = init_size;
  boot_.seed = seed;
  boot_.vsock_mmio_gpa = KF_BARE_VSOCK_MMIO_GPA;
}

void Sim::Boot() {
  g_sim = this;
  {
    std::lock_guard<std::mutex> lock(mu_);
    guest_turn_ = true;
  }
  guest_ = std::thread([this] { kf_main(&boot_); });
  guest_.detach();  // kf_main never returns; the process exits under it
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !guest_turn_; });
}

bool Sim::Run() {
  DeliverEvents();
  DeliverRx();
  wait_result_ = wake_ ? 1 : 0;
  wake_ = false;
  std::unique_lock<std::mutex> lock(mu_);
  guest_turn_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] { return !guest_turn_; });
  return !panicked_;
}

void Sim::Handoff() {
  std::unique_lock<std::mutex> lock(mu_);
  guest_turn_ = false;
  cv_.notify_all();
  cv_.wait(lock, [this] { return guest_turn_; });
}

void Sim::Violation(const std::string& what) {
  if (violations_.size() < 10000) violations_.push_back(what);
}

uint8_t* Sim::Ptr(uint64_t gpa, uint64_t len) {
  if (gpa < kMapLo || len > kMemSize || gpa > kMemSize - len) return nullptr;
  return reinterpret_cast<uint8_t*>(gpa);
}

void Sim::OutL(uint16_t port, uint32_t value) {
  if (port != KF_PORT_SIGNAL) return Violation("out to port " + std::to_string(port));
  if (value == KF_SIGNAL_READY) {
    if ((status_ & kDriverOk) == 0) Violation("READY before DRIVER_OK");
    ready_ = true;
    return;
  }
  if (value == KF_SIGNAL_PANIC) {
    panicked_ = true;
    for (;;) Handoff();
  }
  Violation("signal " + std::to_string(value));
}

uint32_t Sim::InL(uint16_t port) {
  if (port != KF_PORT_WAIT) {
    Violation("in from port " + std::to_string(port));
    return 0;
  }
  ++waits_;
  Handoff();
  return wait_result_;
}

uint64_t Sim::MmioRead(uint64_t gpa, unsigned width) {
  uint64_t off = gpa - KF_BARE_VSOCK_MMIO_GPA;
  if (width != 4 || (off & 3) != 0 || off >= KF_BARE_VSOCK_MMIO_SIZE) {
    Violation("mmio read width " + std::to_string(width) + " at " + std::to_string(off));
    return 0;
  }
  Queue* q = queue_sel_ < 3 ? &queues_[queue_sel_] : nullptr;
  switch (off) {
    case 0x000:
      return dev_.magic;
    case 0x004:
      return dev_.version;
    case 0x008:
      return dev_.device_id;
    case 0x00c:
      return 0x4b46;
    case 0x010:
      return features_sel_ == 0   ? static_cast<uint32_t>(dev_.features)
             : features_sel_ == 1 ? static_cast<uint32_t>(dev_.features >> 32)
                                  : 0;
    case 0x034:
      return q ? dev_.queue_num_max : 0;
    case 0x044:
      return q ? q->ready : 0;
    case 0x060:
      return 0;
    case 0x070:
      return status_;
    case 0x0fc:
      return 0;
    case 0x100:
      return static_cast<uint32_t>(dev_.cid);
    case 0x104:
      return static_cast<uint32_t>(dev_.cid >> 32);
    default:
      Violation("mmio read of " + std::to_string(off));
      return 0;
  }
}

void Sim::MmioWrite(uint64_t gpa, unsigned width, uint64_t value64) {
  uint64_t off = gpa - KF_BARE_VSOCK_MMIO_GPA;
  if (width != 4 || (off & 3) != 0 || off >= KF_BARE_VSOCK_MMIO_SIZE)
    return Violation("mmio write width " + std::to_string(width) + " at " + std::to_string(off));
  uint32_t value = static_cast<uint32_t>(value64);
  Queue* q = queue_sel_ < 3 ? &queues_[queue_sel_] : nullptr;
  auto live_queue = [&](const char* what) {
    if (!q) return Violation(std::string(what) + " of a queue that does not exist");
    if (q->ready) Violation(std::string(what) + " of a live queue");
  };
  switch (off) {
    case 0x014:
      features_sel_ = value;
      return;
    case 0x020:
      if (status_ & kFeaturesOk) Violation("driver features after FEATURES_OK");
      if (driver_features_sel_ < 2) {
        int shift = 32 * static_cast<int>(driver_features_sel_);
        driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) |
                           (static_cast<uint64_t>(value) << shift);
      }
      return;
    case 0x024:
      driver_features_sel_ = value;
      return;
    case 0x030:
      queue_sel_ = value;
      return;
    case 0x038:
      live_queue("QueueNum");
      if (!q) return;
      if (value == 0 || value > dev_.queue_num_max || (value & (value - 1)) != 0)
        Violation("QueueNum " + std::to_string(value));
      q->num = value;
      return;
    case 0x044:
      if (!q) return Violation("QueueReady of a queue that does not exist");
      if (value == 1) {
        if ((status_ & kFeaturesOk) == 0 || (status_ & kDriverOk) != 0)
          Violation("queue enabled outside feature-negotiated setup");
        if (q->desc % 16 || q->avail % 2 || q->used % 4) Violation("misaligned ring");
        if (!Ptr(q->desc, 16ull * q->num) || !Ptr(q->avail, 6 + 2ull * q->num) ||
            !Ptr(q->used, 6 + 8ull * q->num))
          Violation("ring outside memory");
      }
      q->ready = value & 1;
      return;
    case 0x050:
      if ((status_ & kDriverOk) == 0) Violation("notify before DRIVER_OK");
      if (value == 1) return ProcessTx();
      if (value == 0) return DeliverRx();
      if (value == 2) return DeliverEvents();
      return Violation("notify of queue " + std::to_string(value));
    case 0x064:
      return;
    case 0x070:
      status_writes_.push_back(value);
      if (value == 0) {
        status_ = 0;
        for (Queue& each : queues_) each = Queue{};
        driver_features_ = 0;
        return;
      }
      if ((value & status_) != status_) Violation("status bits cleared without reset");
      if ((value & kFeaturesOk) && !(status_ & kFeaturesOk)) {
        if ((driver_features_ & ~dev_.features) != 0 || !(driver_features_ & (1ull << 32))) {
          Violation("bad feature set");
          value &= ~kFeaturesOk;
        }
      }
      if ((value & kDriverOk) && !(value & kFeaturesOk)) Violation("DRIVER_OK without FEATURES_OK");
      if ((value & (kAck | kDriver)) != (kAck | kDriver) && value != kAck)
        Violation("status order");
      status_ = value;
      return;
    case 0x080:
      live_queue("QueueDesc");
      if (q) q->desc = (q->desc & ~0xffffffffull) | value;
      return;
    case 0x084:
      live_queue("QueueDesc");
      if (q) q->desc = (q->desc & 0xffffffffull) | (uint64_t)value << 32;
      return;
    case 0x090:
      live_queue("QueueDriver");
      if (q) q->avail = (q->avail & ~0xffffffffull) | value;
      return;
    case 0x094:
      live_queue("QueueDriver");
      if (q) q->avail = (q->avail & 0xffffffffull) | (uint64_t)value << 32;
      return;
    case 0x0a0:
      live_queue("QueueDevice");
      if (q) q->used = (q->used & ~0xffffffffull) | value;
      return;
    case 0x0a4:
      live_queue("QueueDevice");
      if (q) q->used = (q->used & 0xffffffffull) | (uint64_t)value << 32;
      return;
    default:
      return Violation("mmio write of " + std::to_string(off));
  }
}

bool Sim::PopChain(Queue& q, uint16_t* head, std::vector<Segment>* segs) {
  if (!q.ready || q.broken || q.num == 0) return false;
  uint8_t* avail = Ptr(q.avail, 4 + 2ull * q.num);
  if (!avail) {
    Break(q);
    Violation("avail ring outside memory");
    return false;
  }
  uint16_t idx = Load16(avail + 2);
  if (idx == q.last_avail) return false;
  if (static_cast<uint16_t>(idx - q.last_avail) > q.num) {
    Break(q);
    Violation("avail idx jumped");
    return false;
  }
  *head = Load16(avail + 4 + 2 * (q.last_avail % q.num));
  ++q.last_avail;
  segs->clear();
  uint32_t i = *head;
  bool seen_write = false;
  for (uint32_t n = 0;; ++n) {
    uint8_t* d = i < q.num ? Ptr(q.desc + 16ull * i, 16) : nullptr;
    if (!d || n >= q.num) {
      Break(q);
      Violation(!d ? "descriptor index out of range" : "descriptor loop");
      return false;
    }
    Segment s;
    uint16_t flags, next;
    std::memcpy(&s.addr, d, 8);
    std::memcpy(&s.len, d + 8, 4);
    std::memcpy(&flags, d + 12, 2);
    std::memcpy(&next, d + 14, 2);
    s.write = flags & 2;
    if (flags & 4) {
      Break(q);
      Violation("indirect descriptor");
      return false;
    }
    if (seen_write && !s.write) Violation("readable after writable");
    seen_write |= s.write;
    if (!Ptr(s.addr, s.len)) {
      Break(q);
      Violation("buffer outside memory");
      return false;
    }
    segs->push_back(s);
    if (!(flags & 1)) break;
    i = next;
  }
  return true;
}

// A broken ring: DEVICE_NEEDS_RESET, the guest woken to see it, and the
// device stops touching that queue until a reset.
void Sim::Break(Queue& q) {
  q.broken = true;
  status_ |= 0x40;
  wake_ = true;
}

void Sim::PushUsed(Queue& q, uint16_t id, uint32_t len) {
  uint8_t* used = Ptr(q.used, 4 + 8ull * q.num);
  if (!used) return Violation("used ring outside memory");
  uint8_t* e = used + 4 + 8 * (q.used_idx % q.num);
  uint32_t id32 = id;
  std::memcpy(e, &id32, 4);
  std::memcpy(e + 4, &len, 4);
  ++q.used_idx;
  Store16(used + 2, q.used_idx);
  wake_ = true;
  ++used_pushed_;
}

void Sim::ProcessTx() {
  Queue& q = queues_[1];
  uint16_t head;
  std::vector<Segment> segs;
  while (PopChain(q, &head, &segs)) {
    std::vector<uint8_t> bytes;
    for (const Segment& s : segs) {
      if (s.write) Violation("device-writable tx buffer");
      bytes.insert(bytes.end(), Ptr(s.addr, s.len), Ptr(s.addr, s.len) + s.len);
    }
    PushUsed(q, head, 0);
    if (bytes.size() < 44) {
      Violation("tx packet shorter than its header");
      continue;
    }
    Packet p;
    ParseHdr(bytes.data(), &p.hdr);
    if (p.hdr.len != bytes.size() - 44) Violation("tx header len disagrees with the buffer");
    if (p.hdr.src_cid != dev_.cid || p.hdr.dst_cid != 2 || p.hdr.type != 1)
      Violation("tx header addresses");
    if (p.hdr.op != 5 && p.hdr.len != 0) Violation("payload on a non-RW packet");
    p.payload.assign(bytes.begin() + 44, bytes.end());
    from_guest_.push_back(std::move(p));
  }
}

void Sim::DeliverRx() {
  Queue& q = queues_[0];
  uint16_t head;
  std::vector<Segment> segs;
  while (!rx_pending_.empty() && PopChain(q, &head, &segs)) {
    const Packet& p = rx_pending_.front();
    if (segs.size() != 1 || !segs[0].write || segs[0].len < 44 + p.payload.size()) {
      Violation("rx buffer is not one writable buffer big enough");
      PushUsed(q, head, 0);
      continue;
    }
    uint8_t* b = Ptr(segs[0].addr, segs[0].len);
    Hdr h = p.hdr;
    h.len = static_cast<uint32_t>(p.payload.size());
    WriteHdr(h, b);
    if (!p.payload.empty()) std::memcpy(b + 44, p.payload.data(), p.payload.size());
    PushUsed(q, head, static_cast<uint32_t>(44 + p.payload.size()));
    rx_pending_.pop_front();
  }
}

void Sim::DeliverEvents() {
  Queue& q = queues_[2];
  uint16_t head;
  std::vector<Segment> segs;
  while (!events_pending_.empty() && PopChain(q, &head, &segs)) {
    if (segs.size() != 1 || !segs[0].write || segs[0].len < 4) {
      Violation("event buffer is not one writable buffer of 4 bytes or more");
      PushUsed(q, head, 0);
      continue;
    }
    uint32_t id = events_pending_.front();
    std::memcpy(Ptr(segs[0].addr, 4), &id, 4);
    PushUsed(q, head, 4);
    events_pending_.pop_front();
  }
}

}  // namespace kf::bare_sim

using kf::bare_sim::g_sim;

extern "C" void kf_hosted_outl(uint16_t port, uint32_t value) { g_sim->OutL(port, value); }
extern "C" uint32_t kf_hosted_inl(uint16_t port) { return g_sim->InL(port); }
extern "C" uint64_t kf_hosted_mmio_read(uint64_t gpa, unsigned width) {
  return g_sim->MmioRead(gpa, width);
}
extern "C" void kf_hosted_mmio_write(uint64_t gpa, unsigned width, uint64_t value) {
  g_sim->MmioWrite(gpa, width, value);
}
