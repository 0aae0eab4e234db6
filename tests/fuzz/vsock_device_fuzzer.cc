// libFuzzer target: the virtio-vsock device as the VMM runs it
// (vmm-glue/vsock/hybrid_vsock.h: virtio-mmio transport, virtqueues, packet
// checks, the Unix-socket muxer and its connections) against a hostile
// guest driver and host clients.
//
// Feeds: 64 KiB of guest memory fenced by PROT_NONE pages
// (tests/fake_virtio_driver.h) holding whatever rings, descriptors and
// packets the input lays out, a driver that programs the queues where the
// input says, host clients on socketpairs, then a script of operations.
// Input layout (little endian):
//    0  u8   options: bit 0 poll_on_wait, bit 1 hold_rx_until_reset_ack,
//            bits 2-3 host clients (0-3), bit 4 an agent.sock path, so that
//            guest REQUESTs to host port 1024 reach a listener here
//    1  3 x {u16 size, u16 desc, u16 avail, u16 used}: rx, tx, event queues
//   25  u16  n, then n bytes of guest memory from address 0
//   ..  operations until the input ends (Op below), each a byte and its
//       arguments
// Checks: no access outside guest memory (guard pages, ASan) or other
// undefined behaviour; a device that needs a reset leaves guest memory
// alone; the state Save() gives of an active device is one Restore()
// accepts.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/fake_virtio_driver.h"
#include "tests/fuzz/fuzz_util.h"
#include "vmm-glue/unique_fd.h"
#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/vsock/hybrid_vsock.h"
#include "vmm-glue/vsock/unix_muxer.h"

namespace {

using kf::UniqueFd;
using kf::testing::FakeVirtioDriver;
using kf::testing::GuardedMemory;
using kf::vsock::HybridVsock;

constexpr uint64_t kMemory = 64 * 1024;
constexpr uint64_t kMmioBase = 0xd0000000;
constexpr uint32_t kListenPort = 1024;  // guest REQUESTs to it reach `listener`
constexpr int kMaxOps = 256;

enum Op : uint8_t {
  kNotify,       // u8 queue (3: an index the device does not have)
  kPump,         // host socket events (ProcessHostEvents)
  kClientWrite,  // u8 client, u8 n, n bytes
  kMmioWrite,    // u8 register / 4, u32 value
  kPoll,         // PollGuestQueues (the bare guest's wait)
  kPoke,         // u16 address, u8 n, n bytes into guest memory (the driver)
  kClientClose,  // u8 client
  kRestore,      // Save(), a new device, Restore() (a clone of this one)
  kOpCount
};

// What lives across runs: guest memory and a directory for the sockets.
struct Fixture {
  GuardedMemory memory{kMemory};
  std::string dir;
  UniqueFd listener;  // <dir>/agent.sock_1024

  Fixture() {
    char tmpl[] = "/tmp/kf-vsock-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    const std::string path = uds() + "_" + std::to_string(kListenPort);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    listener.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener.get(), 64) != 0) {
      std::abort();
    }
  }
  ~Fixture() {
    ::unlink((uds() + "_" + std::to_string(kListenPort)).c_str());
    ::rmdir(dir.c_str());
  }
  std::string uds() const { return dir + "/agent.sock"; }
  // Accepted and closed: every run starts with an empty backlog.
  void DrainListener() {
    for (;;) {
      UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd.valid()) return;
    }
  }
};

struct Layout {
  uint16_t size, desc, avail, used;
};

// The device must not write guest memory while it needs a reset, whatever
// the guest or the clients do.
template <typename F>
void UntouchedIfBroken(HybridVsock& v, kf::GuestMemoryView mem, F op) {
  if (!v.needs_reset()) {
    op();
    return;
  }
  static std::vector<uint8_t> before(kMemory);
  std::memcpy(before.data(), mem.base(), kMemory);
  op();
  KF_FUZZ_CHECK(std::memcmp(before.data(), mem.base(), kMemory) == 0,
                "a device that needs a reset wrote guest memory");
}

// ---- seeds ----

constexpr uint16_t kSeedQueueSize = 8;
uint16_t SeedRing(int q) {
  return static_cast<uint16_t>(0x100 * q);
}  // desc; avail +0x80, used +0xa0
constexpr uint64_t kSeedTxPackets = 0x300;  // 0x80 bytes each
constexpr uint64_t kSeedEventBuffers = 0x7000;
constexpr uint64_t kSeedRxBuffers = 0x8000;  // 4 KiB each

// A guest driver's memory and a script, as the target reads them.
class SeedBuilder {
 public:
  explicit SeedBuilder(uint8_t options) : options_(options), mem_(0x500, '\0') {}

  void Desc(int q, int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    std::string d;
    kf::fuzz::Put(d, addr);
    kf::fuzz::Put(d, len);
    kf::fuzz::Put(d, flags);
    kf::fuzz::Put(d, next);
    mem_.replace(SeedRing(q) + 16 * i, 16, d);
  }
  // Heads 0..n-1 in avail slots 0..n-1; `published` of them counted in idx.
  void Avail(int q, int n, uint16_t published) {
    for (int i = 0; i < n; ++i) PutAt(SeedRing(q) + 0x80 + 4 + 2 * i, static_cast<uint16_t>(i));
    PutAt(SeedRing(q) + 0x80 + 2, published);
  }
  // Tx packet i (descriptor i of the tx queue): a header and its payload.
  void TxPacket(int i, uint16_t op, uint32_t guest_port, uint32_t host_port,
                const std::string& payload = "") {
    kf::vsock::PacketHeader h;
    h.src_cid = 3;
    h.dst_cid = kf::vsock::kHostCid;
    h.src_port = guest_port;
    h.dst_port = host_port;
    h.len = static_cast<uint32_t>(payload.size());
    h.type = VIRTIO_VSOCK_TYPE_STREAM;
    h.op = op;
    h.buf_alloc = 64 * 1024;
    uint8_t raw[kf::vsock::kHeaderSize];
    kf::vsock::EncodeHeader(h, raw);
    const uint64_t at = kSeedTxPackets + 0x80 * i;
    mem_.replace(at, sizeof raw, reinterpret_cast<char*>(raw), sizeof raw);
    mem_.replace(at + sizeof raw, payload.size(), payload);
    Desc(1, i, at, static_cast<uint32_t>(sizeof raw + payload.size()), 0, 0);
  }
  // Rx and event buffers, all posted.
  void Buffers(int rx, int events) {
    for (int i = 0; i < rx; ++i) Desc(0, i, kSeedRxBuffers + 0x1000 * i, 0x1000, 2, 0);
    Avail(0, rx, static_cast<uint16_t>(rx));
    for (int i = 0; i < events; ++i) Desc(2, i, kSeedEventBuffers + 8 * i, 8, 2, 0);
    Avail(2, events, static_cast<uint16_t>(events));
  }

  void Notify(int q) { ops_ += static_cast<char>(kNotify), ops_ += static_cast<char>(q); }
  void Pump() { ops_ += static_cast<char>(kPump); }
  void Poll() { ops_ += static_cast<char>(kPoll); }
  void ClientWrite(int k, const std::string& s) {
    ops_ += static_cast<char>(kClientWrite);
    ops_ += static_cast<char>(k);
    ops_ += static_cast<char>(s.size());
    ops_ += s;
  }
  // Publishes tx packets up to `idx` (avail idx of the tx queue).
  void PublishTx(uint16_t idx) {
    ops_ += static_cast<char>(kPoke);
    kf::fuzz::Put<uint16_t>(ops_, static_cast<uint16_t>(SeedRing(1) + 0x80 + 2));
    ops_ += static_cast<char>(2);
    kf::fuzz::Put(ops_, idx);
  }
  void Restore() { ops_ += static_cast<char>(kRestore); }

  std::string Build() const {
    std::string s(1, static_cast<char>(options_));
    for (int q = 0; q < 3; ++q) {
      kf::fuzz::Put(s, kSeedQueueSize);
      kf::fuzz::Put(s, SeedRing(q));
      kf::fuzz::Put(s, static_cast<uint16_t>(SeedRing(q) + 0x80));
      kf::fuzz::Put(s, static_cast<uint16_t>(SeedRing(q) + 0xa0));
    }
    kf::fuzz::Put(s, static_cast<uint16_t>(mem_.size()));
    return s + mem_ + ops_;
  }

 private:
  template <typename T>
  void PutAt(uint64_t at, T v) {
    std::memcpy(mem_.data() + at, &v, sizeof v);
  }
  uint8_t options_;
  std::string mem_, ops_;
};

kf::fuzz::Seeds MakeSeeds() {
  constexpr uint32_t kHostPort = kf::vsock::kFirstHostPort;
  kf::fuzz::Seeds seeds;
  {
    // A host client connects to guest port 1024: REQUEST in rx, the guest
    // answers RESPONSE, then data both ways, then the guest shuts down.
    SeedBuilder b(1 << 2);  // one client
    b.Buffers(4, 2);
    b.TxPacket(0, VIRTIO_VSOCK_OP_RESPONSE, 1024, kHostPort);
    b.TxPacket(1, VIRTIO_VSOCK_OP_RW, 1024, kHostPort, "hello from the guest");
    b.TxPacket(2, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1024, kHostPort);
    b.TxPacket(3, VIRTIO_VSOCK_OP_SHUTDOWN, 1024, kHostPort);
    b.Avail(1, 4, 0);
    b.ClientWrite(0, "CONNECT 1024\nearly");
    b.Pump();
    b.PublishTx(1);
    b.Notify(1);
    b.ClientWrite(0, "more bytes from the client");
    b.Pump();
    b.PublishTx(3);
    b.Notify(1);
    b.Restore();
    b.PublishTx(4);
    b.Notify(1);
    b.Notify(2);
    seeds.push_back({"host-connect", b.Build()});
  }
  {
    // The guest connects to the host's port 1024 (a listener here) and
    // sends data; the bare guest's polling mode.
    SeedBuilder b(1 | 1 << 4);
    b.Buffers(2, 1);
    b.TxPacket(0, VIRTIO_VSOCK_OP_REQUEST, 5000, kListenPort);
    b.TxPacket(1, VIRTIO_VSOCK_OP_RW, 5000, kListenPort, "ping");
    b.TxPacket(2, VIRTIO_VSOCK_OP_RST, 5000, kListenPort);
    b.Avail(1, 3, 2);
    b.Poll();
    b.Pump();
    b.PublishTx(3);
    b.Poll();
    seeds.push_back({"guest-connect", b.Build()});
  }
  {
    // Packets without a connection, to a port nobody listens on: RSTs.
    SeedBuilder b(1 << 1);
    b.Buffers(2, 2);
    b.TxPacket(0, VIRTIO_VSOCK_OP_REQUEST, 7, 9);
    b.TxPacket(1, VIRTIO_VSOCK_OP_RW, 7, 9, "x");
    b.Avail(1, 2, 2);
    b.Notify(1);
    b.Restore();
    b.Notify(2);
    b.Notify(0);
    seeds.push_back({"stray-packets", b.Build()});
  }
  return seeds;
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  const kf::GuestMemoryView mem = fixture.memory.view();
  kf::fuzz::Reader in(data, size);

  const uint8_t options = in.Take<uint8_t>();
  Layout layout[3];
  for (Layout& l : layout) {
    l = {in.Take<uint16_t>(), in.Take<uint16_t>(), in.Take<uint16_t>(), in.Take<uint16_t>()};
  }
  std::memset(mem.base(), 0, kMemory);
  const auto image = in.Bytes(in.Take<uint16_t>());
  std::memcpy(mem.base(), image.data(), image.size());

  const kf::vsock::HybridVsockOptions vsock_options{3, (options & 0x10) ? fixture.uds() : "",
                                                    (options & 1) != 0, (options & 2) != 0};
  auto created = HybridVsock::Create(mem, kMmioBase, vsock_options);
  KF_FUZZ_CHECK(created.ok(), "HybridVsock::Create: %s", created.error().message().c_str());
  std::unique_ptr<HybridVsock> vsock = std::move(*created);
  FakeVirtioDriver driver(vsock->mmio(), kMmioBase, &fixture.memory);
  if (driver.Negotiate()) {
    for (int q = 0; q < 3; ++q) {
      driver.ProgramQueue(q, layout[q].size, layout[q].desc, layout[q].avail, layout[q].used);
    }
    driver.DriverOk();  // refused (NEEDS_RESET) when a queue is invalid
  }

  std::vector<UniqueFd> clients;
  for (int k = 0; k < ((options >> 2) & 3); ++k) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    clients.emplace_back(sv[0]);
    KF_FUZZ_CHECK(vsock->AddClient(UniqueFd(sv[1])).ok(), "AddClient");
  }
  auto client = [&](uint8_t k) -> UniqueFd* {
    return clients.empty() ? nullptr : &clients[k % clients.size()];
  };

  for (int ops = 0; in.left() > 0 && ops < kMaxOps; ++ops) {
    switch (in.Take<uint8_t>() % kOpCount) {
      case kNotify: {
        const uint8_t q = in.Take<uint8_t>() % 4;
        UntouchedIfBroken(*vsock, mem, [&] { driver.Notify(q); });
        break;
      }
      case kPump:
        UntouchedIfBroken(*vsock, mem, [&] { (void)vsock->ProcessHostEvents(); });
        break;
      case kClientWrite: {
        UniqueFd* c = client(in.Take<uint8_t>());
        const auto bytes = in.Bytes(in.Take<uint8_t>());
        if (c != nullptr && c->valid()) {
          (void)::send(c->get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        break;
      }
      case kMmioWrite: {
        const uint64_t reg = uint64_t{in.Take<uint8_t>()} * 4;
        driver.Write32(reg, in.Take<uint32_t>());
        break;
      }
      case kPoll:
        UntouchedIfBroken(*vsock, mem, [&] { vsock->PollGuestQueues(); });
        break;
      case kPoke: {
        const uint64_t at = in.Take<uint16_t>();
        const auto bytes = in.Bytes(in.Take<uint8_t>());
        const size_t n = std::min<uint64_t>(bytes.size(), kMemory - at);
        std::memcpy(mem.base() + at, bytes.data(), n);
        break;
      }
      case kClientClose:
        if (UniqueFd* c = client(in.Take<uint8_t>())) c->Reset();
        break;
      case kRestore: {
        // What the zygote does with a template: a new device restored from
        // the saved state over the same memory (host connections are not
        // carried over).
        if (!vsock->transport().active()) break;
        const auto state = vsock->Save();
        vsock.reset();  // first, so its agent.sock is gone before the new one binds
        auto clone = HybridVsock::Create(mem, kMmioBase, vsock_options);
        KF_FUZZ_CHECK(clone.ok(), "HybridVsock::Create: %s", clone.error().message().c_str());
        vsock = std::move(*clone);
        const kf::Status s = vsock->Restore(state);
        KF_FUZZ_CHECK(s.ok(), "Restore refused what Save gave: %s", s.error().message().c_str());
        driver.set_mmio(vsock->mmio());
        break;
      }
    }
  }
  vsock.reset();
  clients.clear();
  fixture.DrainListener();
  return 0;
}
