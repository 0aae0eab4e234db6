// Host KVM tier: the factory daemon with real clones of the bare guest.
// A daemon runs in this process (its zygotes are the kata-factory binary)
// or, for crash and drain, as a child process. Skips (with the reason)
// where KVM is not usable; the nested tier can run this same binary.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "agent/bare/bare_abi.h"
#include "agent/bare/bare_image.h"
#include "factory/agent_client.h"
#include "factory/bare_template.h"
#include "factory/daemon/daemon_server.h"
#include "factory/daemon/run_dir.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/sandbox_uids.h"
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
  const auto stat = ReadProcStat(pid);
  return stat && stat->state != 'Z';
}

// "Key:\tvalue" from /proc/PID/status; "" when absent.
std::string StatusField(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) {
      const size_t v = line.find_first_not_of(" \t", key.size() + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
  return "";
}

// Where each open descriptor of `pid` points (readlink of /proc/PID/fd/N).
std::map<int, std::string> OpenFds(pid_t pid) {
  std::map<int, std::string> fds;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = fs::read_symlink(e.path(), ec);
    fds[std::stoi(e.path().filename().string())] = ec ? "?" : target.string();
  }
  return fds;
}

// The zygote processes of this daemon: children of this process whose
// command line says zygote (sandboxes are the zygotes' children).
std::vector<pid_t> ZygotesOf(pid_t parent, const std::string& run_dir) {
  std::vector<pid_t> out;
  for (pid_t pid : FindOurProcesses(run_dir)) {
    const auto stat = ReadProcStat(pid);
    if (stat && stat->ppid == parent) out.push_back(pid);
  }
  return out;
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
  const pb::Timings& t = resp.vm().timings();
  EXPECT_GT(t.clone_ns(), 0u);
  EXPECT_GE(t.total_ns(), t.clone_ns());
  // The sandbox's own phases came with it, and fit inside the clone.
  EXPECT_GT(t.sandbox_fork_ns(), 0u);
  EXPECT_GT(t.sandbox_map_ns(), 0u);
  EXPECT_GT(t.sandbox_create_vm_ns(), 0u);
  EXPECT_GT(t.sandbox_restore_ns(), 0u);
  EXPECT_LT(t.sandbox_map_ns() + t.sandbox_create_vm_ns() + t.sandbox_restore_ns(), t.clone_ns());
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

// The jail (factory/jail/, docs/RELIABILITY.md): a sandbox handed out by
// the daemon runs under its seccomp filter with no capabilities, holds no
// descriptor it does not need (a non-CLOEXEC canary the daemon's process
// holds is in neither the zygote nor the sandbox), and, where cgroup v2 is
// writable (it is in the nested tier's L1), sits in its own cgroup with
// memory.max and pids.max, removed with the VM.
TEST_F(KvmDaemonTest, SandboxIsJailed) {
  const std::string canary = root_ + "/leak-canary";
  const int canary_fd = ::open(canary.c_str(), O_CREAT | O_RDWR, 0600);  // no O_CLOEXEC
  ASSERT_GE(canary_fd, 0);
  StartDaemon(0);
  pb::GetVMResponse resp;
  ASSERT_TRUE(GetVm(&resp).ok());
  const pid_t pid = resp.vm().pid();
  ExpectAgentAnswers(resp.vm());
  EXPECT_EQ(StatusField(pid, "Seccomp"), "2") << "seccomp filter mode";
  EXPECT_EQ(StatusField(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(StatusField(pid, "CapEff"), "0000000000000000");
  EXPECT_EQ(StatusField(pid, "CapPrm"), "0000000000000000");
  // A uid and gid of its own (root daemon: sandbox_uids auto), not shared
  // with a second clone; its run directory is open to its gid alone.
  if (SandboxUidsUnavailableReason().empty()) {
    pb::GetVMResponse second;
    ASSERT_TRUE(GetVm(&second).ok());
    const uint32_t uid = resp.vm().sandbox_uid();
    EXPECT_GE(uid, kDefaultSandboxUidFirst);
    EXPECT_NE(second.vm().sandbox_uid(), uid) << "two live clones share a uid";
    const std::string ids = std::to_string(uid) + "\t" + std::to_string(uid) + "\t" +
                            std::to_string(uid) + "\t" + std::to_string(uid);
    EXPECT_EQ(StatusField(pid, "Uid"), ids);
    EXPECT_EQ(StatusField(pid, "Gid"), ids);
    EXPECT_EQ(StatusField(second.vm().pid(), "Uid").substr(0, 10),
              std::to_string(second.vm().sandbox_uid()));
    struct stat st {};
    ASSERT_EQ(::stat(fs::path(resp.vm().agent_socket()).parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, uid);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    ASSERT_TRUE(Release(second.vm().id()).ok());
  } else {
    std::cout << "sandbox uids not checked: " << SandboxUidsUnavailableReason() << "\n";
    EXPECT_EQ(resp.vm().sandbox_uid(), 0u);
  }

  auto zygotes = ZygotesOf(::getpid(), options_.run_dir);
  ASSERT_EQ(zygotes.size(), 1u);
  for (pid_t p : {zygotes[0], pid}) {
    for (const auto& [fd, target] : OpenFds(p)) {
      EXPECT_NE(target, canary) << "pid " << p << " inherited fd " << fd;
      if (p != pid || fd <= 2) continue;
      // The sandbox's own: /dev/kvm, its VM and vCPU, the template's memfd,
      // sockets (control, agent.sock and its connections), epoll/eventfds.
      const bool expected = target == "/dev/kvm" || target.rfind("anon_inode:kvm-", 0) == 0 ||
                            target.rfind("/memfd:", 0) == 0 || target.rfind("socket:", 0) == 0 ||
                            target == "anon_inode:[eventpoll]" ||
                            target == "anon_inode:[eventfd]";
      EXPECT_TRUE(expected) << "sandbox fd " << fd << " -> " << target;
    }
  }
  EXPECT_LE(OpenFds(pid).size(), 16u) << "descriptors of one idle bare sandbox";
  ::close(canary_fd);

  auto own = OwnCgroupDir();
  std::string cgroup_line;
  {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    std::getline(in, cgroup_line);
  }
  const std::string suffix = "/kf-sandboxes/" + resp.vm().id();
  const bool has_cgroup = cgroup_line.size() > suffix.size() &&
                          cgroup_line.compare(cgroup_line.size() - suffix.size(), suffix.size(),
                                              suffix) == 0;
  std::ifstream controllers(own.ok() ? *own + "/cgroup.controllers" : "/nonexistent");
  std::string ctl((std::istreambuf_iterator<char>(controllers)), {});
  if (ctl.find("memory") != std::string::npos && ctl.find("pids") != std::string::npos) {
    ASSERT_TRUE(has_cgroup) << "cgroup v2 with memory and pids is here, but the sandbox is in "
                            << cgroup_line;
    std::string base = *own;
    if (fs::path(base).filename() == "kf-daemon") base = fs::path(base).parent_path();
    const std::string cg = base + suffix;
    std::ifstream mem(cg + "/memory.max"), pids(cg + "/pids.max");
    uint64_t mem_max = 0, pids_max = 0;
    mem >> mem_max;
    pids >> pids_max;
    EXPECT_EQ(mem_max, (32ull << 20) + options_.sandbox_memory_headroom_bytes);
    EXPECT_EQ(pids_max, options_.sandbox_pids_max);
    std::ifstream current(cg + "/memory.current");
    uint64_t charged = 0;
    current >> charged;
    EXPECT_GT(charged, 0u) << "the sandbox's memory is charged to its cgroup";
    std::cout << "sandbox cgroup " << cg << ": memory.current " << charged << " bytes\n";
    ASSERT_TRUE(Release(resp.vm().id()).ok());
    EXPECT_TRUE(WaitFor([&] { return !fs::exists(cg); }, 5s)) << cg << " left behind";
  } else {
    std::cout << "no writable cgroup v2 with memory+pids here (" << (own.ok() ? *own : own.error().message())
              << "): the cgroup part is not checked\n";
    EXPECT_FALSE(has_cgroup);
  }
}

// kill -9 of the zygote with VMs alive: the leased VM keeps answering, the
// next GetVM starts a new zygote, the pool refills, nothing leaks.
TEST_F(KvmDaemonTest, KilledZygoteIsReplacedAndItsVmsLive) {
  StartDaemon(2);
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  pb::GetVMResponse leased;
  ASSERT_TRUE(GetVm(&leased).ok());
  ASSERT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  // The daemon runs in this process: its descriptors, before and after.
  const size_t fds_before = OpenFds(::getpid()).size();
  auto zygotes = ZygotesOf(::getpid(), options_.run_dir);
  ASSERT_EQ(zygotes.size(), 1u);
  ASSERT_EQ(::kill(zygotes[0], SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(zygotes[0]); }));
  ExpectAgentAnswers(leased.vm());  // its sandbox outlives its zygote
  for (int i = 0; i < 3; ++i) {
    pb::GetVMResponse resp;
    grpc::Status s = GetVm(&resp);
    ASSERT_TRUE(s.ok()) << "GetVM " << i << " after the zygote died: " << s.error_message();
    ExpectAgentAnswers(resp.vm());
    ASSERT_TRUE(Release(resp.vm().id()).ok());
  }
  EXPECT_TRUE(WaitFor([&] { return Pool().ready() == 2; })) << Pool().DebugString();
  EXPECT_EQ(ZygotesOf(::getpid(), options_.run_dir).size(), 1u) << "one new zygote";
  ExpectAgentAnswers(leased.vm());
  EXPECT_EQ(OpenFds(::getpid()).size(), fds_before) << "the daemon's descriptors";
}

// A template damaged on disk while its clones run: a new zygote refuses it
// (GetVM fails, naming the damage), the running clone is unaffected (its
// memory came from the zygote's sealed memfd, not the file).
TEST_F(KvmDaemonTest, TemplateCorruptedOnDiskIsRefusedAndRunningClonesLive) {
  const std::string copy = root_ + "/victim-template";
  fs::remove_all(copy);
  fs::copy(template_dir_, copy, fs::copy_options::recursive);
  options_.external_templates["victim"] = copy;
  StartDaemon(0);
  grpc::ClientContext ctx;
  pb::GetVMRequest req;
  req.set_template_("victim");
  pb::GetVMResponse running;
  ASSERT_TRUE(stub_->GetVM(&ctx, req, &running).ok());
  // Flip bytes in the middle of the memory file, then make the daemon load
  // it again: kill its zygote.
  const std::string mem = copy + "/memory.img";
  ASSERT_TRUE(fs::exists(mem)) << "template layout changed? " << mem;
  {
    std::fstream f(mem, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(mem) / 2));
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto zygotes = ZygotesOf(::getpid(), options_.run_dir);
  ASSERT_EQ(zygotes.size(), 1u);
  ASSERT_EQ(::kill(zygotes[0], SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] { return !Alive(zygotes[0]); }));
  grpc::ClientContext ctx2;
  pb::GetVMResponse refused;
  grpc::Status s = stub_->GetVM(&ctx2, req, &refused);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_message().find("checksum"), std::string::npos) << s.error_message();
  ExpectAgentAnswers(running.vm());
  ASSERT_TRUE(Release(running.vm().id()).ok());
}

// The disk fills up while a template is written (a 1 MiB tmpfs as the state
// directory; needs root and mount(2), as in the nested tier's L1): a clean
// RESOURCE_EXHAUSTED/INTERNAL error naming the cause, and no directory, not
// even a temporary one, left where templates are found.
TEST_F(KvmDaemonTest, DiskFullWhileWritingATemplateLeavesNoTemplate) {
  const std::string small = root_ + "/small-state";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
  options_.state_dir = small;
  StartDaemon(0);
  grpc::ClientContext ctx;
  pb::CreateTemplateRequest req;
  req.set_name("too-big");
  req.set_guest(pb::GUEST_KIND_BARE);
  req.set_mem_mib(32);
  req.set_init_mib(8);
  pb::CreateTemplateResponse resp;
  grpc::Status s = stub_->CreateTemplate(&ctx, req, &resp);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_message().find("No space left on device"), std::string::npos)
      << s.error_message();
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(small + "/templates")) left.push_back(e.path());
  EXPECT_TRUE(left.empty()) << left.front();
  grpc::ClientContext lctx;
  pb::ListTemplatesResponse list;
  ASSERT_TRUE(stub_->ListTemplates(&lctx, pb::ListTemplatesRequest(), &list).ok());
  for (const auto& t : list.templates()) EXPECT_NE(t.name(), "too-big");
  daemon_.reset();
  ::umount2(small.c_str(), MNT_DETACH);
}

uint64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib << 10;
  return 0;
}

// Memory pressure, for real: a floor 48 MiB under today's MemAvailable and
// VMs that each dirty 16 MiB of guest memory. Admission must refuse
// (RESOURCE_EXHAUSTED, naming the floor) before the host runs out, and
// every VM handed out stays alive: nothing was OOM-killed.
TEST_F(KvmDaemonTest, MemoryPressureIsRefusedByAdmissionBeforeTheOomKiller) {
  const uint64_t avail = MemAvailableBytes();
  ASSERT_GT(avail, 256ull << 20);
  options_.mem_floor_bytes = avail - (48ull << 20);
  StartDaemon(0);
  std::vector<pb::VM> vms;
  std::vector<AgentClient> agents;
  grpc::Status refused;
  for (int i = 0; i < 16 && refused.ok(); ++i) {
    pb::GetVMResponse resp;
    refused = GetVm(&resp);
    if (!refused.ok()) break;
    auto agent = AgentClient::Connect(resp.vm().agent_socket());
    ASSERT_TRUE(agent.ok()) << agent.error().message();
    auto dirtied = agent->DirtyPages(KF_BARE_INIT_GPA, 4096, 0x6b66000000000000ull + i);
    ASSERT_TRUE(dirtied.ok()) << dirtied.error().message();
    vms.push_back(resp.vm());
    agents.push_back(std::move(*agent));
  }
  EXPECT_EQ(refused.error_code(), StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("MemAvailable"), std::string::npos)
      << refused.error_message();
  EXPECT_GE(vms.size(), 1u) << "the first VM should fit above the floor";
  std::cout << "admission refused VM " << vms.size() + 1 << ": " << refused.error_message()
            << "\n";
  for (size_t i = 0; i < vms.size(); ++i) {
    EXPECT_TRUE(Alive(vms[i].pid())) << "VM " << i << " was killed";
    EXPECT_TRUE(agents[i].Ping(7).ok()) << "VM " << i;
  }
  agents.clear();
  for (const auto& vm : vms) EXPECT_TRUE(Release(vm.id()).ok());
}

// A sandbox that outgrows its cgroup's memory.max is OOM-killed alone: the
// kernel's limit applies because the VMM's memory is charged to its own
// cgroup from the fork on. (The test lowers memory.max of one sandbox to
// 8 MiB and has its guest dirty 24 MiB.) Needs writable cgroup v2, as in
// the nested tier's L1.
TEST_F(KvmDaemonTest, SandboxOverItsMemoryMaxIsKilledAloneAndReported) {
  StartDaemon(0);
  pb::GetVMResponse a, b;
  ASSERT_TRUE(GetVm(&a).ok());
  ASSERT_TRUE(GetVm(&b).ok());
  std::string line;
  {
    std::ifstream in("/proc/" + std::to_string(a.vm().pid()) + "/cgroup");
    std::getline(in, line);
  }
  auto own = OwnCgroupDir();
  if (!own.ok() || line.find("/kf-sandboxes/") == std::string::npos)
    GTEST_SKIP() << "sandboxes have no cgroup here (" << line << ")";
  std::string base = *own;
  if (fs::path(base).filename() == "kf-daemon") base = fs::path(base).parent_path();
  const std::string cg = base + "/kf-sandboxes/" + a.vm().id();
  {
    std::ofstream max(cg + "/memory.max");
    max << (8 << 20);
  }
  grpc::ClientContext watch_ctx;
  auto events = stub_->WatchEvents(&watch_ctx, pb::WatchEventsRequest());
  events->WaitForInitialMetadata();
  auto agent = AgentClient::Connect(a.vm().agent_socket());
  ASSERT_TRUE(agent.ok()) << agent.error().message();
  auto dirtied = agent->DirtyPages(KF_BARE_INIT_GPA, 6144, 0x6b66000000000001ull);
  EXPECT_FALSE(dirtied.ok()) << "24 MiB dirtied under an 8 MiB memory.max";
  pb::Event e;
  bool died = false;
  while (!died && events->Read(&e))
    died = e.type() == pb::Event::TYPE_VM_DIED && e.vm_id() == a.vm().id();
  EXPECT_TRUE(died);
  watch_ctx.TryCancel();
  EXPECT_FALSE(Alive(a.vm().pid()));
  ExpectAgentAnswers(b.vm());  // its neighbour is untouched
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(cg); }, 5s)) << cg << " left behind";
  EXPECT_TRUE(Release(b.vm().id()).ok());
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
