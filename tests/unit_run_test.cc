// `kata-factory run` (issue #7): the CLI's usage, help and daemon errors
// (the binary), the OCI bundle subset (factory/oci_bundle.h), and the
// container session (factory/container_session.h) against the real Linux
// agent, kf-agent-linux --listen-unix, as an ordinary process with a busybox
// rootfs (as tests/unit_linux_agent_test.cc does; containers need root),
// and the binary end to end against a fake daemon whose "VM" agent.sock is
// a CONNECT/OK proxy to that agent. The run with the real daemon and a real
// VM is the nested tier's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <mutex>

#include "factory/clock.h"
#include "factory/container_session.h"
#include "factory/oci_bundle.h"
#include "proto/factory.grpc.pb.h"
#include "tests/cli_run.h"
#include "tests/host_linux_agent.h"

namespace {

namespace fs = std::filesystem;
namespace pb = katafactory::agent::v1;

// ---- The binary -------------------------------------------------------------

using kf::testing::Cli;
using kf::testing::CliRun;

TEST(RunCli, HelpSaysHowAndTheExitStatuses) {
  CliRun r = Cli("run --help");
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"Usage: kata-factory run", "--rm", "--bundle", "--json", "125", "127"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s;
  EXPECT_EQ(Cli("run -h").status, 0);
  EXPECT_NE(Cli("--help").output.find("run "), std::string::npos);
}

TEST(RunCli, BadUsageIsExit125WithOneLine) {
  for (const char* args : {"run", "run --rm", "run --bogus -- true", "run -x true",
                           "run --template", "run --env =x -- true", "run --cwd rel -- true",
                           "run --user alice -- true", "run --user 1:x -- true",
                           "run --timeout 0 -- true", "run --rm=1 -- true",
                           "run --bundle /nonexistent/bundle -- true", "run --hostname= -- true"}) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.status, 125) << "args: " << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("kata-factory: ", 0), 0u) << r.output;
  }
  EXPECT_NE(Cli("run").output.find("needs a command"), std::string::npos);
}

TEST(RunCli, DaemonUnreachableIsExit125AndSaysSo) {
  const std::string sock = "/tmp/kf-run-test-no-daemon.sock";
  ::unlink(sock.c_str());
  CliRun r = Cli("run --rm --timeout 5 --socket " + sock + " -- echo hello");
  EXPECT_EQ(r.status, 125) << r.output;
  EXPECT_NE(r.output.find("GetVM"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("is `kata-factory daemon` running on " + sock), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("hello"), std::string::npos);
  // --json: still one object, with the status and the reason.
  r = Cli("run --json --timeout 5 --socket " + sock + " -- true");
  EXPECT_EQ(r.status, 125);
  EXPECT_NE(r.output.find("{\"exit_code\":125,\"error\":\"GetVM: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"timings_ns\":{\"get_vm\":"), std::string::npos) << r.output;
}

TEST(RunCli, CommandOptionsAreTheCommands) {
  // After `--` (or the first non-option) nothing is ours: --bogus is the
  // command's, so this fails at the daemon, not at the options.
  const std::string sock = "/tmp/kf-run-test-no-daemon.sock";
  CliRun r = Cli("run --timeout 5 --socket " + sock + " -- ls --bogus");
  EXPECT_EQ(r.status, 125);
  EXPECT_EQ(r.output.find("unknown option"), std::string::npos) << r.output;
  r = Cli("run --timeout 5 --socket " + sock + " ls --bogus");
  EXPECT_EQ(r.output.find("unknown option"), std::string::npos) << r.output;
}

// ---- OCI bundles --------------------------------------------------------------

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-run-bundle.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& json) { std::ofstream(dir_ + "/config.json") << json; }
  std::string dir_;
};

TEST_F(BundleTest, TakesTheSubsetTheAgentRuns) {
  Write(R"({
    "ociVersion": "1.0.2",
    "process": {"terminal": false, "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
                "args": ["sh", "-c", "echo hi"], "env": ["PATH=/bin", "A=b"], "cwd": "/tmp",
                "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": true},
    "root": {"path": "/rootfs", "readonly": true},
    "hostname": "box",
    "mounts": [
      {"destination": "/proc", "type": "proc", "source": "proc"},
      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
      {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
      {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
      {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
      {"destination": "/data", "source": "/srv/data", "options": ["rbind", "ro"]}
    ],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]}
  })");
  auto req = kf::LoadOciBundle(dir_);
  ASSERT_TRUE(req.ok()) << req.error().message();
  const pb::Process& p = req->process();
  ASSERT_EQ(p.args_size(), 3);
  EXPECT_EQ(p.args(2), "echo hi");
  ASSERT_EQ(p.env_size(), 2);
  EXPECT_EQ(p.env(1), "A=b");
  EXPECT_EQ(p.cwd(), "/tmp");
  EXPECT_EQ(p.uid(), 1000u);
  EXPECT_EQ(p.gid(), 100u);
  EXPECT_FALSE(p.terminal());
  EXPECT_EQ(req->rootfs(), "/rootfs");
  EXPECT_EQ(req->hostname(), "box");
  ASSERT_EQ(req->mounts_size(), 2) << req->ShortDebugString();  // the agent's own and cgroup left out
  EXPECT_EQ(req->mounts(0).destination(), "/scratch");
  EXPECT_EQ(req->mounts(0).options(0), "size=1m");
  EXPECT_EQ(req->mounts(1).type(), "bind");
  EXPECT_EQ(req->mounts(1).source(), "/srv/data");
  ASSERT_EQ(req->namespaces_size(), 3);
  EXPECT_EQ(req->namespaces(0), "pid");
}

TEST_F(BundleTest, AHostRootfsIsRefusedWithTheReason) {
  fs::create_directories(dir_ + "/rootfs");
  Write(R"({"process": {"args": ["true"]}, "root": {"path": "rootfs"}})");
  auto req = kf::LoadOciBundle(dir_);
  ASSERT_FALSE(req.ok());
  EXPECT_NE(req.error().message().find("cannot be shared into the VM"), std::string::npos)
      << req.error().message();
  EXPECT_NE(req.error().message().find(dir_ + "/rootfs"), std::string::npos);
  // The same directory named by its absolute path.
  Write(R"({"process": {"args": ["true"]}, "root": {"path": ")" + dir_ + R"(/rootfs"}})");
  req = kf::LoadOciBundle(dir_);
  ASSERT_FALSE(req.ok());
  EXPECT_NE(req.error().message().find("host directory"), std::string::npos);
  // And through the CLI: exit 125, before any daemon is asked.
  CliRun r = Cli("run --socket /nonexistent/kf.sock --bundle " + dir_);
  EXPECT_EQ(r.status, 125);
  EXPECT_NE(r.output.find("cannot be shared into the VM"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("GetVM"), std::string::npos) << r.output;
}

TEST_F(BundleTest, MalformedConfigsAreErrorsNamingTheField) {
  for (auto [json, field] : std::vector<std::pair<std::string, std::string>>{
           {"not json", "config.json"},
           {R"({"process": {"args": "sh"}})", "process.args"},
           {R"({"process": {"args": [1]}})", "process.args[0]"},
           {R"({"process": {"user": {"uid": -1}}})", "process.user.uid"},
           {R"({"process": {"user": {"uid": 1.5}}})", "process.user.uid"},
           {R"({"mounts": [{"type": "tmpfs"}]})", "mounts[0].destination"},
           {R"({"linux": {"namespaces": [{"type": "net", "path": "/proc/1/ns/net"}]}})",
            "namespaces[0]"}}) {
    Write(json);
    auto req = kf::LoadOciBundle(dir_);
    ASSERT_FALSE(req.ok()) << json;
    EXPECT_NE(req.error().message().find(field), std::string::npos) << req.error().message();
  }
  fs::remove(dir_ + "/config.json");
  auto missing = kf::LoadOciBundle(dir_);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("config.json"), std::string::npos);
}

// ---- The session against the Linux agent ---------------------------------------

const char* const kBusybox = "/bin/busybox";

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access(kBusybox, X_OK) != 0) return;
    char tmpl[] = "/tmp/kf-run-rootfs.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    rootfs_ = tmpl;
    for (const char* d : {"bin", "etc", "tmp", "proc", "sys", "dev", "root"})
      fs::create_directories(rootfs_ + "/" + d);
    fs::copy_file(kBusybox, rootfs_ + "/bin/busybox");
    for (const char* applet : {"sh", "echo", "cat", "sleep", "head", "true", "hostname", "id",
                               "pwd", "tr"})
      fs::create_symlink("busybox", rootfs_ + "/bin/" + applet);
    std::ofstream(rootfs_ + "/bin/not-executable") << "data\n";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!rootfs_.empty()) fs::remove_all(rootfs_, ec);
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, overlay, pivot_root)";
    if (rootfs_.empty()) GTEST_SKIP() << "no " << kBusybox << " to build a rootfs from";
    char tmpl[] = "/tmp/kf-run-agent.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(agent_.Start(dir_, {"--buffer-mib", "8", "--init-mib", "1",
                                    "--container-rootfs", rootfs_}));
    sock_ = agent_.sock();
    // Until it accepts (the socket file appears at bind, before listen).
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
      up = kf::UnixAgentConnector(sock_)().ok();
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(up) << Log();
  }

  void TearDown() override {
    agent_.ExpectAliveAndStop();
    if (HasFailure()) std::fprintf(stderr, "agent log:\n%s", Log().c_str());
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::string Log() const { return agent_.Log(); }

  struct Run {
    kf::ContainerRunResult result;
    std::string out, err;
  };

  // Runs `args` through the session, its stdout and stderr into pipes read
  // here; `input`, when given, is its stdin (interactive).
  Run RunIt(const std::vector<std::string>& args, const std::string* input = nullptr,
            const std::atomic<int>* interrupts = nullptr, const std::string& rootfs = "",
            uint32_t grace_ms = 3000) {
    kf::ContainerRunOptions o;
    o.create.set_container_id("c" + std::to_string(++seq_));
    o.create.set_rootfs(rootfs);
    *o.create.mutable_process() = kf::MakeProcess(args, {"PATH=/bin"});
    o.interrupts = interrupts;
    o.kill_grace_ms = grace_ms;
    int outp[2], errp[2], inp[2] = {-1, -1};
    EXPECT_EQ(pipe2(outp, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(errp, O_CLOEXEC), 0);
    o.stdout_fd = outp[1];
    o.stderr_fd = errp[1];
    std::thread feeder;
    if (input != nullptr) {
      EXPECT_EQ(pipe2(inp, O_CLOEXEC), 0);
      o.interactive = true;
      o.stdin_fd = inp[0];
      feeder = std::thread([&, fd = inp[1]] {
        size_t off = 0;
        while (off < input->size()) {
          ssize_t n = write(fd, input->data() + off, input->size() - off);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
        close(fd);
      });
    }
    Run run;
    auto drain = [](int fd, std::string* into) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) into->append(buf, static_cast<size_t>(n));
    };
    std::thread out_reader(drain, outp[0], &run.out), err_reader(drain, errp[0], &run.err);
    run.result = kf::RunContainerSession(kf::UnixAgentConnector(sock_), o);
    close(outp[1]);
    close(errp[1]);
    out_reader.join();
    err_reader.join();
    close(outp[0]);
    close(errp[0]);
    if (feeder.joinable()) feeder.join();
    if (inp[0] >= 0) close(inp[0]);
    return run;
  }

  static std::string rootfs_;
  kf_test::HostLinuxAgent agent_;
  std::string dir_, sock_;
  int seq_ = 0;
};

std::string SessionTest::rootfs_;

TEST_F(SessionTest, EchoHelloPrintsHelloAndExitsZero) {
  const uint64_t t0 = kf::MonotonicNs();
  Run r = RunIt({"echo", "hello"});
  EXPECT_EQ(r.result.error, "");
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.result.status, 0);
  EXPECT_TRUE(r.result.created && r.result.started && r.result.exited && r.result.removed);
  EXPECT_EQ(r.result.stdout_bytes, 6u);
  EXPECT_EQ(r.result.stdout_last_byte, '\n');
  EXPECT_GT(r.result.pid, 0u);
  // The timings are ordered and within the call.
  EXPECT_GT(r.result.first_output_at_ns, 0u);
  EXPECT_EQ(r.result.first_line_at_ns, r.result.first_output_at_ns);
  EXPECT_GT(r.result.create_ns, 0u);
  EXPECT_GT(r.result.start_ns, 0u);
  EXPECT_LE(r.result.first_output_at_ns, r.result.done_at_ns);
  EXPECT_LE(r.result.exit_at_ns, r.result.done_at_ns);
  EXPECT_LE(r.result.done_at_ns, kf::MonotonicNs() - t0);
}

TEST_F(SessionTest, ExitCodeAndStderrComeBack) {
  Run r = RunIt({"sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(r.result.error, "");
  EXPECT_EQ(r.result.status, 7);
  EXPECT_EQ(r.result.exit_code, 7);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_F(SessionTest, StdinReachesTheProcess) {
  const std::string input = "ping over stdin\nsecond line\n";
  Run r = RunIt({"cat"}, &input);
  EXPECT_EQ(r.result.error, "");
  EXPECT_EQ(r.result.status, 0);
  EXPECT_EQ(r.out, input);
  // More than a pipe and the agent's buffers hold, both ways.
  std::string big(300000, 'x');
  r = RunIt({"tr", "x", "y"}, &big);
  EXPECT_EQ(r.result.status, 0) << r.result.error;
  EXPECT_EQ(r.out, std::string(300000, 'y'));
}

TEST_F(SessionTest, WithoutInteractiveStdinIsClosed) {
  Run r = RunIt({"cat"});  // would wait forever on an open stdin
  EXPECT_EQ(r.result.status, 0) << r.result.error;
  EXPECT_EQ(r.out, "");
}

TEST_F(SessionTest, LargeOutputArrivesWhole) {
  Run r = RunIt({"head", "-c", "300000", "/dev/zero"});
  EXPECT_EQ(r.result.status, 0) << r.result.error;
  EXPECT_EQ(r.out.size(), 300000u);
  EXPECT_EQ(r.result.stdout_bytes, 300000u);
}

TEST_F(SessionTest, MissingCommandIs127WithTheAgentsMessage) {
  Run r = RunIt({"/bin/no-such-command"});
  EXPECT_EQ(r.result.status, kf::kExitNotFound);
  EXPECT_NE(r.result.error.find("exec /bin/no-such-command: No such file or directory"),
            std::string::npos)
      << r.result.error;
  EXPECT_EQ(r.result.error.find("agent error"), std::string::npos) << r.result.error;
  EXPECT_TRUE(r.result.removed);
  r = RunIt({"/bin/not-executable"});
  EXPECT_EQ(r.result.status, kf::kExitCannotExecute) << r.result.error;
  // The agent serves on.
  EXPECT_EQ(RunIt({"true"}).result.status, 0);
}

TEST_F(SessionTest, MissingRootfsIs125) {
  Run r = RunIt({"true"}, nullptr, nullptr, "/nonexistent/rootfs");
  EXPECT_EQ(r.result.status, kf::kExitOwnFailure);
  EXPECT_FALSE(r.result.created);
  EXPECT_NE(r.result.error.find("rootfs /nonexistent/rootfs: No such file or directory"),
            std::string::npos)
      << r.result.error;
}

TEST_F(SessionTest, AgentUnreachableIs125) {
  kf::ContainerRunOptions o;
  o.create.set_container_id("x");
  *o.create.mutable_process() = kf::MakeProcess({"true"});
  auto res = kf::RunContainerSession(kf::UnixAgentConnector(dir_ + "/nobody.sock"), o);
  EXPECT_EQ(res.status, kf::kExitOwnFailure);
  EXPECT_NE(res.error.find("connect to the agent"), std::string::npos) << res.error;
}

TEST_F(SessionTest, InterruptTermsThenKills) {
  // PID 1 of its namespace ignores SIGTERM it does not handle: SIGKILL
  // follows after the grace period.
  std::atomic<int> interrupts{0};
  std::thread ctrl_c([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    interrupts = 1;
  });
  const uint64_t t0 = kf::MonotonicNs();
  Run r = RunIt({"sleep", "60"}, nullptr, &interrupts, "", 300);
  ctrl_c.join();
  EXPECT_LT(kf::MonotonicNs() - t0, 10'000'000'000ull);
  EXPECT_EQ(r.result.status, 128 + SIGKILL) << r.result.error;
  EXPECT_EQ(r.result.signal, SIGKILL);
  EXPECT_EQ(r.result.interrupts_seen, 1);
  EXPECT_TRUE(r.result.removed);

  // A process that handles SIGTERM ends on it.
  interrupts = 0;
  std::thread ctrl_c2([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    interrupts = 1;
  });
  r = RunIt({"sh", "-c", "trap 'echo bye; exit 3' TERM; echo up; while :; do sleep 1 & wait; done"},
            nullptr, &interrupts, "", 20000);
  ctrl_c2.join();
  EXPECT_EQ(r.result.status, 3) << r.result.error << r.err;
  EXPECT_EQ(r.out, "up\nbye\n");
}


// ---- The binary against a fake daemon and the agent -----------------------------
// A gRPC Factory that hands out one "VM" whose agent.sock is a small proxy:
// it answers the hybrid-vsock CONNECT/OK handshake and then splices bytes to
// the --listen-unix agent, which is what a clone's VMM does. So `kata-factory
// run` runs here end to end, except for the VM itself.

namespace fpb = katafactory::v1;

class FakeFactory final : public fpb::Factory::Service {
 public:
  explicit FakeFactory(std::string agent_socket) : agent_socket_(std::move(agent_socket)) {}
  grpc::Status GetVM(grpc::ServerContext*, const fpb::GetVMRequest* req,
                     fpb::GetVMResponse* resp) override {
    if (req->template_() != "linux")
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no template '" + req->template_() + "'");
    std::lock_guard<std::mutex> l(mu_);
    ++gets_;
    labels_ = req->labels().count("kata-factory-run") ? req->labels().at("kata-factory-run") : "";
    resp->mutable_vm()->set_id("vm-0123456789ab");
    resp->mutable_vm()->set_template_(req->template_());
    resp->mutable_vm()->set_agent_socket(agent_socket_);
    resp->mutable_vm()->mutable_timings()->set_total_ns(1234);
    resp->set_pool_hit(true);
    return grpc::Status::OK;
  }
  grpc::Status ReleaseVM(grpc::ServerContext*, const fpb::ReleaseVMRequest* req,
                         fpb::ReleaseVMResponse*) override {
    std::lock_guard<std::mutex> l(mu_);
    released_.push_back(req->id());
    return grpc::Status::OK;
  }
  std::vector<std::string> released() {
    std::lock_guard<std::mutex> l(mu_);
    return released_;
  }
  std::string run_label() {
    std::lock_guard<std::mutex> l(mu_);
    return labels_;
  }

 private:
  std::string agent_socket_, labels_;
  std::mutex mu_;
  int gets_ = 0;
  std::vector<std::string> released_;
};

int ListenUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int ConnectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One connection: the handshake, then bytes both ways until either side ends.
void Splice(int client, std::string agent_path) {
  std::string line;
  char ch;
  while (line.size() < 32 && read(client, &ch, 1) == 1 && ch != '\n') line += ch;
  int agent = line == "CONNECT 1024" ? ConnectUnix(agent_path) : -1;
  if (agent < 0 || write(client, "OK 1\n", 5) != 5) {
    close(client);
    if (agent >= 0) close(agent);
    return;
  }
  pollfd p[2] = {{client, POLLIN, 0}, {agent, POLLIN, 0}};
  char buf[65536];
  for (bool open = true; open;) {
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && open; ++i) {
      if (p[i].revents == 0) continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0) open = false;
      for (ssize_t off = 0; open && off < n;) {
        ssize_t w = write(p[1 - i].fd, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) open = false;
        else off += w;
      }
    }
  }
  close(client);
  close(agent);
}

class RunCliTest : public SessionTest {
 protected:
  void SetUp() override {
    SessionTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    vm_sock_ = dir_ + "/vm-agent.sock";
    daemon_sock_ = dir_ + "/factory.sock";
    listen_fd_ = ListenUnix(vm_sock_);
    ASSERT_GE(listen_fd_, 0);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR) continue;
          return;
        }
        std::lock_guard<std::mutex> l(mu_);
        splices_.emplace_back(Splice, c, sock_);
      }
    });
    factory_ = std::make_unique<FakeFactory>(vm_sock_);
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + daemon_sock_, grpc::InsecureServerCredentials());
    b.RegisterService(factory_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    SessionTest::TearDown();  // the agent goes: every splice ends
    for (auto& t : splices_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  // `kata-factory run ARGS` with `input` on stdin; stdout and stderr apart.
  struct Out {
    int status;
    std::string out, err;
  };
  Out Kf(const std::string& args, const std::string& input = "") {
    const std::string in = dir_ + "/stdin", err = dir_ + "/stderr";
    std::ofstream(in) << input;
    std::string cmd = std::string(KF_BINARY) + " run --socket " + daemon_sock_ + " " + args +
                      " <" + in + " 2>" + err;
    Out o;
    FILE* p = ::popen(cmd.c_str(), "r");
    std::array<char, 4096> buf;
    size_t n;
    while (p && (n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
    int st = p ? ::pclose(p) : -1;
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::ifstream f(err);
    std::stringstream ss;
    ss << f.rdbuf();
    o.err = ss.str();
    return o;
  }

  std::string vm_sock_, daemon_sock_;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> splices_;
  std::unique_ptr<FakeFactory> factory_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(RunCliTest, EchoHelloExitCodesStdinAndRelease) {
  Out o = Kf("--rm -- echo hello");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_EQ(o.err, "");
  EXPECT_EQ(factory_->released(), std::vector<std::string>{"vm-0123456789ab"});
  EXPECT_EQ(factory_->run_label().rfind("run-", 0), 0u);

  o = Kf("--rm sh -c 'echo oops >&2; exit 7'");
  EXPECT_EQ(o.status, 7);
  EXPECT_EQ(o.err, "oops\n");

  o = Kf("--rm -i -- cat", "through stdin\n");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "through stdin\n");

  o = Kf("--rm --env A=1 --env B=2 --env A=3 --cwd /tmp --user 1000:100 --hostname box -- "
         "sh -c 'echo $A$B; pwd; id -u; id -g; hostname'");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "32\n/tmp\n1000\n100\nbox\n");

  o = Kf("--rm -- no-such-command");
  EXPECT_EQ(o.status, 127);
  EXPECT_EQ(o.err, "kata-factory: run: start " + factory_->run_label() +
                       ": exec no-such-command: No such file or directory\n");
  EXPECT_EQ(factory_->released().size(), 5u);  // every --rm released its VM
}

TEST_F(RunCliTest, JsonIsTheLastLine) {
  Out o = Kf("--rm --json -- sh -c 'printf no-newline'");
  EXPECT_EQ(o.status, 0) << o.err;
  ASSERT_EQ(o.out.rfind("no-newline\n{\"exit_code\":0,\"error\":\"\",\"template\":\"linux\"", 0), 0u)
      << o.out;
  for (const char* key : {"\"vm_id\":\"vm-0123456789ab\"", "\"pool_hit\":true", "\"removed\":true",
                          "\"released\":true", "\"stdout_bytes\":10", "\"first_line_at\":0",
                          "\"daemon_get_vm\":1234"})
    EXPECT_NE(o.out.find(key), std::string::npos) << key << "\n" << o.out;
  EXPECT_EQ(o.out.find("\"first_output_at\":0,"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.back(), '\n');
}

TEST_F(RunCliTest, WithoutRmTheVmIsKeptAndNamed) {
  Out o = Kf("-- true");
  EXPECT_EQ(o.status, 0);
  EXPECT_NE(o.err.find("VM vm-0123456789ab kept"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("kata-factory release vm-0123456789ab"), std::string::npos) << o.err;
  EXPECT_TRUE(factory_->released().empty());
}

TEST_F(RunCliTest, DaemonErrorsAre125) {
  Out o = Kf("--rm --template nope -- true");
  EXPECT_EQ(o.status, 125);
  EXPECT_EQ(o.err, "kata-factory: run: GetVM of template 'nope': NOT_FOUND: no template 'nope'\n");
  EXPECT_TRUE(factory_->released().empty());  // nothing was leased
}

TEST_F(RunCliTest, CtrlCStopsTheProcessAndCleansUp) {
  const std::string err = dir_ + "/stderr";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    int out = open((err + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    execl(KF_BINARY, KF_BINARY, "run", "--socket", daemon_sock_.c_str(), "--rm", "--", "sh", "-c",
          "echo up; exec sleep 60", static_cast<char*>(nullptr));
    _exit(99);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const uint64_t t0 = kf::MonotonicNs();
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_LT(kf::MonotonicNs() - t0, 8'000'000'000ull);  // SIGTERM ignored: SIGKILL after 3 s
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGKILL);
  EXPECT_EQ(factory_->released(), std::vector<std::string>{"vm-0123456789ab"});
  std::ifstream out(err + ".out");
  std::string line;
  std::getline(out, line);
  EXPECT_EQ(line, "up");
}

}  // namespace
