// The Linux agent (agent/linux/, kf-agent-linux) run as an ordinary process
// with --listen-unix: the protocol over a Unix socket, spoken here with
// libprotobuf (not the agent's own C codec) and the shared frame header.
// Each test starts its own agent in a private UTS namespace where it can
// get one, so a SetIdentity never renames this machine; the clock is never
// set (--no-set-clock).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/bare/bare_abi.h"
#include "agent/proto/agent_frame.h"
#include "proto/agent.pb.h"
#include "tests/host_linux_agent.h"

namespace {

namespace pb = katafactory::agent::v1;

constexpr uint64_t kBufferMib = 8, kInitMib = 1;
constexpr int kTimeoutMs = 5000;

struct Frame {
  kf_agent_frame_header header{};
  std::string payload;
};

// One connection to the agent: whole frames out, whole frames in.
class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(Conn&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool SendRaw(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  static std::string Encode(uint32_t stream, const std::string& payload, uint8_t type = 1,
                            uint8_t flags = 0) {
    uint8_t h[KF_AGENT_FRAME_HEADER_SIZE];
    // Built by hand: the encoder refuses the bad headers some tests send.
    uint32_t len = static_cast<uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) {
      h[i] = static_cast<uint8_t>(len >> (24 - 8 * i));
      h[4 + i] = static_cast<uint8_t>(stream >> (24 - 8 * i));
    }
    h[8] = type;
    h[9] = flags;
    return std::string(reinterpret_cast<char*>(h), sizeof h) + payload;
  }

  bool Send(uint32_t stream, const pb::Request& req) {
    return SendRaw(Encode(stream, req.SerializeAsString()));
  }

  // Reads exactly n bytes; false on EOF, error or timeout.
  bool RecvAll(void* data, size_t n) {
    auto* p = static_cast<uint8_t*>(data);
    while (n > 0) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, kTimeoutMs) <= 0) return false;
      ssize_t r = recv(fd_, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  std::optional<Frame> RecvFrame() {
    uint8_t h[KF_AGENT_FRAME_HEADER_SIZE];
    if (!RecvAll(h, sizeof h)) return std::nullopt;
    Frame f;
    if (kf_agent_frame_header_decode(h, &f.header) != KF_PB_OK) return std::nullopt;
    f.payload.resize(f.header.length);
    if (!RecvAll(f.payload.data(), f.payload.size())) return std::nullopt;
    return f;
  }

  // Reads one response frame on `stream` and parses it (a failure is a test
  // failure and an empty Response).
  pb::Response Recv(uint32_t stream) {
    pb::Response resp;
    auto f = RecvFrame();
    EXPECT_TRUE(f.has_value()) << "no frame (stream " << stream << ")";
    if (!f) return resp;
    EXPECT_EQ(f->header.type, KF_AGENT_FRAME_RESPONSE);
    EXPECT_EQ(f->header.stream_id, stream);
    EXPECT_TRUE(resp.ParseFromString(f->payload));
    return resp;
  }

  pb::Response Call(const pb::Request& req) {
    uint32_t stream = next_stream_++;
    EXPECT_TRUE(Send(stream, req));
    return Recv(stream);
  }

  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // True when the agent closed the connection (EOF) within the timeout.
  bool ClosedByPeer() {
    char c;
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, kTimeoutMs) <= 0) return false;
    return recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_;
  uint32_t next_stream_ = 1;
};

pb::Request Ping(uint64_t echo) {
  pb::Request r;
  r.mutable_ping()->set_echo(echo);
  return r;
}

pb::Request GetStats() {
  pb::Request r;
  r.mutable_get_stats();
  return r;
}

pb::Request RandomReq(uint32_t bytes) {
  pb::Request r;
  r.mutable_random()->set_bytes(bytes);
  return r;
}

pb::Request DirtyPages(uint64_t gpa, uint64_t pages, uint64_t value) {
  pb::Request r;
  auto* d = r.mutable_dirty_pages();
  d->set_gpa(gpa);
  d->set_pages(pages);
  d->set_value(value);
  return r;
}

pb::Request HashRange(uint64_t gpa, uint64_t bytes) {
  pb::Request r;
  r.mutable_hash_range()->set_gpa(gpa);
  r.mutable_hash_range()->set_bytes(bytes);
  return r;
}

std::string Entropy(size_t n) {
  std::random_device rd;
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rd());
  return s;
}

class LinuxAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-linux-agent-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::vector<std::string> args = {"--buffer-mib", std::to_string(kBufferMib),
                                     "--init-mib", std::to_string(kInitMib),
                                     "--container-rootfs", ContainerRootfs()};
    for (const auto& a : ExtraAgentArgs()) args.push_back(a);
    ASSERT_TRUE(agent_.Start(dir_, args));
    sock_ = agent_.sock();
  }

  void TearDown() override {
    agent_.ExpectAliveAndStop();
    if (HasFailure()) std::fprintf(stderr, "agent log:\n%s", Log().c_str());
    unlink(sock_.c_str());
    unlink(agent_.log_path().c_str());
    std::error_code ec;  // containers' mount points: their mounts died with them
    std::filesystem::remove_all(agent_.state_dir(), ec);
    rmdir(dir_.c_str());
  }

  // The rootfs containers get when a request names none (a test may set
  // it before SetUp starts the agent; /nonexistent by default).
  virtual std::string ContainerRootfs() const { return "/nonexistent/kf-rootfs"; }
  virtual std::vector<std::string> ExtraAgentArgs() const { return {}; }

  std::string Log() const { return agent_.Log(); }

  // Connects (waiting for the agent to listen) and reads its Ready frame.
  Conn Connect(pb::Ready* ready = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    int fd = -1;
    for (;;) {
      fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_.c_str());
      if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
      close(fd);
      fd = -1;
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_GE(fd, 0) << "cannot connect to " << sock_;
    Conn c(fd);
    if (fd < 0) return c;
    auto f = c.RecvFrame();
    EXPECT_TRUE(f.has_value()) << "no Ready frame";
    if (!f) return c;
    EXPECT_EQ(f->header.stream_id, KF_AGENT_STREAM_AGENT);
    EXPECT_EQ(f->header.type, KF_AGENT_FRAME_RESPONSE);
    pb::Response r;
    EXPECT_TRUE(r.ParseFromString(f->payload));
    EXPECT_TRUE(r.has_ready()) << r.ShortDebugString();
    if (ready != nullptr) *ready = r.ready();
    return c;
  }

  kf_test::HostLinuxAgent agent_;
  std::string dir_, sock_;
};

uint64_t HostMemTotal() {
  struct sysinfo si {};
  sysinfo(&si);
  return static_cast<uint64_t>(si.totalram) * si.mem_unit;
}

// The buffer's start-up contents: kf_init_pattern of each word's offset.
std::vector<uint64_t> InitPattern(uint64_t bytes) {
  std::vector<uint64_t> words(bytes / 8);
  for (size_t i = 0; i < words.size(); ++i) words[i] = kf_init_pattern(i * 8);
  return words;
}

TEST_F(LinuxAgentTest, ReadyComesFirstAndDescribesTheAgent) {
  pb::Ready ready;
  Conn c = Connect(&ready);
  EXPECT_EQ(ready.agent_version(), 1u);
  EXPECT_EQ(ready.guest_kind(), pb::GUEST_KIND_LINUX);
  EXPECT_EQ(ready.mem_total(), HostMemTotal());  // same kernel: sysinfo's totalram
  EXPECT_EQ(ready.init_bytes(), kInitMib << 20);
  auto words = InitPattern(kInitMib << 20);
  EXPECT_EQ(ready.init_hash(), kf_hash_words(KF_HASH_SEED, words.data(), words.size()));
  EXPECT_EQ(ready.boot_ns(), 0u);  // not PID 1: unknown
}

TEST_F(LinuxAgentTest, PingEchoes) {
  Conn c = Connect();
  for (uint64_t i = 1; i <= 3; ++i) {
    pb::Response r = c.Call(Ping(0xfeedface00000000ull + i));
    ASSERT_TRUE(r.has_ping()) << r.ShortDebugString();
    EXPECT_EQ(r.ping().echo(), 0xfeedface00000000ull + i);
    EXPECT_EQ(r.ping().pings_served(), i);
  }
}

TEST_F(LinuxAgentTest, SetIdentitySucceedsOrNamesTheStepThatFailed) {
  Conn c = Connect();
  pb::Request req;
  auto* id = req.mutable_set_identity();
  id->set_sandbox_id("sandbox-0001");
  id->set_hostname("kf-clone-1");
  id->set_entropy(Entropy(64));
  id->set_wall_clock_unix_ns(1700000000123456789ull);
  pb::Response r = c.Call(req);
  if (r.has_set_identity()) {
    EXPECT_EQ(r.set_identity().identity_sets(), 1u);
  } else {
    // Without CAP_SYS_ADMIN: RNDADDENTROPY / RNDRESEEDCRNG / sethostname.
    ASSERT_TRUE(r.has_error()) << r.ShortDebugString();
    EXPECT_EQ(r.error().code(), pb::ERROR_CODE_INTERNAL);
    const std::string& m = r.error().message();
    EXPECT_EQ(m.rfind("set_identity: ", 0), 0u) << m;
    EXPECT_TRUE(m.find("RNDADDENTROPY") != std::string::npos ||
                m.find("RNDRESEEDCRNG") != std::string::npos ||
                m.find("sethostname") != std::string::npos)
        << m;
    std::printf("SetIdentity answered (no privilege here): %s\n", m.c_str());
  }
  // Recorded either way, and the agent serves on.
  pb::Request get;
  get.mutable_get_identity();
  pb::Response g = c.Call(get);
  ASSERT_TRUE(g.has_get_identity()) << g.ShortDebugString();
  EXPECT_EQ(g.get_identity().sandbox_id(), "sandbox-0001");
  EXPECT_EQ(g.get_identity().hostname(), "kf-clone-1");
  EXPECT_EQ(g.get_identity().wall_clock_unix_ns(), 1700000000123456789ull);
  EXPECT_EQ(g.get_identity().identity_sets(), 1u);
  EXPECT_TRUE(c.Call(Ping(5)).has_ping());

  id->set_entropy(Entropy(16));  // under the protocol's 32 bytes
  pb::Response bad = c.Call(req);
  ASSERT_TRUE(bad.has_error()) << bad.ShortDebugString();
  EXPECT_EQ(bad.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
}

TEST_F(LinuxAgentTest, GetStatsIsSane) {
  Conn c = Connect();
  c.Call(Ping(1));
  pb::Response r = c.Call(GetStats());
  ASSERT_TRUE(r.has_get_stats()) << r.ShortDebugString();
  EXPECT_EQ(r.get_stats().mem_total(), HostMemTotal());
  EXPECT_EQ(r.get_stats().mem_initialised(), kInitMib << 20);
  EXPECT_EQ(r.get_stats().pages_dirtied(), 0u);
  EXPECT_EQ(r.get_stats().requests_served(), 2u);  // the Ping and this one
}

TEST_F(LinuxAgentTest, DirtyPagesWritesTheBufferAndIsCounted) {
  Conn c = Connect();
  constexpr uint64_t kPages = 16, kValue = 0x1234, kGpa = 64 << 12;
  pb::Response before = c.Call(HashRange(kGpa, kPages << 12));
  ASSERT_TRUE(before.has_hash_range()) << before.ShortDebugString();

  pb::Response d = c.Call(DirtyPages(kGpa, kPages, kValue));
  ASSERT_TRUE(d.has_dirty_pages()) << d.ShortDebugString();
  EXPECT_EQ(d.dirty_pages().pages(), kPages);
  pb::Response s = c.Call(GetStats());
  ASSERT_TRUE(s.has_get_stats());
  EXPECT_EQ(s.get_stats().pages_dirtied(), kPages);

  // The same writes here (the range lies inside the initialised 1 MiB).
  auto words = InitPattern(kInitMib << 20);
  for (uint64_t i = 0; i < kPages; ++i)
    for (uint64_t w = 0; w < 512; w += 64) words[(kGpa >> 3) + i * 512 + w] = kValue ^ (i << 1) ^ w;
  pb::Response after = c.Call(HashRange(kGpa, kPages << 12));
  ASSERT_TRUE(after.has_hash_range());
  EXPECT_NE(after.hash_range().hash(), before.hash_range().hash());
  EXPECT_EQ(after.hash_range().hash(),
            kf_hash_words(KF_HASH_SEED, words.data() + (kGpa >> 3), kPages * 512));

  // Outside the buffer, or not page-aligned: BAD_RANGE, nothing counted.
  for (const pb::Request& bad : {DirtyPages((kBufferMib << 20) - 4096, 2, 1), DirtyPages(100, 1, 1),
                                 DirtyPages(0, ~0ull, 1)}) {
    pb::Response e = c.Call(bad);
    ASSERT_TRUE(e.has_error()) << bad.ShortDebugString();
    EXPECT_EQ(e.error().code(), pb::ERROR_CODE_BAD_RANGE);
  }
  pb::Response e = c.Call(HashRange(4, 8));
  ASSERT_TRUE(e.has_error());
  EXPECT_EQ(e.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
  e = c.Call(HashRange(kBufferMib << 20, 8));
  ASSERT_TRUE(e.has_error());
  EXPECT_EQ(e.error().code(), pb::ERROR_CODE_BAD_RANGE);
  s = c.Call(GetStats());
  EXPECT_EQ(s.get_stats().pages_dirtied(), kPages);
}

TEST_F(LinuxAgentTest, RandomHasTheLengthAskedAndDiffers) {
  Conn c = Connect();
  pb::Response a = c.Call(RandomReq(4096)), b = c.Call(RandomReq(4096));
  ASSERT_TRUE(a.has_random() && b.has_random()) << a.ShortDebugString();
  EXPECT_EQ(a.random().data().size(), 4096u);
  EXPECT_EQ(b.random().data().size(), 4096u);
  EXPECT_NE(a.random().data(), b.random().data());
  pb::Response small = c.Call(RandomReq(7));
  ASSERT_TRUE(small.has_random());
  EXPECT_EQ(small.random().data().size(), 7u);
  pb::Response big = c.Call(RandomReq(4097));
  ASSERT_TRUE(big.has_error());
  EXPECT_EQ(big.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
}

pb::Request ReadFileReq(const std::string& path, uint32_t max_bytes) {
  pb::Request r;
  r.mutable_read_file()->set_path(path);
  r.mutable_read_file()->set_max_bytes(max_bytes);
  return r;
}

TEST_F(LinuxAgentTest, ReadFileReturnsTheHeadAndTheSize) {
  char path[] = "/tmp/kf-read-file-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string content(10000, 'x');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  close(fd);
  Conn c = Connect();
  pb::Response r = c.Call(ReadFileReq(path, 100));
  ASSERT_TRUE(r.has_read_file()) << r.ShortDebugString();
  EXPECT_EQ(r.read_file().data(), content.substr(0, 100));
  EXPECT_EQ(r.read_file().size(), content.size());
  EXPECT_FALSE(r.read_file().dax());  // /tmp is no DAX mount
  // No size from stat (a /proc file): the size is what reading to the end gave.
  r = c.Call(ReadFileReq("/proc/self/cmdline", 4096));
  ASSERT_TRUE(r.has_read_file()) << r.ShortDebugString();
  EXPECT_EQ(r.read_file().size(), r.read_file().data().size());
  EXPECT_NE(r.read_file().data().find("kf-agent-linux"), std::string::npos);

  pb::Response missing = c.Call(ReadFileReq("/nonexistent/kf", 16));
  ASSERT_TRUE(missing.has_error());
  EXPECT_EQ(missing.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
  EXPECT_NE(missing.error().message().find("No such file"), std::string::npos)
      << missing.error().message();
  pb::Response relative = c.Call(ReadFileReq("etc/passwd", 16));
  ASSERT_TRUE(relative.has_error());
  EXPECT_EQ(relative.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
  pb::Response too_much = c.Call(ReadFileReq(path, 4097));
  ASSERT_TRUE(too_much.has_error());
  EXPECT_EQ(too_much.error().code(), pb::ERROR_CODE_BAD_ARGUMENT);
  // The connection still serves.
  EXPECT_TRUE(c.Call(ReadFileReq(path, 1)).has_read_file());
  unlink(path);
}

TEST_F(LinuxAgentTest, BadPayloadAndUnknownRequestAreAnsweredAndTheConnectionStays) {
  Conn c = Connect();
  ASSERT_TRUE(c.SendRaw(Conn::Encode(9, std::string("\xff\xff\xff", 3))));
  pb::Response r = c.Recv(9);
  ASSERT_TRUE(r.has_error()) << r.ShortDebugString();
  EXPECT_EQ(r.error().code(), pb::ERROR_CODE_BAD_MESSAGE);
  ASSERT_TRUE(c.SendRaw(Conn::Encode(10, "")));  // a Request with no body
  r = c.Recv(10);
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code(), pb::ERROR_CODE_UNKNOWN_REQUEST);
  EXPECT_TRUE(c.Call(Ping(3)).has_ping());
}

TEST_F(LinuxAgentTest, MalformedFrameClosesOnlyThatConnection) {
  struct Case {
    const char* what;
    std::string bytes;
  };
  const Case cases[] = {
      {"flags", Conn::Encode(7, Ping(1).SerializeAsString(), 1, 0x80)},
      {"type", Conn::Encode(7, Ping(1).SerializeAsString(), 2, 0)},
      {"length", Conn::Encode(7, std::string(40000, '\0'))},  // over the 32752 a request may have
  };
  Conn other = Connect();
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    Conn bad = Connect();
    ASSERT_TRUE(bad.SendRaw(k.bytes.substr(0, KF_AGENT_FRAME_HEADER_SIZE + 16)));
    pb::Response r = bad.Recv(7);
    ASSERT_TRUE(r.has_error()) << r.ShortDebugString();
    EXPECT_EQ(r.error().code(), pb::ERROR_CODE_BAD_FRAME);
    EXPECT_TRUE(bad.ClosedByPeer());
    pb::Response p = other.Call(Ping(42));
    ASSERT_TRUE(p.has_ping());
    EXPECT_EQ(p.ping().echo(), 42u);
  }
  Conn fresh = Connect();
  EXPECT_TRUE(fresh.Call(Ping(1)).has_ping());
  EXPECT_NE(Log().find("malformed frame"), std::string::npos) << Log();
}

TEST_F(LinuxAgentTest, FramesSplitAndPipelinedAreServedInOrder) {
  Conn c = Connect();
  std::string all;
  for (uint32_t s = 1; s <= 5; ++s) all += Conn::Encode(s, Ping(100 + s).SerializeAsString());
  for (char ch : all) ASSERT_TRUE(c.SendRaw(std::string(1, ch)));  // byte by byte
  for (uint32_t s = 1; s <= 5; ++s) {
    pb::Response r = c.Recv(s);
    ASSERT_TRUE(r.has_ping());
    EXPECT_EQ(r.ping().echo(), 100 + s);
  }
  std::string big;  // many Random replies queued before the client reads any
  for (uint32_t s = 1; s <= 40; ++s) big += Conn::Encode(s, RandomReq(4096).SerializeAsString());
  ASSERT_TRUE(c.SendRaw(big));
  for (uint32_t s = 1; s <= 40; ++s) {
    pb::Response r = c.Recv(s);
    ASSERT_TRUE(r.has_random());
    EXPECT_EQ(r.random().data().size(), 4096u);
  }
}

TEST_F(LinuxAgentTest, ServesThirtyTwoConnectionsAtOnce) {
  constexpr int kConns = 32, kCalls = 20;
  std::vector<Conn> conns;
  for (int i = 0; i < kConns; ++i) conns.push_back(Connect());
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kConns; ++i) {
    threads.emplace_back([&, i] {
      Conn& c = conns[i];
      int ok = 0;
      for (int k = 0; k < kCalls; ++k) {
        uint64_t echo = static_cast<uint64_t>(i) << 32 | static_cast<uint64_t>(k);
        pb::Response r = c.Call(k % 5 == 4 ? RandomReq(512) : Ping(echo));
        if (k % 5 == 4 ? r.random().data().size() == 512 : r.ping().echo() == echo) ++ok;
      }
      if (ok == kCalls) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kConns);
  pb::Response s = conns[0].Call(GetStats());
  EXPECT_EQ(s.get_stats().requests_served(), uint64_t{kConns} * kCalls + 1);
}


// ---- Containers (issue #7) ------------------------------------------------
// A busybox rootfs built here (busybox-static's /bin/busybox and applet
// links) stands for the guest's /rootfs; the agent makes each container
// an overlay of it with a tmpfs upper layer, in new mount, PID, UTS and IPC
// namespaces. Needs root (namespaces, mounts), as the guest's agent has.

const char* const kBusybox = "/bin/busybox";

class ContainerTest : public LinuxAgentTest {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access(kBusybox, X_OK) != 0) return;
    char tmpl[] = "/tmp/kf-container-rootfs.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    rootfs_ = tmpl;
    namespace fs = std::filesystem;
    for (const char* d : {"bin", "etc", "tmp", "proc", "sys", "dev", "root"})
      fs::create_directories(rootfs_ + "/" + d);
    fs::copy_file(kBusybox, rootfs_ + "/bin/busybox");
    for (const char* applet : {"sh", "echo", "cat", "ls", "sleep", "hostname", "ps", "touch",
                               "test", "head", "wc", "id", "pwd", "env", "grep", "true"})
      fs::create_symlink("busybox", rootfs_ + "/bin/" + applet);
    std::ofstream(rootfs_ + "/etc/image-file") << "from the image\n";
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    if (!rootfs_.empty()) std::filesystem::remove_all(rootfs_, ec);
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, overlay, pivot_root)";
    if (rootfs_.empty()) GTEST_SKIP() << "no " << kBusybox << " to build a rootfs from";
    LinuxAgentTest::SetUp();
  }

  std::string ContainerRootfs() const override { return rootfs_; }

  static std::string rootfs_;
};

std::string ContainerTest::rootfs_;

pb::Process Proc(const std::vector<std::string>& args) {
  pb::Process p;
  for (const auto& a : args) p.add_args(a);
  p.add_env("PATH=/bin");
  return p;
}

pb::Request Create(const std::string& id, const std::vector<std::string>& args,
                   const std::string& rootfs = "") {
  pb::Request r;
  auto* c = r.mutable_create_container();
  c->set_container_id(id);
  c->set_rootfs(rootfs);
  *c->mutable_process() = Proc(args);
  return r;
}

pb::Request Start(const std::string& id) {
  pb::Request r;
  r.mutable_start_container()->set_container_id(id);
  return r;
}

pb::Request Exec(const std::string& id, const std::string& exec_id,
                 const std::vector<std::string>& args) {
  pb::Request r;
  r.mutable_exec_process()->set_container_id(id);
  r.mutable_exec_process()->set_exec_id(exec_id);
  *r.mutable_exec_process()->mutable_process() = Proc(args);
  return r;
}

pb::Request Wait(const std::string& id, const std::string& exec_id, uint32_t timeout_ms) {
  pb::Request r;
  r.mutable_wait_process()->set_container_id(id);
  r.mutable_wait_process()->set_exec_id(exec_id);
  r.mutable_wait_process()->set_timeout_ms(timeout_ms);
  return r;
}

pb::Request Signal(const std::string& id, const std::string& exec_id, uint32_t sig) {
  pb::Request r;
  r.mutable_signal_process()->set_container_id(id);
  r.mutable_signal_process()->set_exec_id(exec_id);
  r.mutable_signal_process()->set_signal(sig);
  return r;
}

pb::Request Read(const std::string& id, const std::string& exec_id, bool err, uint32_t wait_ms) {
  pb::Request r;
  auto* q = err ? r.mutable_read_stderr() : r.mutable_read_stdout();
  q->set_container_id(id);
  q->set_exec_id(exec_id);
  q->set_wait_ms(wait_ms);
  return r;
}

pb::Request WriteIn(const std::string& id, const std::string& exec_id, const std::string& data) {
  pb::Request r;
  r.mutable_write_stdin()->set_container_id(id);
  r.mutable_write_stdin()->set_exec_id(exec_id);
  r.mutable_write_stdin()->set_data(data);
  return r;
}

pb::Request CloseIn(const std::string& id, const std::string& exec_id) {
  pb::Request r;
  r.mutable_close_stdin()->set_container_id(id);
  r.mutable_close_stdin()->set_exec_id(exec_id);
  return r;
}

pb::Request Remove(const std::string& id) {
  pb::Request r;
  r.mutable_remove_container()->set_container_id(id);
  return r;
}

struct Outcome {
  std::string out, err;
  pb::WaitProcessReply wait;
};

// Reads stdout and stderr to their ends, then waits for the exit.
Outcome Drain(Conn& c, const std::string& id, const std::string& exec_id) {
  Outcome o;
  bool out_eof = false, err_eof = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((!out_eof || !err_eof) && std::chrono::steady_clock::now() < deadline) {
    if (!out_eof) {
      pb::Response r = c.Call(Read(id, exec_id, false, 200));
      EXPECT_TRUE(r.has_read_stdout()) << r.ShortDebugString();
      if (!r.has_read_stdout()) break;
      o.out += r.read_stdout().data();
      out_eof = r.read_stdout().eof();
    }
    if (!err_eof) {
      pb::Response r = c.Call(Read(id, exec_id, true, out_eof ? 200 : 0));
      EXPECT_TRUE(r.has_read_stderr()) << r.ShortDebugString();
      if (!r.has_read_stderr()) break;
      o.err += r.read_stderr().data();
      err_eof = r.read_stderr().eof();
    }
  }
  EXPECT_TRUE(out_eof && err_eof) << "output did not end";
  pb::Response w = c.Call(Wait(id, exec_id, 5000));
  EXPECT_TRUE(w.has_wait_process()) << w.ShortDebugString();
  o.wait = w.wait_process();
  EXPECT_TRUE(o.wait.exited()) << "still running after 5 s";
  return o;
}

// Create + Start: the pid, or 0 (a test failure).
uint32_t RunContainer(Conn& c, const std::string& id, const std::vector<std::string>& args) {
  pb::Response r = c.Call(Create(id, args));
  EXPECT_TRUE(r.has_create_container()) << r.ShortDebugString();
  if (!r.has_create_container()) return 0;
  EXPECT_GT(r.create_container().pid(), 0u);
  pb::Response s = c.Call(Start(id));
  EXPECT_TRUE(s.has_start_container()) << s.ShortDebugString();
  EXPECT_EQ(s.start_container().pid(), r.create_container().pid());
  return s.start_container().pid();
}

void ExpectError(const pb::Response& r, pb::ErrorCode code, const std::string& text) {
  ASSERT_TRUE(r.has_error()) << r.ShortDebugString();
  EXPECT_EQ(r.error().code(), code) << r.error().message();
  EXPECT_NE(r.error().message().find(text), std::string::npos) << r.error().message();
}

TEST_F(ContainerTest, EchoHelloPrintsHelloAndExitsZero) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "hello", {"echo", "hello"}), 0u);
  Outcome o = Drain(c, "hello", "");
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_EQ(o.err, "");
  EXPECT_EQ(o.wait.exit_code(), 0);
  EXPECT_EQ(o.wait.signal(), 0);
  EXPECT_TRUE(c.Call(Remove("hello")).has_remove_container());
  // Gone: its id is free again, and unknown now.
  ExpectError(c.Call(Wait("hello", "", 0)), pb::ERROR_CODE_NOT_FOUND, "no such container");
}

TEST_F(ContainerTest, ExitCodeAndStderrComeBack) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "seven", {"sh", "-c", "echo to-stderr >&2; exit 7"}), 0u);
  Outcome o = Drain(c, "seven", "");
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "to-stderr\n");
  EXPECT_EQ(o.wait.exit_code(), 7);
  EXPECT_TRUE(c.Call(Remove("seven")).has_remove_container());
}

TEST_F(ContainerTest, StdinReachesTheProcess) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "cat", {"cat"}), 0u);
  pb::Response w = c.Call(WriteIn("cat", "", "ping over stdin\n"));
  ASSERT_TRUE(w.has_write_stdin()) << w.ShortDebugString();
  EXPECT_EQ(w.write_stdin().len(), 16u);
  pb::Response r = c.Call(Read("cat", "", false, 2000));  // echoed back before stdin closes
  ASSERT_TRUE(r.has_read_stdout()) << r.ShortDebugString();
  EXPECT_EQ(r.read_stdout().data(), "ping over stdin\n");
  EXPECT_FALSE(r.read_stdout().eof());
  pb::Response still = c.Call(Wait("cat", "", 100));  // cat waits for more input
  ASSERT_TRUE(still.has_wait_process());
  EXPECT_FALSE(still.wait_process().exited());
  EXPECT_TRUE(c.Call(CloseIn("cat", "")).has_close_stdin());
  Outcome o = Drain(c, "cat", "");
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.wait.exit_code(), 0);
  ExpectError(c.Call(WriteIn("cat", "", "late")), pb::ERROR_CODE_FAILED_PRECONDITION,
              "stdin is closed");
  EXPECT_TRUE(c.Call(Remove("cat")).has_remove_container());
}

// More output than the pipe and the agent's ring hold: the process blocks
// until the host reads, and every byte arrives.
TEST_F(ContainerTest, LargeOutputIsNeitherLostNorUnbounded) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "big", {"head", "-c", "300000", "/dev/zero"}), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  pb::Response w = c.Call(Wait("big", "", 0));
  ASSERT_TRUE(w.has_wait_process());
  EXPECT_FALSE(w.wait_process().exited()) << "should be blocked writing";
  Outcome o = Drain(c, "big", "");
  EXPECT_EQ(o.out.size(), 300000u);
  EXPECT_EQ(o.out.find_first_not_of('\0'), std::string::npos);
  EXPECT_EQ(o.wait.exit_code(), 0);
}

// Two containers: separate files (the overlay's upper layers), processes
// (PID namespaces) and hostnames; nothing written reaches the image.
TEST_F(ContainerTest, ContainersAreIsolatedAndNeverWriteTheImage) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "a", {"sh", "-c",
                         "echo a > /a-was-here; echo changed > /etc/image-file; hostname; "
                         "echo ready; exec sleep 60"}),
            0u);
  std::string out;
  for (int i = 0; i < 50 && out.find("ready\n") == std::string::npos; ++i) {
    pb::Response r = c.Call(Read("a", "", false, 200));
    ASSERT_TRUE(r.has_read_stdout()) << r.ShortDebugString();
    out += r.read_stdout().data();
  }
  EXPECT_EQ(out, "a\nready\n");  // hostname = the container id
  EXPECT_FALSE(std::filesystem::exists(rootfs_ + "/a-was-here"));
  std::ifstream image(rootfs_ + "/etc/image-file");
  std::string line;
  std::getline(image, line);
  EXPECT_EQ(line, "from the image");

  ASSERT_NE(RunContainer(c, "b", {"sh", "-c",
                         "test -e /a-was-here && echo sees-a; cat /etc/image-file; hostname; "
                         "echo pid $$; ps -o comm"}),
            0u);
  Outcome b = Drain(c, "b", "");
  EXPECT_EQ(b.wait.exit_code(), 0) << b.err;
  EXPECT_EQ(b.out.find("sees-a"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("from the image\nb\npid 1\n"), std::string::npos) << b.out;
  EXPECT_EQ(b.out.find("sleep"), std::string::npos) << "b sees a's processes:\n" << b.out;

  // ExecProcess joins a's namespaces: its files, its processes.
  pb::Response e = c.Call(Exec("a", "look", {"sh", "-c", "cat /a-was-here /etc/image-file; ps -o comm"}));
  ASSERT_TRUE(e.has_exec_process()) << e.ShortDebugString();
  Outcome look = Drain(c, "a", "look");
  EXPECT_EQ(look.wait.exit_code(), 0) << look.err;
  EXPECT_NE(look.out.find("a\nchanged\n"), std::string::npos) << look.out;
  EXPECT_NE(look.out.find("sleep"), std::string::npos) << look.out;
  // Once its exit and output were read, an exec's record is gone.
  ExpectError(c.Call(Wait("a", "look", 0)), pb::ERROR_CODE_NOT_FOUND, "look");

  pb::Response k = c.Call(Signal("a", "", SIGKILL));
  ASSERT_TRUE(k.has_signal_process()) << k.ShortDebugString();
  pb::Response w = c.Call(Wait("a", "", 5000));
  ASSERT_TRUE(w.has_wait_process()) << w.ShortDebugString();
  EXPECT_TRUE(w.wait_process().exited());
  EXPECT_EQ(w.wait_process().signal(), SIGKILL);
  EXPECT_TRUE(c.Call(Remove("a")).has_remove_container());
  EXPECT_TRUE(c.Call(Remove("b")).has_remove_container());
  EXPECT_FALSE(std::filesystem::exists(rootfs_ + "/a-was-here"));
}

// A wait parks only its own connection: another is served meanwhile, and
// the wait ends at the exit, not at its timeout.
TEST_F(ContainerTest, WaitsAreAnsweredAtTheExitOrTheTimeout) {
  Conn c = Connect(), other = Connect();
  ASSERT_NE(RunContainer(c, "sleeper", {"sleep", "60"}), 0u);
  auto t0 = std::chrono::steady_clock::now();
  pb::Response w = c.Call(Wait("sleeper", "", 300));
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(w.has_wait_process()) << w.ShortDebugString();
  EXPECT_FALSE(w.wait_process().exited());
  EXPECT_GE(waited, std::chrono::milliseconds(280));

  ASSERT_TRUE(c.Send(100, Wait("sleeper", "", 5000)));  // parked
  EXPECT_TRUE(other.Call(Ping(7)).has_ping());
  pb::Response k = other.Call(Signal("sleeper", "", SIGKILL));
  ASSERT_TRUE(k.has_signal_process()) << k.ShortDebugString();
  t0 = std::chrono::steady_clock::now();
  pb::Response done = c.Recv(100);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ASSERT_TRUE(done.has_wait_process()) << done.ShortDebugString();
  EXPECT_TRUE(done.wait_process().exited());
  EXPECT_EQ(done.wait_process().signal(), SIGKILL);
  // Signalling the dead: a clear error, and the agent serves on.
  ExpectError(c.Call(Signal("sleeper", "", SIGTERM)), pb::ERROR_CODE_FAILED_PRECONDITION,
              "has exited");
  EXPECT_TRUE(c.Call(Remove("sleeper")).has_remove_container());

  // A peer that stops writing still gets the answer to its parked wait.
  ASSERT_NE(RunContainer(other, "half", {"sleep", "60"}), 0u);
  ASSERT_TRUE(c.Send(200, Wait("half", "", 300)));
  c.ShutdownWrite();
  pb::Response late = c.Recv(200);
  ASSERT_TRUE(late.has_wait_process()) << late.ShortDebugString();
  EXPECT_FALSE(late.wait_process().exited());
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_TRUE(other.Call(Remove("half")).has_remove_container());
}

TEST_F(ContainerTest, BadInputGetsClearErrorsAndTheAgentServesOn) {
  Conn c = Connect();
  ExpectError(c.Call(Create("nofs", {"true"}, "/nonexistent/rootfs")), pb::ERROR_CODE_NOT_FOUND,
              "rootfs /nonexistent/rootfs: No such file or directory");
  ExpectError(c.Call(Start("nofs")), pb::ERROR_CODE_NOT_FOUND, "no such container");

  // A command that does not exist: StartContainer says so (ENOENT from
  // exec), and the process is reported as exited 127.
  pb::Response r = c.Call(Create("nocmd", {"/bin/no-such-command"}));
  ASSERT_TRUE(r.has_create_container()) << r.ShortDebugString();
  ExpectError(c.Call(Start("nocmd")), pb::ERROR_CODE_NOT_FOUND,
              "exec /bin/no-such-command: No such file or directory");
  pb::Response w = c.Call(Wait("nocmd", "", 1000));
  ASSERT_TRUE(w.has_wait_process()) << w.ShortDebugString();
  EXPECT_TRUE(w.wait_process().exited());
  EXPECT_EQ(w.wait_process().exit_code(), 127);
  ExpectError(c.Call(Signal("nocmd", "", SIGTERM)), pb::ERROR_CODE_FAILED_PRECONDITION,
              "has exited");
  ExpectError(c.Call(Start("nocmd")), pb::ERROR_CODE_FAILED_PRECONDITION, "exited");
  ExpectError(c.Call(Exec("nocmd", "e1", {"true"})), pb::ERROR_CODE_FAILED_PRECONDITION,
              "not running");
  EXPECT_TRUE(c.Call(Remove("nocmd")).has_remove_container());

  ASSERT_NE(RunContainer(c, "live", {"sleep", "60"}), 0u);
  ExpectError(c.Call(Create("live", {"true"})), pb::ERROR_CODE_ALREADY_EXISTS, "exists");
  ExpectError(c.Call(Exec("live", "e1", {"no-such-tool"})), pb::ERROR_CODE_NOT_FOUND,
              "exec no-such-tool: No such file or directory");
  ASSERT_TRUE(c.Call(Exec("live", "e2", {"sleep", "60"})).has_exec_process());
  ExpectError(c.Call(Exec("live", "e2", {"true"})), pb::ERROR_CODE_ALREADY_EXISTS, "e2");
  ExpectError(c.Call(Wait("live", "e9", 0)), pb::ERROR_CODE_NOT_FOUND, "e9");
  ExpectError(c.Call(Read("ghost", "", false, 0)), pb::ERROR_CODE_NOT_FOUND, "no such container");
  ExpectError(c.Call(Signal("live", "", 0)), pb::ERROR_CODE_BAD_ARGUMENT, "signal");
  ExpectError(c.Call(Create("bad/id", {"true"})), pb::ERROR_CODE_BAD_ARGUMENT, "container_id");

  pb::Request tty = Create("tty", {"sh"});
  tty.mutable_create_container()->mutable_process()->set_terminal(true);
  ExpectError(c.Call(tty), pb::ERROR_CODE_UNSUPPORTED, "terminal");
  pb::Request userns = Create("userns", {"sh"});
  userns.mutable_create_container()->add_namespaces("user");
  ExpectError(c.Call(userns), pb::ERROR_CODE_UNSUPPORTED, "user");
  pb::Request escape = Create("escape", {"true"});
  auto* m = escape.mutable_create_container()->add_mounts();
  m->set_destination("/bin/sh/x");  // under a file of the image
  m->set_type("tmpfs");
  ExpectError(c.Call(escape), pb::ERROR_CODE_BAD_ARGUMENT, "mkdir");

  // Removing a running container kills what runs in it (execs included).
  EXPECT_TRUE(c.Call(Remove("live")).has_remove_container());
  EXPECT_TRUE(c.Call(Ping(1)).has_ping());
  ASSERT_NE(RunContainer(c, "after", {"echo", "still fine"}), 0u);
  EXPECT_EQ(Drain(c, "after", "").out, "still fine\n");
}

// The bundle's extra mounts and environment reach the process.
TEST_F(ContainerTest, MountsEnvAndCwdFollowTheBundle) {
  Conn c = Connect();
  pb::Request r = Create("bundle", {"sh", "-c", "pwd; echo $GREETING; grep -c '^tmpfs /scratch tmpfs rw,nosuid' /proc/mounts; id -u"});
  auto* cc = r.mutable_create_container();
  cc->mutable_process()->add_env("GREETING=hi there");
  cc->mutable_process()->set_cwd("/tmp");
  cc->mutable_process()->set_uid(1000);
  cc->mutable_process()->set_gid(1000);
  cc->set_hostname("named");
  auto* m = cc->add_mounts();
  m->set_destination("/scratch");
  m->set_type("tmpfs");
  m->set_source("tmpfs");
  m->add_options("nosuid");
  m->add_options("size=1m");
  ASSERT_TRUE(c.Call(r).has_create_container());
  ASSERT_TRUE(c.Call(Start("bundle")).has_start_container());
  Outcome o = Drain(c, "bundle", "");
  EXPECT_EQ(o.out, "/tmp\nhi there\n1\n1000\n") << o.err;
  EXPECT_EQ(o.wait.exit_code(), 0);
}

// --no-pivot: MS_MOVE + chroot, the path the guest takes (pivot_root
// refuses the initramfs's rootfs as the old root).
class ContainerNoPivotTest : public ContainerTest {
 protected:
  std::vector<std::string> ExtraAgentArgs() const override { return {"--no-pivot"}; }
};

TEST_F(ContainerNoPivotTest, RunsAndStaysOffTheImage) {
  Conn c = Connect();
  ASSERT_NE(RunContainer(c, "np", {"sh", "-c", "echo x > /np-was-here; cat /np-was-here; ls /proc/1/root/ >/dev/null && echo root-ok"}), 0u);
  Outcome o = Drain(c, "np", "");
  EXPECT_EQ(o.out, "x\nroot-ok\n") << o.err;
  EXPECT_EQ(o.wait.exit_code(), 0);
  EXPECT_FALSE(std::filesystem::exists(rootfs_ + "/np-was-here"));
  ASSERT_NE(RunContainer(c, "np2", {"sh", "-c", "test -e /np-was-here || echo clean"}), 0u);
  EXPECT_EQ(Drain(c, "np2", "").out, "clean\n");
  // ExecProcess lands in the moved root too (setns follows the mount on /).
  ASSERT_NE(RunContainer(c, "np3", {"sh", "-c", "echo y > /mine; echo ready; exec sleep 60"}), 0u);
  pb::Response r = c.Call(Read("np3", "", false, 3000));
  ASSERT_TRUE(r.has_read_stdout()) << r.ShortDebugString();
  EXPECT_EQ(r.read_stdout().data(), "ready\n");
  ASSERT_TRUE(c.Call(Exec("np3", "look", {"cat", "/mine"})).has_exec_process());
  EXPECT_EQ(Drain(c, "np3", "look").out, "y\n");
  EXPECT_TRUE(c.Call(Remove("np3")).has_remove_container());
}

// As PID 1 (of a new PID and mount namespace, so its mounts stay there): the
// set-up runs, each module failure is logged with its path and errno, and
// the agent goes on listening (vsock here) or, where vsock cannot work, logs
// a fatal error and stays alive: PID 1 never exits. Needs root.
TEST(LinuxAgentPid1Test, LogsModuleFailuresAndNeverExits) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (PID and mount namespaces, mounts)";
  char tmpl[] = "/tmp/kf-linux-agent-pid1.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, mods = dir + "/kf-modules", log = dir + "/agent.log";
  {
    std::ofstream f(mods);
    f << "# test list\n\n/nonexistent/kf_missing.ko\n" << KF_LINUX_AGENT << " some=param\n";
  }
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t outer = fork();
  ASSERT_GE(outer, 0);
  if (outer == 0) {
    // Here: new namespaces, then the agent as their PID 1. Both die with
    // the test process (PR_SET_PDEATHSIG).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(pipefd[0]);
    if (unshare(CLONE_NEWNS | CLONE_NEWPID) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      _exit(77);
    const std::string port = std::to_string(40000 + getpid() % 20000);  // not 1024: a test
    pid_t init = fork();
    if (init == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      dup2(logfd, STDERR_FILENO);
      execl(KF_LINUX_AGENT, KF_LINUX_AGENT, "--modules", mods.c_str(), "--vsock-port", port.c_str(),
            "--buffer-mib", "1", static_cast<char*>(nullptr));
      _exit(127);
    }
    (void)!write(pipefd[1], &init, sizeof init);
    int status = 0;
    waitpid(init, &status, 0);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  close(pipefd[1]);
  pid_t init = -1;
  ssize_t got = read(pipefd[0], &init, sizeof init);
  close(pipefd[0]);
  auto read_log = [&] {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  if (got != static_cast<ssize_t>(sizeof init)) {
    int status = 0;
    waitpid(outer, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot unshare";
    FAIL() << "no agent started";
  }
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  while (std::chrono::steady_clock::now() < deadline) {
    text = read_log();
    if (text.find("listening on vsock") != std::string::npos ||
        text.find("warning: no vsock device") != std::string::npos ||
        text.find("fatal:") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(waitpid(outer, nullptr, WNOHANG), 0) << "PID 1 exited; log:\n" << read_log();
  text = read_log();
  EXPECT_NE(text.find("starting as PID 1"), std::string::npos) << text;
  EXPECT_NE(text.find("module /nonexistent/kf_missing.ko: open: No such file or directory "
                      "(errno 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(std::string("module ") + KF_LINUX_AGENT + ": finit_module: "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("modules: 0 loaded, 2 failed"), std::string::npos) << text;
  if (text.find("fatal:") != std::string::npos) {
    EXPECT_NE(text.find("sleeping forever"), std::string::npos) << text;
  }
  kill(init, SIGKILL);
  waitpid(outer, nullptr, 0);
  unlink(mods.c_str());
  unlink(log.c_str());
  rmdir(dir.c_str());
}

}  // namespace
