// The bare guest's vsock driver and agent, run against a simulated VMM and
// device (sim.h), without KVM. Each test runs in a child process (a death
// test): the guest's state is global, its kf_main never returns, and it
// lives at fixed addresses. The child exits 0 when every check held.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "agent/bare/sim/sim.h"
#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"

namespace kf::bare_sim {
namespace {

constexpr uint16_t kRequest = 1, kResponse = 2, kRst = 3, kShutdown = 4, kRw = 5, kCreditUpdate = 6,
                   kCreditRequest = 7;

int g_failures = 0;

#define CHECK(...)                                                                         \
  do {                                                                                     \
    if (!(__VA_ARGS__)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #__VA_ARGS__); \
      ++g_failures;                                                                        \
    }                                                                                      \
  } while (0)

// The host's end of the connections: frames in, frames out, and its own
// credit accounting, which checks the guest never sends beyond it.
class Host {
 public:
  explicit Host(Sim& sim) : sim_(sim) {}

  struct Conn {
    uint32_t buf_alloc = 1 << 20;  // what the host advertises
    uint32_t fwd_cnt = 0;          // what it consumed
    uint32_t fwd_cnt_told = 0;     // fwd_cnt in its latest header
    uint32_t buf_alloc_told = 1 << 20;
    uint32_t guest_bytes = 0;  // RW payload received
    uint32_t guest_buf_alloc = 0, guest_fwd_cnt = 0;
    bool consume = true;  // read data as it arrives
    std::vector<uint8_t> stream;
    std::vector<uint16_t> control;  // non-RW ops received, in order
  };

  Hdr H(uint32_t port, uint16_t op, uint32_t dst_port = KF_AGENT_VSOCK_PORT) {
    Conn& c = conns_[port];
    c.fwd_cnt_told = c.fwd_cnt;
    c.buf_alloc_told = c.buf_alloc;
    Hdr h;
    h.src_cid = 2;
    h.dst_cid = 3;
    h.src_port = port;
    h.dst_port = dst_port;
    h.type = 1;
    h.op = op;
    h.buf_alloc = c.buf_alloc;
    h.fwd_cnt = c.fwd_cnt;
    return h;
  }

  void Send(uint32_t port, uint16_t op, std::vector<uint8_t> payload = {}, uint32_t flags = 0,
            uint32_t dst_port = KF_AGENT_VSOCK_PORT) {
    Packet p;
    p.hdr = H(port, op, dst_port);
    p.hdr.flags = flags;
    p.payload = std::move(payload);
    sim_.QueueRx(p);
  }

  static std::vector<uint8_t> Frame(uint32_t stream, const kf_agent_request& req) {
    static uint8_t buf[8192];
    size_t n = 0;
    int rc = kf_agent_encode_request(&req, buf + KF_AGENT_FRAME_HEADER_SIZE,
                                     sizeof buf - KF_AGENT_FRAME_HEADER_SIZE, &n);
    CHECK(rc == KF_PB_OK);
    return RawFrame(stream, KF_AGENT_FRAME_REQUEST, 0,
                    std::vector<uint8_t>(buf + KF_AGENT_FRAME_HEADER_SIZE,
                                         buf + KF_AGENT_FRAME_HEADER_SIZE + n));
  }

  static std::vector<uint8_t> RawFrame(uint32_t stream, uint8_t type, uint8_t flags,
                                       const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> f(KF_AGENT_FRAME_HEADER_SIZE);
    uint32_t len = static_cast<uint32_t>(payload.size());
    uint8_t be[8] = {uint8_t(len >> 24),   uint8_t(len >> 16),    uint8_t(len >> 8),
                     uint8_t(len),         uint8_t(stream >> 24), uint8_t(stream >> 16),
                     uint8_t(stream >> 8), uint8_t(stream)};
    std::memcpy(f.data(), be, 8);
    f[8] = type;
    f[9] = flags;
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  }

  void Connect(uint32_t port) {
    conns_.erase(port);
    Send(port, kRequest);
  }

  void Request(uint32_t port, uint32_t stream, const kf_agent_request& req) {
    Send(port, kRw, Frame(stream, req));
  }

  // Runs the guest and takes what it sent.
  void Run() {
    CHECK(sim_.Run());
    Collect();
  }

  void Collect() {
    auto& out = sim_.from_guest();
    while (!out.empty()) {
      Packet p = std::move(out.front());
      out.pop_front();
      CHECK(p.hdr.src_port == KF_AGENT_VSOCK_PORT || p.hdr.op == kRst);
      Conn& c = conns_[p.hdr.dst_port];
      c.guest_buf_alloc = p.hdr.buf_alloc;
      c.guest_fwd_cnt = p.hdr.fwd_cnt;
      if (p.hdr.op == kRw) {
        c.guest_bytes += p.hdr.len;
        // Credit: never more in flight than the host last advertised.
        CHECK(c.guest_bytes - c.fwd_cnt_told <= c.buf_alloc_told);
        c.stream.insert(c.stream.end(), p.payload.begin(), p.payload.end());
        if (c.consume) c.fwd_cnt += p.hdr.len;
      } else {
        c.control.push_back(p.hdr.op);
      }
    }
  }

  // The next complete response frame on `port`, or false.
  bool NextFrame(uint32_t port, uint32_t* stream, kf_agent_response* resp) {
    Conn& c = conns_[port];
    if (c.stream.size() < KF_AGENT_FRAME_HEADER_SIZE) return false;
    kf_agent_frame_header h;
    CHECK(kf_agent_frame_header_decode(c.stream.data(), &h) == KF_PB_OK);
    CHECK(h.type == KF_AGENT_FRAME_RESPONSE);
    if (c.stream.size() < KF_AGENT_FRAME_HEADER_SIZE + h.length) return false;
    CHECK(kf_agent_decode_response(c.stream.data() + KF_AGENT_FRAME_HEADER_SIZE, h.length, resp) ==
          KF_PB_OK);
    *stream = h.stream_id;
    c.stream.erase(c.stream.begin(), c.stream.begin() + KF_AGENT_FRAME_HEADER_SIZE + h.length);
    return true;
  }

  // Expects the next frame to answer `stream` with `kind`.
  kf_agent_response* Expect(uint32_t port, uint32_t stream, uint32_t kind) {
    static kf_agent_response resp;
    uint32_t got_stream = ~0u;
    bool ok = NextFrame(port, &got_stream, &resp);
    CHECK(ok);
    if (!ok) return &resp;
    CHECK(got_stream == stream);
    if (resp.kind != kind)
      std::fprintf(stderr, "expected kind %u, got %u (error %d %s)\n", kind, resp.kind,
                   resp.u.error.code, resp.u.error.message);
    CHECK(resp.kind == kind);
    return &resp;
  }

  void ExpectError(uint32_t port, uint32_t stream, int32_t code) {
    kf_agent_response* r = Expect(port, stream, KF_AGENT_ERROR);
    CHECK(r->u.error.code == code);
  }

  // Connects and checks RESPONSE, then the Ready frame.
  void Open(uint32_t port) {
    Connect(port);
    Run();
    Conn& c = conns_[port];
    CHECK(!c.control.empty() && c.control[0] == kResponse);
    CHECK(c.guest_buf_alloc == 32768);
    kf_agent_response* r = Expect(port, 0, KF_AGENT_READY);
    CHECK(r->u.ready.agent_version == KF_AGENT_VERSION);
    CHECK(r->u.ready.guest_kind == KF_AGENT_GUEST_BARE);
    CHECK(r->u.ready.mem_total == kMemSize);
    CHECK(r->u.ready.init_bytes == sim_.boot().init_bytes);
    CHECK(r->u.ready.init_hash == sim_.boot().init_hash);
    c.control.clear();
  }

  Conn& conn(uint32_t port) { return conns_[port]; }

 private:
  Sim& sim_;
  std::map<uint32_t, Conn> conns_;
};

kf_agent_request Req(uint32_t kind) {
  kf_agent_request r;
  std::memset(&r, 0, sizeof r);
  r.kind = kind;
  return r;
}

// The child: boots a guest, runs `body`, exits with the count of failed
// checks (0: pass). Outside checks, any spec violation the simulated device
// saw fails too, except in hostile mode and where `strict` is off.
template <typename Body>
[[noreturn]] void RunChild(const DeviceConfig& dev, uint32_t flags, bool strict, Body body) {
  if (!Sim::MapMemory()) {
    std::fprintf(stderr, "guest addresses taken: not run\n");
    _exit(0);
  }
  Sim* sim = new Sim(dev, flags, 1 << 20, 1234);  // never freed: the guest runs on
  sim->Boot();
  body(*sim);
  if (strict && flags == 0)
    for (const std::string& v : sim->violations()) {
      std::fprintf(stderr, "violation: %s\n", v.c_str());
      ++g_failures;
    }
  std::fflush(stderr);
  _exit(g_failures);
}

template <typename Body>
void InChild(const DeviceConfig& dev, uint32_t flags, Body body, bool strict = true) {
  EXPECT_EXIT(RunChild(dev, flags, strict, body), ::testing::ExitedWithCode(0), "");
}

TEST(BareSim, BootsTheDeviceBySpec) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    CHECK(sim.ready());
    CHECK(!sim.panicked());
    const std::vector<uint32_t> want = {0, 1, 3, 11, 15};
    CHECK(sim.status_writes() == want);
    for (int q = 0; q < 3; ++q) CHECK(sim.queue_num(q) == 64);  // min(256, 64)
    CHECK(sim.boot().init_bytes == 1u << 20);
    CHECK(sim.boot().init_hash == kf_hash_words(KF_HASH_SEED,
                                                reinterpret_cast<const uint64_t*>(KF_BARE_INIT_GPA),
                                                (1u << 20) / 8));
    CHECK(sim.boot().panic_code == KF_PANIC_NONE);
  });
}

TEST(BareSim, SmallQueues) {
  DeviceConfig dev;
  dev.queue_num_max = 24;  // not a power of 2: the guest takes 16
  InChild(dev, 0, [](Sim& sim) {
    CHECK(sim.ready());
    for (int q = 0; q < 3; ++q) CHECK(sim.queue_num(q) == 16);
    Host host(sim);
    host.Open(5000);
  });
}

TEST(BareSim, ServesEveryRequest) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Open(5000);

    kf_agent_request r = Req(KF_AGENT_PING);
    r.u.ping.echo = 42;
    host.Request(5000, 1, r);
    host.Run();
    kf_agent_response* p = host.Expect(5000, 1, KF_AGENT_PING);
    CHECK(p->u.ping.echo == 42 && p->u.ping.pings_served == 1);

    r = Req(KF_AGENT_SET_IDENTITY);
    std::strcpy(r.u.set_identity.sandbox_id, "sb-1");
    std::strcpy(r.u.set_identity.hostname, "host-1");
    r.u.set_identity.entropy_len = 40;
    for (int i = 0; i < 40; ++i) r.u.set_identity.entropy[i] = uint8_t(i * 7);
    r.u.set_identity.wall_clock_unix_ns = 1700000000000000000ull;
    host.Request(5000, 2, r);
    host.Request(5000, 3, Req(KF_AGENT_GET_IDENTITY));
    host.Run();
    CHECK(host.Expect(5000, 2, KF_AGENT_SET_IDENTITY)->u.set_identity.identity_sets == 1);
    p = host.Expect(5000, 3, KF_AGENT_GET_IDENTITY);
    CHECK(std::strcmp(p->u.get_identity.sandbox_id, "sb-1") == 0);
    CHECK(std::strcmp(p->u.get_identity.hostname, "host-1") == 0);
    CHECK(p->u.get_identity.wall_clock_unix_ns == 1700000000000000000ull);
    CHECK(p->u.get_identity.identity_sets == 1);

    r = Req(KF_AGENT_RANDOM);
    r.u.random.bytes = 4096;
    host.Request(5000, 4, r);
    r.u.random.bytes = 5;
    host.Request(5000, 5, r);
    host.Run();
    p = host.Expect(5000, 4, KF_AGENT_RANDOM);
    CHECK(p->u.random.len == 4096);
    uint8_t first[8];
    std::memcpy(first, p->u.random.data, 8);
    p = host.Expect(5000, 5, KF_AGENT_RANDOM);
    CHECK(p->u.random.len == 5);
    CHECK(std::memcmp(first, p->u.random.data, 5) != 0);

    r = Req(KF_AGENT_DIRTY_PAGES);
    r.u.dirty_pages = {KF_BARE_INIT_GPA + 0x10000, 3, 0x55};
    host.Request(5000, 6, r);
    r.u.dirty_pages = {KF_BARE_DRIVER_GPA, 1, 0};  // below the init region
    host.Request(5000, 7, r);
    r.u.dirty_pages = {KF_BARE_INIT_GPA + 8, 1, 0};  // unaligned
    host.Request(5000, 8, r);
    r.u.dirty_pages = {kMemSize - 4096, 2, 0};  // past the end
    host.Request(5000, 9, r);
    host.Run();
    CHECK(host.Expect(5000, 6, KF_AGENT_DIRTY_PAGES)->u.dirty_pages.pages == 3);
    CHECK(*reinterpret_cast<uint64_t*>(KF_BARE_INIT_GPA + 0x10000 + 4096) == (0x55ull ^ 2));
    host.ExpectError(5000, 7, KF_AGENT_ERR_BAD_RANGE);
    host.ExpectError(5000, 8, KF_AGENT_ERR_BAD_RANGE);
    host.ExpectError(5000, 9, KF_AGENT_ERR_BAD_RANGE);

    r = Req(KF_AGENT_HASH_RANGE);
    r.u.hash_range = {KF_BARE_INIT_GPA, 4096};
    host.Request(5000, 10, r);
    r.u.hash_range = {KF_BARE_INIT_GPA + 4, 8};
    host.Request(5000, 11, r);
    r.u.hash_range = {kMemSize - 8, 16};
    host.Request(5000, 12, r);
    host.Run();
    CHECK(host.Expect(5000, 10, KF_AGENT_HASH_RANGE)->u.hash_range.hash ==
          kf_hash_words(KF_HASH_SEED, reinterpret_cast<const uint64_t*>(KF_BARE_INIT_GPA), 512));
    host.ExpectError(5000, 11, KF_AGENT_ERR_BAD_ARGUMENT);
    host.ExpectError(5000, 12, KF_AGENT_ERR_BAD_RANGE);

    host.Request(5000, 13, Req(KF_AGENT_GET_STATS));
    host.Run();
    p = host.Expect(5000, 13, KF_AGENT_GET_STATS);
    CHECK(p->u.get_stats.mem_total == kMemSize);
    CHECK(p->u.get_stats.mem_initialised == 1u << 20);
    CHECK(p->u.get_stats.pages_dirtied == 3);
    CHECK(p->u.get_stats.requests_served == 13);

    // Errors: empty body, undecodable payload, entropy too short, Random too big.
    host.Send(5000, kRw, Host::RawFrame(14, KF_AGENT_FRAME_REQUEST, 0, {}));
    host.Send(5000, kRw, Host::RawFrame(15, KF_AGENT_FRAME_REQUEST, 0, {0xff, 0xff}));
    r = Req(KF_AGENT_SET_IDENTITY);
    r.u.set_identity.entropy_len = 16;
    host.Request(5000, 16, r);
    r = Req(KF_AGENT_RANDOM);
    r.u.random.bytes = 4097;
    host.Request(5000, 17, r);
    host.Run();
    host.ExpectError(5000, 14, KF_AGENT_ERR_UNKNOWN_REQUEST);
    host.ExpectError(5000, 15, KF_AGENT_ERR_BAD_MESSAGE);
    host.ExpectError(5000, 16, KF_AGENT_ERR_BAD_ARGUMENT);
    host.ExpectError(5000, 17, KF_AGENT_ERR_BAD_ARGUMENT);
    // Containers are the Linux agent's: valid requests, UNKNOWN_REQUEST here.
    r = Req(KF_AGENT_CREATE_CONTAINER);
    std::strcpy(r.u.create_container.container_id, "c1");
    r.u.create_container.has_process = 1;
    CHECK(KF_AGENT_ARGV_ADD(&r.u.create_container.process.args, "/bin/true") == KF_PB_OK);
    host.Request(5000, 18, r);
    r = Req(KF_AGENT_WAIT_PROCESS);  // not even checked: no container id
    host.Request(5000, 19, r);
    host.Run();
    host.ExpectError(5000, 18, KF_AGENT_ERR_UNKNOWN_REQUEST);
    host.ExpectError(5000, 19, KF_AGENT_ERR_UNKNOWN_REQUEST);
    CHECK(host.conn(5000).control.empty());  // still open, nothing but data
  });
}

TEST(BareSim, ReassemblesFramesAcrossPackets) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Open(5000);
    kf_agent_request r = Req(KF_AGENT_PING);
    std::vector<uint8_t> bytes;
    for (uint32_t s = 1; s <= 3; ++s) {
      r.u.ping.echo = s * 100;
      std::vector<uint8_t> f = Host::Frame(s, r);
      bytes.insert(bytes.end(), f.begin(), f.end());
    }
    // Byte by byte for the first 12 bytes, then the rest in one packet.
    for (size_t i = 0; i < 12; ++i) host.Send(5000, kRw, {bytes[i]});
    host.Send(5000, kRw, std::vector<uint8_t>(bytes.begin() + 12, bytes.end()));
    host.Run();
    for (uint32_t s = 1; s <= 3; ++s)
      CHECK(host.Expect(5000, s, KF_AGENT_PING)->u.ping.echo == s * 100);
    CHECK(host.conn(5000).guest_fwd_cnt == bytes.size());
  });
}

TEST(BareSim, RespectsHostCredit) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.conn(5000).buf_alloc = 1000;
    host.conn(5000).consume = false;
    host.Send(5000, kRequest);
    host.Run();
    kf_agent_request r = Req(KF_AGENT_RANDOM);
    r.u.random.bytes = 4096;
    host.Request(5000, 1, r);
    host.Run();
    Host::Conn& c = host.conn(5000);
    CHECK(c.guest_bytes <= 1000);
    CHECK(!c.control.empty() && c.control.back() == kCreditRequest);
    // The host reads in steps of 700 bytes and says so each time.
    for (int i = 0; i < 20; ++i) {
      c.fwd_cnt = c.guest_bytes > c.fwd_cnt + 700 ? c.fwd_cnt + 700 : c.guest_bytes;
      host.Send(5000, kCreditUpdate);
      host.Run();
    }
    kf_agent_response* p = host.Expect(5000, 0, KF_AGENT_READY);
    (void)p;
    CHECK(host.Expect(5000, 1, KF_AGENT_RANDOM)->u.random.len == 4096);
  });
}

TEST(BareSim, BadFrameGetsErrorThenShutdown) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    for (uint32_t port : {5000u, 5001u, 5002u}) host.Open(port);
    host.Send(5000, kRw, Host::RawFrame(7, KF_AGENT_FRAME_RESPONSE, 0, {}));
    host.Send(5001, kRw, Host::RawFrame(8, KF_AGENT_FRAME_REQUEST, 1, {}));
    std::vector<uint8_t> big =
        Host::RawFrame(9, KF_AGENT_FRAME_REQUEST, 0, std::vector<uint8_t>(40000, 0));
    big.resize(100);  // the header says 40000 bytes (over 32752): refused before the rest comes
    host.Send(5002, kRw, big);
    host.Run();
    host.ExpectError(5000, 7, KF_AGENT_ERR_BAD_FRAME);
    host.ExpectError(5001, 8, KF_AGENT_ERR_BAD_FRAME);
    host.ExpectError(5002, 9, KF_AGENT_ERR_BAD_FRAME);
    for (uint32_t port : {5000u, 5001u, 5002u}) {
      CHECK(host.conn(port).control == std::vector<uint16_t>{kShutdown});
      host.conn(port).control.clear();
    }
    // The guest forgot them: the host's RST gets nothing, data gets RST.
    host.Send(5000, kRst);
    host.Send(5001, kRw, {1, 2, 3});
    host.Run();
    CHECK(host.conn(5000).control.empty());
    CHECK(host.conn(5001).control == std::vector<uint16_t>{kRst});
  });
}

TEST(BareSim, RefusesWhatItDoesNotServe) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Send(6000, kRequest, {}, 0, 1025);  // another port
    host.Send(6001, kRw, {1});               // no connection
    host.Send(6002, kRst);                   // no connection: no answer
    host.Run();
    CHECK(host.conn(6000).control == std::vector<uint16_t>{kRst});
    CHECK(host.conn(6001).control == std::vector<uint16_t>{kRst});
    CHECK(host.conn(6002).control.empty());
    // Sixteen connections fit; the seventeenth is refused until one goes.
    for (uint32_t port = 7000; port < 7016; ++port) host.Open(port);
    host.Connect(7016);
    host.Run();
    CHECK(host.conn(7016).control == std::vector<uint16_t>{kRst});
    host.Send(7000, kRst);
    host.Run();
    host.Open(7016);
  });
}

TEST(BareSim, CreditRequestAndShutdown) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Open(5000);
    host.Send(5000, kCreditRequest);
    host.Run();
    CHECK(host.conn(5000).control == std::vector<uint16_t>{kCreditUpdate});
    // Half close: the request already sent is answered, then a clean
    // SHUTDOWN (an RST could make the host drop replies not yet read).
    kf_agent_request r = Req(KF_AGENT_PING);
    r.u.ping.echo = 9;
    host.Request(5000, 1, r);
    host.Send(5000, kShutdown, {}, 2 /* SEND */);
    host.Run();
    CHECK(host.Expect(5000, 1, KF_AGENT_PING)->u.ping.echo == 9);
    CHECK(host.conn(5000).control == std::vector<uint16_t>{kCreditUpdate, kShutdown});
    // Full close: RST at once.
    host.Open(5001);
    host.Send(5001, kShutdown, {}, 3);
    host.Run();
    CHECK(host.conn(5001).control == std::vector<uint16_t>{kRst});
  });
}

TEST(BareSim, TransportResetDropsConnections) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Open(5000);
    sim.QueueTransportReset();
    host.Run();
    CHECK(host.conn(5000).control.empty());  // no RST for a reset
    host.Send(5000, kRw, {1});
    host.Run();
    CHECK(host.conn(5000).control == std::vector<uint16_t>{kRst});
    host.Open(5000);
    // Spurious wakes are harmless.
    for (int i = 0; i < 3; ++i) host.Run();
    CHECK(sim.from_guest().empty());
  });
}

TEST(BareSim, ResetsADeviceThatNeedsIt) {
  InChild(DeviceConfig{}, 0, [](Sim& sim) {
    Host host(sim);
    host.Open(5000);
    sim.SetNeedsReset();
    host.Run();
    CHECK(sim.boot().device_resets == 1);
    const std::vector<uint32_t> want = {0, 1, 3, 11, 15, 0, 1, 3, 11, 15};
    CHECK(sim.status_writes() == want);
    host.Open(5001);  // served again, by a device set up from scratch
    host.Run();       // a wake with nothing to do does not reset it again
    CHECK(sim.boot().device_resets == 1);
  });
}

TEST(BareSim, PanicsWithDistinctCodes) {
  struct Case {
    DeviceConfig dev;
    uint32_t code;
  };
  std::vector<Case> cases(5);
  cases[0].dev.magic = 0;
  cases[0].code = KF_PANIC_MMIO_MAGIC;
  cases[1].dev.version = 1;
  cases[1].code = KF_PANIC_MMIO_VERSION;
  cases[2].dev.device_id = 1;
  cases[2].code = KF_PANIC_DEVICE_ID;
  cases[3].dev.features = 0;
  cases[3].code = KF_PANIC_NO_VERSION_1;
  cases[4].dev.queue_num_max = 0;
  cases[4].code = KF_PANIC_QUEUE_MISSING;
  for (const Case& c : cases) {
    uint32_t code = c.code;
    InChild(
        c.dev, 0,
        [code](Sim& sim) {
          CHECK(sim.panicked());
          CHECK(!sim.ready());
          CHECK(sim.boot().panic_code == code);
        },
        /*strict=*/false);
  }
}

TEST(BareSim, HostileModeKeepsGoing) {
  InChild(DeviceConfig{}, KF_BOOT_FLAG_HOSTILE, [](Sim& sim) {
    CHECK(sim.ready());
    Host host(sim);
    for (int i = 0; i < 300; ++i) {
      if (i % 10 == 0) host.Send(5000 + i, kRequest);
      CHECK(sim.Run());
    }
    CHECK(sim.waits() == 301);
    CHECK(!sim.violations().empty());
    // It resets the device it broke, but only so often: then it idles.
    CHECK(sim.boot().device_resets > 0);
    CHECK(sim.boot().device_resets <= 64);
    std::fprintf(stderr, "hostile: %zu violations, %llu used entries\n", sim.violations().size(),
                 (unsigned long long)sim.used_pushed());
  });
}

}  // namespace
}  // namespace kf::bare_sim
