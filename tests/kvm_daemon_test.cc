// Host KVM tier: the factory daemon with real clones of the bare guest.
// A daemon runs in this process (its zygotes are the kata-factory binary)
// or, for crash and drain, as a child process. Skips (with the reason)
// where KVM is not usable; the nested tier can run this same binary.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "agent/bare/bare_image.h"
#include "factory/agent_client.h"
#include "factory/bare_template.h"
#include "factory/daemon/daemon_server.h"
#include "factory/daemon/run_dir.h"
#include "proto/factory.grpc.pb.h"
#include "tests/cli_run.h"

extern char** environ;

namespace kf::daemon {
namespace {

using grpc::StatusCode;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 20s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

using kf::testing::KfBinary;

bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || line.at(paren + 2) != 'Z';
}

class KvmDaemonTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = Kvm::UnavailableReason();
    if (!skip_reason_.empty()) return;
    char tmpl[] = "/tmp/kf-kvm-daemon-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    template_dir_ = root_ + "/state/templates/bare";
    fs::create_directories(root_ + "/state/templates");
    auto kvm = Kvm::Open();
    ASSERT_TRUE(kvm.ok()) << kvm.error().message();
    BareTemplateOptions o;
    o.mem_bytes = 32ull << 20;
    o.init_bytes = 8ull << 20;
    auto boot = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), template_dir_);
    ASSERT_TRUE(boot.ok()) << boot.error().message();
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << "KVM not usable: " << skip_reason_;
    ASSERT_FALSE(template_dir_.empty()) << "template creation failed in SetUpTestSuite";
    options_.socket = root_ + "/factory.sock";
    options_.run_dir = root_ + "/run";
    options_.state_dir = root_ + "/state";
    options_.zygote_exe = KfBinary();
    options_.mem_floor_bytes = 0;
  }
  void TearDown() override {
    daemon_.reset();
    if (!root_.empty() && skip_reason_.empty()) {
      // Whatever a test did, nothing of ours may outlive its daemon.
      EXPECT_TRUE(FindOurProcesses(options_.run_dir).empty());
      EXPECT_TRUE(!fs::exists(options_.run_dir + "/vms") || fs::is_empty(options_.run_dir + "/vms"));
    }
  }

  void StartDaemon(uint32_t pool_size) {
    options_.default_pool.size = pool_size;
    auto d = Daemon::Start(options_);
    ASSERT_TRUE(d.ok()) << d.error().message();
    daemon_ = std::move(*d);
    Connect();
  }
  void Connect() {
    stub_ = pb::Factory::NewStub(
        grpc::CreateChannel("unix:" + options_.socket, grpc::InsecureChannelCredentials()));
  }
  grpc::Status GetVm(pb::GetVMResponse* resp, int deadline_ms = 30000, uint32_t lease = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    pb::GetVMRequest req;
    req.set_template_("bare");
    req.set_lease_seconds(lease);
    (*req.mutable_labels())["test"] = "kvm_daemon_test";
    return stub_->GetVM(&ctx, req, resp);
  }
  grpc::Status Release(const std::string& id) {
    grpc::ClientContext ctx;
    pb::ReleaseVMRequest req;
    req.set_id(id);
    pb::ReleaseVMResponse resp;
    return stub_->ReleaseVM(&ctx, req, &resp);
  }
  // Empty while the daemon is not answering (a spawned one still starting):
  // callers poll it until a figure shows up.
  pb::PoolStatus Pool() {
    grpc::ClientContext ctx;
    pb::StatusResponse st;
    if (!stub_->Status(&ctx, pb::StatusRequest(), &st).ok()) return pb::PoolStatus();
    for (const auto& p : st.pools())
      if (p.template_() == "bare") return p;
    return pb::PoolStatus();
  }
  std::vector<pb::VM> List(bool include_pool) {
    grpc::ClientContext ctx;
    pb::ListVMsRequest req;
    req.set_include_pool(include_pool);
    pb::ListVMsResponse resp;
    EXPECT_TRUE(stub_->ListVMs(&ctx, req, &resp).ok());
    return {resp.vms().begin(), resp.vms().end()};
  }
  // The VM answers over its agent.sock and knows its identity.
  static void ExpectAgentAnswers(const pb::VM& vm) {
    auto agent = AgentClient::Connect(vm.agent_socket());
    ASSERT_TRUE(agent.ok()) << agent.error().message();
    auto ping = agent->Ping(42);
    ASSERT_TRUE(ping.ok()) << ping.error().message();
    auto id = agent->GetIdentity();
    ASSERT_TRUE(id.ok()) << id.error().message();
    EXPECT_EQ(id->sandbox_id, vm.id());
    EXPECT_GE(id->identity_sets, 1u);
  }

  static std::string skip_reason_, root_, template_dir_;
  DaemonOptions options_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<pb::Factory::Stub> stub_;
};

std::string KvmDaemonTest::skip_reason_;
std::string KvmDaemonTest::root_;
std::string KvmDaemonTest::template_dir_;

TEST_F(KvmDaemonTest, PoolHit) {
  StartDaemon(2);
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  pb::GetVMResponse resp;
  grpc::Status s = GetVm(&resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.pool_hit());
  EXPECT_EQ(resp.vm().timings().clone_ns(), 0u);
  EXPECT_GT(resp.vm().timings().identity_ns(), 0u);
  EXPECT_EQ(resp.vm().state(), pb::VM_STATE_LEASED);
  EXPECT_EQ(resp.vm().console_socket(), "");
  EXPECT_EQ(resp.vm().labels().at("test"), "kvm_daemon_test");
  ExpectAgentAnswers(resp.vm());
  // The pool refills behind the hand-out.
  EXPECT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  EXPECT_EQ(Pool().leased(), 1u);
}

TEST_F(KvmDaemonTest, PoolMiss) {
  StartDaemon(0);
  pb::GetVMResponse resp;
  grpc::Status s = GetVm(&resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.pool_hit());
  EXPECT_GT(resp.vm().timings().clone_ns(), 0u);
  EXPECT_GE(resp.vm().timings().total_ns(), resp.vm().timings().clone_ns());
  ExpectAgentAnswers(resp.vm());
}

TEST_F(KvmDaemonTest, ReleaseVmStopsItAndRemovesItsSockets) {
  StartDaemon(0);
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp).ok());
  const pb::VM vm = resp.vm();
  ASSERT_TRUE(Alive(vm.pid()));
  ASSERT_TRUE(fs::exists(vm.agent_socket()));
  ASSERT_TRUE(Release(vm.id()).ok());
  EXPECT_FALSE(Alive(vm.pid()));
  EXPECT_FALSE(fs::exists(fs::path(vm.agent_socket()).parent_path()));
  EXPECT_TRUE(List(true).empty());
  EXPECT_EQ(Release(vm.id()).error_code(), StatusCode::NOT_FOUND);
}

TEST_F(KvmDaemonTest, ListVmsLeasedAndPooled) {
  StartDaemon(2);
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; }));
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp).ok());
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; }));
  auto leased = List(false);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].id(), resp.vm().id());
  EXPECT_EQ(List(true).size(), 3u);
}

TEST_F(KvmDaemonTest, KilledSandboxIsReportedAndThePoolRefills) {
  StartDaemon(2);
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; }));
  grpc::ClientContext watch_ctx;
  auto events = stub_->WatchEvents(&watch_ctx, pb::WatchEventsRequest());
  events->WaitForInitialMetadata();
  const pb::VM victim = List(true).at(0);
  ASSERT_EQ(::kill(victim.pid(), SIGKILL), 0);
  pb::Event e;
  bool died = false;
  while (!died && events->Read(&e))
    died = e.type() == pb::Event::TYPE_VM_DIED && e.vm_id() == victim.id();
  EXPECT_TRUE(died);
  EXPECT_EQ(e.state(), pb::VM_STATE_POOLED);
  watch_ctx.TryCancel();
  EXPECT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  for (const auto& vm : List(true)) EXPECT_NE(vm.id(), victim.id());
  EXPECT_FALSE(fs::exists(fs::path(victim.agent_socket()).parent_path()));
}

TEST_F(KvmDaemonTest, DeadlineExceededLeavesNothing) {
  StartDaemon(0);
  pb::GetVMResponse resp;
  grpc::Status s = GetVm(&resp, /*deadline_ms=*/1);
  EXPECT_EQ(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  // The server may still be finishing that clone: it must release it.
  EXPECT_TRUE(WaitFor([&] { return List(true).empty() && Pool().cloning() == 0; }));
}

TEST_F(KvmDaemonTest, LeaseExpires) {
  StartDaemon(0);
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp, 30000, /*lease=*/1).ok());
  EXPECT_GT(resp.vm().lease_expires_unix_ns(), 0);
  // Off the list first, then stopped (ReleaseClone waits for the exit).
  EXPECT_TRUE(WaitFor([&] { return List(true).empty() && !Alive(resp.vm().pid()); }, 5s));
}

// kata-factory daemon as a child process.
pid_t SpawnDaemon(const DaemonOptions& o) {
  std::vector<std::string> args = {KfBinary(),    "daemon",        "--socket",  o.socket,
                                   "--run-dir",  o.run_dir,       "--state-dir", o.state_dir,
                                   "--pool-size", "2",            "--mem-floor-mib", "0",
                                   // not the default 9464: daemons side by side
                                   "--metrics-listen", "127.0.0.1:0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, args[0].c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

TEST_F(KvmDaemonTest, SigtermDrainsEverything) {
  const pid_t daemon = SpawnDaemon(options_);
  ASSERT_GT(daemon, 0);
  Connect();
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; }));
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp).ok());
  ASSERT_EQ(::kill(daemon, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(daemon, &status, 0), daemon);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_FALSE(Alive(resp.vm().pid()));
  EXPECT_FALSE(fs::exists(options_.socket));
  // TearDown: no process, no VM directory.
}

TEST_F(KvmDaemonTest, RestartAfterAKillLeavesNothing) {
  const pid_t daemon = SpawnDaemon(options_);
  ASSERT_GT(daemon, 0);
  Connect();
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; }));
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp).ok());
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_EQ(::waitpid(daemon, nullptr, 0), daemon);
  // Zygotes and VMMs end on their own when their sockets close; whatever
  // has not yet, the next daemon kills. It also takes the stale socket.
  StartDaemon(0);
  EXPECT_TRUE(FindOurProcesses(options_.run_dir).empty());
  EXPECT_FALSE(Alive(resp.vm().pid()));
  EXPECT_TRUE(fs::is_empty(options_.run_dir + "/vms"));
  EXPECT_TRUE(List(true).empty());
}

}  // namespace
}  // namespace kf::daemon
