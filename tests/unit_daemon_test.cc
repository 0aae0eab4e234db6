// The factory daemon without KVM: its plain parts (admission, pools, events,
// names), and a real daemon in this process serving gRPC on a Unix socket in
// a temporary directory, checked call by call for the status codes
// docs/DAEMON.md promises. Templates here are fake (valid files, a vCPU with
// no state): a zygote loads one, and a clone of it fails for want of KVM.
// GetVM that succeeds, pools that fill and VMs that die are tested where
// /dev/kvm is (kvm_daemon_test.cc).
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "factory/clock.h"
#include "factory/daemon/admission.h"
#include "factory/daemon/daemon_server.h"
#include "factory/daemon/event_bus.h"
#include "factory/daemon/run_dir.h"
#include "factory/daemon/template_registry.h"
#include "factory/daemon/warm_pool.h"
#include "proto/factory.grpc.pb.h"
#include "snapshot/template_files.h"
#include "tests/cli_run.h"
#include "tests/fake_template.h"

namespace kf::daemon {
namespace {

using grpc::StatusCode;
namespace fs = std::filesystem;

constexpr uint64_t kSecond = 1000000000ull;

// ---- Admission ---------------------------------------------------------------

TEST(Admission, CapCountsLiveVms) {
  Admission a({.max_live_vms = 2, .mem_floor_bytes = 0});
  EXPECT_EQ(a.Refusal(0), "");
  EXPECT_EQ(a.Refusal(1), "");
  EXPECT_NE(a.Refusal(2).find("cap"), std::string::npos);
  Admission zero({.max_live_vms = 0, .mem_floor_bytes = 0});
  EXPECT_NE(zero.Refusal(0), "");
  Admission none({.max_live_vms = std::nullopt, .mem_floor_bytes = 0});
  EXPECT_EQ(none.Refusal(1000000), "");
}

TEST(Admission, MemoryFloor) {
  uint64_t avail = 3ull << 30;
  int reads = 0;
  Admission a({.max_live_vms = std::nullopt, .mem_floor_bytes = 2ull << 30}, [&] {
    ++reads;
    return Result<uint64_t>(avail);
  });
  EXPECT_EQ(a.Refusal(0), "");
  avail = 1ull << 30;
  EXPECT_NE(a.Refusal(0).find("below the floor"), std::string::npos);
  EXPECT_EQ(reads, 2);
  Admission broken({.max_live_vms = std::nullopt, .mem_floor_bytes = 1},
                   [] { return Result<uint64_t>(Error("no /proc")); });
  EXPECT_NE(broken.Refusal(0).find("no /proc"), std::string::npos);
  // No floor: memory is not even read.
  Admission off({.max_live_vms = std::nullopt, .mem_floor_bytes = 0}, [&] {
    ++reads;
    return Result<uint64_t>(uint64_t{0});
  });
  EXPECT_EQ(off.Refusal(0), "");
  EXPECT_EQ(reads, 2);
}

// ---- WarmPool ------------------------------------------------------------------

TEST(WarmPool, TakesOldestFirstAndErases) {
  WarmPool p;
  p.Configure("t", 3, 0);
  p.BeginClone("t", 0);
  p.BeginClone("t", 0);
  p.BeginClone("t", 0);
  EXPECT_TRUE(p.CloneSucceeded("t", "a"));
  EXPECT_TRUE(p.CloneSucceeded("t", "b"));
  EXPECT_TRUE(p.CloneSucceeded("t", "c"));
  EXPECT_TRUE(p.Erase("t", "b"));
  EXPECT_FALSE(p.Erase("t", "b"));
  EXPECT_EQ(p.Take("t"), "a");
  EXPECT_EQ(p.Take("t"), "c");
  EXPECT_EQ(p.Take("t"), std::nullopt);
  EXPECT_EQ(p.Take("other"), std::nullopt);
}

TEST(WarmPool, RefillsTheEmptiestPoolAndCountsClonesUnderWay) {
  WarmPool p;
  p.Configure("small", 1, 0);
  p.Configure("big", 3, 0);
  p.Configure("none", 0, 0);
  EXPECT_EQ(p.NextRefill(0), "big");
  p.BeginClone("big", 0);
  p.BeginClone("big", 0);
  EXPECT_EQ(p.NextRefill(0), "big");  // deficit 1 each: the first in order wins a tie
  p.BeginClone("big", 0);
  EXPECT_EQ(p.NextRefill(0), "small");
  p.BeginClone("small", 0);
  EXPECT_EQ(p.NextRefill(0), std::nullopt);
  EXPECT_EQ(p.NextRefillTime(), std::nullopt);
  EXPECT_EQ(p.Counters("big").cloning, 3u);
}

TEST(WarmPool, RateCapsRefills) {
  WarmPool p;
  p.Configure("t", 5, 2.0);  // one clone per 0.5 s
  ASSERT_EQ(p.NextRefill(10 * kSecond), "t");
  p.BeginClone("t", 10 * kSecond);
  EXPECT_EQ(p.NextRefill(10 * kSecond + kSecond / 4), std::nullopt);
  EXPECT_EQ(p.NextRefillTime(), 10 * kSecond + kSecond / 2);
  EXPECT_EQ(p.NextRefill(10 * kSecond + kSecond / 2), "t");
}

TEST(WarmPool, FailuresBackOffDoublingAndSuccessResets) {
  WarmPool p;
  p.Configure("t", 1, 0);
  p.BeginClone("t", 0);
  p.CloneFailed("t", 0, kSecond, "no kvm");
  EXPECT_EQ(p.NextRefill(kSecond - 1), std::nullopt);
  EXPECT_EQ(p.NextRefill(kSecond), "t");
  p.BeginClone("t", kSecond);
  p.CloneFailed("t", kSecond, kSecond, "no kvm");
  EXPECT_EQ(p.NextRefill(2 * kSecond), std::nullopt);  // 2 s now
  EXPECT_EQ(p.NextRefill(3 * kSecond), "t");
  PoolCounters c = p.Counters("t");
  EXPECT_EQ(c.failures_total, 2u);
  EXPECT_EQ(c.last_error, "no kvm");
  p.BeginClone("t", 3 * kSecond);
  EXPECT_TRUE(p.CloneSucceeded("t", "a"));
  EXPECT_EQ(p.Counters("t").clones_total, 1u);
  EXPECT_EQ(p.Take("t"), "a");
  p.BeginClone("t", 3 * kSecond);
  p.CloneFailed("t", 3 * kSecond, kSecond, "again");
  EXPECT_EQ(p.NextRefill(4 * kSecond), "t");  // back to 1 s after the success
}

TEST(WarmPool, RemoveReturnsReadyVmsAndLateClonesAreRefused) {
  WarmPool p;
  p.Configure("t", 2, 0);
  p.BeginClone("t", 0);
  p.BeginClone("t", 0);
  EXPECT_TRUE(p.CloneSucceeded("t", "a"));
  EXPECT_EQ(p.Remove("t"), std::vector<std::string>{"a"});
  EXPECT_FALSE(p.Has("t"));
  EXPECT_FALSE(p.CloneSucceeded("t", "b"));  // the caller releases b
  EXPECT_EQ(p.NextRefill(0), std::nullopt);
}

// ---- EventBus, names --------------------------------------------------------------

pb::Event MakeEvent(const std::string& tmpl, const std::string& id) {
  pb::Event e;
  e.set_type(pb::Event::TYPE_VM_READY);
  e.set_template_(tmpl);
  e.set_vm_id(id);
  return e;
}

TEST(EventBus, FiltersByTemplateAndEndsOnClose) {
  EventBus bus;
  auto all = bus.Subscribe();
  auto only_a = bus.Subscribe("a");
  bus.Publish(MakeEvent("a", "1"));
  bus.Publish(MakeEvent("b", "2"));
  EXPECT_EQ(all->Next(0)->vm_id(), "1");
  EXPECT_EQ(all->Next(0)->vm_id(), "2");
  EXPECT_EQ(only_a->Next(0)->vm_id(), "1");
  EXPECT_EQ(only_a->Next(0), std::nullopt);
  EXPECT_FALSE(all->closed());
  bus.Close();
  EXPECT_TRUE(all->closed());
  EXPECT_EQ(all->Next(1000), std::nullopt);  // at once, not after a second
  EXPECT_TRUE(bus.Subscribe()->closed());
}

TEST(EventBus, SlowSubscriberLosesOldestEvents) {
  EventBus bus;
  auto sub = bus.Subscribe();
  for (size_t i = 0; i < EventBus::kQueueMax + 3; ++i) bus.Publish(MakeEvent("t", std::to_string(i)));
  EXPECT_EQ(sub->dropped(), 3u);
  EXPECT_EQ(sub->Next(0)->vm_id(), "3");
}

TEST(TemplateRegistry, Names) {
  for (const char* good : {"bare", "linux-6.1", "a_b.c", "X"}) EXPECT_TRUE(ValidTemplateName(good)) << good;
  for (const char* bad : {"", ".", "..", ".hidden", "a/b", "a b", "é"}) EXPECT_FALSE(ValidTemplateName(bad)) << bad;
  EXPECT_TRUE(ValidTemplateName(std::string(64, 'a')));
  EXPECT_FALSE(ValidTemplateName(std::string(65, 'a')));
}

// ---- A daemon in this process ---------------------------------------------------------

using kf::testing::WriteFakeTemplate;

bool Alive(pid_t pid) {
  const auto stat = ReadProcStat(pid);
  return stat && stat->state != 'Z';
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-daemon-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    options_.socket = root_ + "/factory.sock";
    options_.run_dir = root_ + "/run";
    options_.state_dir = root_ + "/state";
    options_.zygote_exe = KF_BINARY;
    options_.mem_floor_bytes = 0;
    options_.hooks.log = [this](LogSeverity, const std::string& msg, const std::string&,
                                const std::string&) {
      std::lock_guard lock(log_mu_);
      log_ += msg + "\n";
    };
  }
  void TearDown() override {
    daemon_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  void StartDaemon() {
    auto d = Daemon::Start(options_);
    ASSERT_TRUE(d.ok()) << d.error().message();
    daemon_ = std::move(*d);
    stub_ = pb::Factory::NewStub(
        grpc::CreateChannel("unix:" + options_.socket, grpc::InsecureChannelCredentials()));
  }
  std::string AddFakeTemplate(const std::string& name) {
    const std::string dir = options_.state_dir + "/templates/" + name;
    fs::create_directories(options_.state_dir + "/templates");
    WriteFakeTemplate(dir);
    return dir;
  }

  static void Deadline(grpc::ClientContext& ctx, int ms = 10000) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  }
  grpc::Status GetVm(const std::string& tmpl, pb::GetVMResponse* resp = nullptr,
                     int deadline_ms = 10000) {
    grpc::ClientContext ctx;
    Deadline(ctx, deadline_ms);
    pb::GetVMRequest req;
    req.set_template_(tmpl);
    pb::GetVMResponse ignored;
    return stub_->GetVM(&ctx, req, resp ? resp : &ignored);
  }
  grpc::Status Create(const pb::CreateTemplateRequest& req) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    pb::CreateTemplateResponse resp;
    return stub_->CreateTemplate(&ctx, req, &resp);
  }
  pb::StatusResponse GetStatus() {
    grpc::ClientContext ctx;
    Deadline(ctx);
    pb::StatusResponse resp;
    grpc::Status s = stub_->Status(&ctx, pb::StatusRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // grpc.health.v1.Health/Check without its generated stubs: the request is
  // HealthCheckRequest{service = 1}, the reply HealthCheckResponse{status = 1}
  // (SERVING = 1). Returns the status, or -1 if the call failed.
  int HealthCheck(const std::string& service) {
    auto channel = grpc::CreateChannel("unix:" + options_.socket, grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    std::string req;
    if (!service.empty()) req = std::string("\x0a", 1) + char(service.size()) + service;
    grpc::Slice slice(req);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext ctx;
    Deadline(ctx, 5000);
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) { done.set_value(s); });
    grpc::Status s = done.get_future().get();
    if (!s.ok()) return -1;
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    std::string bytes;
    for (auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
    return bytes.empty() ? 0 : -2;
  }

  std::string root_;
  DaemonOptions options_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<pb::Factory::Stub> stub_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(DaemonTest, HealthServingThenGoneAfterDrain) {
  StartDaemon();
  EXPECT_EQ(HealthCheck(""), 1);
  EXPECT_EQ(HealthCheck(kHealthServiceName), 1);
  daemon_->Drain();
  EXPECT_EQ(HealthCheck(""), -1);
  EXPECT_FALSE(fs::exists(options_.socket));
  EXPECT_FALSE(fs::exists(options_.socket + ".lock"));
}

TEST_F(DaemonTest, SocketIsMode0600) {
  StartDaemon();
  struct stat st;
  ASSERT_EQ(::stat(options_.socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DaemonTest, RefusesASecondDaemonOnTheSameSocketOrRunDir) {
  StartDaemon();
  DaemonOptions same_socket = options_;
  same_socket.run_dir = root_ + "/run2";
  auto second = Daemon::Start(same_socket);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("taken"), std::string::npos) << second.error().message();
  DaemonOptions same_run = options_;
  same_run.socket = root_ + "/other.sock";
  auto third = Daemon::Start(same_run);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.error().message().find("daemon.lock"), std::string::npos)
      << third.error().message();
  // The first one is untouched.
  EXPECT_EQ(HealthCheck(""), 1);
  EXPECT_TRUE(fs::exists(options_.socket));
}

TEST_F(DaemonTest, RemovesAStaleSocketButNotAFile) {
  // A socket file nobody listens on: what a killed daemon leaves.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, options_.socket.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  StartDaemon();
  EXPECT_EQ(HealthCheck(""), 1);
  daemon_.reset();

  std::ofstream(options_.socket) << "not a socket";
  auto d = Daemon::Start(options_);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("not a socket"), std::string::npos) << d.error().message();
  EXPECT_TRUE(fs::exists(options_.socket));  // left alone
}

TEST_F(DaemonTest, GetVmInvalidArgumentNotFoundDeadline) {
  StartDaemon();
  EXPECT_EQ(GetVm("").error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetVm("../etc").error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    pb::GetVMRequest req;
    req.set_template_("nope");
    (*req.mutable_labels())[""] = "x";
    pb::GetVMResponse resp;
    EXPECT_EQ(stub_->GetVM(&ctx, req, &resp).error_code(), StatusCode::INVALID_ARGUMENT);
  }
  // An expired deadline, over the wire (the client may fail it before
  // sending) and in the core itself.
  EXPECT_EQ(GetVm("nope", nullptr, -1000).error_code(), StatusCode::DEADLINE_EXCEEDED);
  pb::GetVMRequest req;
  req.set_template_("nope");
  pb::GetVMResponse resp;
  EXPECT_EQ(daemon_->core().GetVm(req, MonotonicNs(), &resp).error_code(),
            StatusCode::DEADLINE_EXCEEDED);
}

TEST_F(DaemonTest, ReleaseAndRenewUnknownVm) {
  StartDaemon();
  for (const std::string id : {"", "vm-000000000000"}) {
    const StatusCode want = id.empty() ? StatusCode::INVALID_ARGUMENT : StatusCode::NOT_FOUND;
    grpc::ClientContext c1, c2;
    Deadline(c1);
    Deadline(c2);
    pb::ReleaseVMRequest rel;
    rel.set_id(id);
    pb::ReleaseVMResponse rel_resp;
    EXPECT_EQ(stub_->ReleaseVM(&c1, rel, &rel_resp).error_code(), want) << id;
    pb::RenewLeaseRequest renew;
    renew.set_id(id);
    pb::RenewLeaseResponse renew_resp;
    EXPECT_EQ(stub_->RenewLease(&c2, renew, &renew_resp).error_code(), want) << id;
  }
}

TEST_F(DaemonTest, CreateTemplateInvalidArguments) {
  StartDaemon();
  auto req = [](const std::string& name, pb::GuestKind kind, uint32_t mem) {
    pb::CreateTemplateRequest r;
    r.set_name(name);
    r.set_guest(kind);
    r.set_mem_mib(mem);
    return r;
  };
  EXPECT_EQ(Create(req("", pb::GUEST_KIND_BARE, 0)).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("a/b", pb::GUEST_KIND_BARE, 0)).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("t", pb::GUEST_KIND_UNSPECIFIED, 0)).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("t", static_cast<pb::GuestKind>(99), 0)).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("t", pb::GUEST_KIND_BARE, 1)).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("t", pb::GUEST_KIND_BARE, 70000)).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create(req("t", pb::GUEST_KIND_LINUX, 32)).error_code(), StatusCode::INVALID_ARGUMENT);
  auto init_too_big = req("t", pb::GUEST_KIND_BARE, 64);
  init_too_big.set_init_mib(64);
  EXPECT_EQ(Create(init_too_big).error_code(), StatusCode::INVALID_ARGUMENT);
  auto bare_kernel = req("t", pb::GUEST_KIND_BARE, 0);
  bare_kernel.set_kernel("/boot/vmlinuz");
  EXPECT_EQ(Create(bare_kernel).error_code(), StatusCode::INVALID_ARGUMENT);
  auto linux_init = req("t", pb::GUEST_KIND_LINUX, 0);
  linux_init.set_init_mib(8);
  EXPECT_EQ(Create(linux_init).error_code(), StatusCode::INVALID_ARGUMENT);
  AddFakeTemplate("taken");
  EXPECT_EQ(Create(req("taken", pb::GUEST_KIND_BARE, 0)).error_code(), StatusCode::ALREADY_EXISTS);
  if (!Kvm::UnavailableReason().empty()) {
    grpc::Status s = Create(req("t", pb::GUEST_KIND_BARE, 0));
    EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_NE(s.error_message().find("KVM"), std::string::npos);
  }
}

TEST_F(DaemonTest, DeleteTemplate) {
  const std::string dir = AddFakeTemplate("fake");
  StartDaemon();
  for (const auto& [name, want] : std::vector<std::pair<std::string, StatusCode>>{
           {"", StatusCode::INVALID_ARGUMENT}, {"nope", StatusCode::NOT_FOUND},
           {"fake", StatusCode::OK}, {"fake", StatusCode::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    pb::DeleteTemplateRequest req;
    req.set_name(name);
    pb::DeleteTemplateResponse resp;
    EXPECT_EQ(stub_->DeleteTemplate(&ctx, req, &resp).error_code(), want) << name;
  }
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(GetVm("fake").error_code(), StatusCode::NOT_FOUND);
}

TEST_F(DaemonTest, ListsAndStatus) {
  AddFakeTemplate("fake");
  options_.max_live_vms = 7;
  StartDaemon();
  grpc::ClientContext c1, c2;
  Deadline(c1);
  Deadline(c2);
  pb::ListTemplatesResponse templates;
  ASSERT_TRUE(stub_->ListTemplates(&c1, pb::ListTemplatesRequest(), &templates).ok());
  ASSERT_EQ(templates.templates_size(), 1);
  EXPECT_EQ(templates.templates(0).name(), "fake");
  EXPECT_EQ(templates.templates(0).guest(), pb::GUEST_KIND_BARE);
  EXPECT_EQ(templates.templates(0).mem_bytes(), 2u << 20);
  EXPECT_EQ(templates.templates(0).vcpus(), 1u) << "the fake template has one vCPU";
  EXPECT_EQ(templates.templates(0).error(), "");
  pb::ListVMsRequest all;
  all.set_include_pool(true);
  pb::ListVMsResponse vms;
  ASSERT_TRUE(stub_->ListVMs(&c2, all, &vms).ok());
  EXPECT_EQ(vms.vms_size(), 0);
  pb::StatusResponse st = GetStatus();
  EXPECT_TRUE(st.has_max_vms());
  EXPECT_EQ(st.max_vms(), 7u);
  EXPECT_EQ(st.live_vms(), 0u);
  EXPECT_GT(st.mem_available_bytes(), 0u);
  EXPECT_EQ(st.socket(), options_.socket);
  ASSERT_EQ(st.pools_size(), 1);
  EXPECT_EQ(st.pools(0).template_(), "fake");
  EXPECT_EQ(st.pools(0).target(), 0u);
  EXPECT_EQ(st.kvm_unavailable(), Kvm::UnavailableReason());
}

TEST_F(DaemonTest, ResourceExhaustedAtTheCapAndBelowTheMemoryFloor) {
  AddFakeTemplate("fake");
  options_.max_live_vms = 0;
  StartDaemon();
  grpc::Status s = GetVm("fake");
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  daemon_.reset();
  options_.max_live_vms = std::nullopt;
  options_.mem_floor_bytes = ~0ull;  // more than any host has
  StartDaemon();
  s = GetVm("fake");
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("MemAvailable"), std::string::npos);
}

// Without KVM: the zygote starts (posix_spawn of kata-factory zygote) and
// loads the template, the clone fails, GetVM says why, nothing is left.
TEST_F(DaemonTest, PoolMissWithoutKvmFailsCleanly) {
  if (Kvm::UnavailableReason().empty()) GTEST_SKIP() << "KVM is usable here: kvm_daemon_test";
  AddFakeTemplate("fake");
  StartDaemon();
  grpc::Status s = GetVm("fake");
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_NE(s.error_message().find("KVM is not usable here"), std::string::npos)
      << s.error_message();
  // Refused before anything started: no zygote, no VM directory.
  EXPECT_TRUE(FindOurProcesses(options_.run_dir).empty());
  EXPECT_TRUE(!fs::exists(options_.run_dir + "/vms") || fs::is_empty(options_.run_dir + "/vms"));
  daemon_.reset();
  EXPECT_TRUE(FindOurProcesses(options_.run_dir).empty());
}

TEST_F(DaemonTest, FailingPoolRefillBacksOff) {
  if (Kvm::UnavailableReason().empty()) GTEST_SKIP() << "KVM is usable here: kvm_daemon_test";
  AddFakeTemplate("fake");
  options_.default_pool.size = 2;
  options_.refill_backoff_ms = 500;
  StartDaemon();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  pb::StatusResponse st = GetStatus();
  ASSERT_EQ(st.pools_size(), 1);
  EXPECT_EQ(st.pools(0).target(), 2u);
  EXPECT_EQ(st.pools(0).ready(), 0u);
  // 0 s, 0.5 s, then 1.5 s: two or three tries, not hundreds.
  EXPECT_GE(st.pools(0).clone_failures_total(), 1u);
  EXPECT_LE(st.pools(0).clone_failures_total(), 3u);
  EXPECT_NE(st.pools(0).last_error(), "");
}

TEST_F(DaemonTest, WatchEventsEndsWhenTheDaemonDrains) {
  StartDaemon();
  grpc::ClientContext ctx;
  auto reader = stub_->WatchEvents(&ctx, pb::WatchEventsRequest());
  reader->WaitForInitialMetadata();  // the stream is live
  std::thread drain([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    daemon_->Drain();
  });
  pb::Event e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_TRUE(reader->Finish().ok());
  drain.join();
}

TEST_F(DaemonTest, RestartCleansWhatADeadDaemonLeft) {
  const std::string dir = AddFakeTemplate("fake");
  // A zygote of an earlier daemon on this run dir, and a VM directory.
  auto leftover = Zygote::SpawnProcess(KF_BINARY, dir, {"--run-dir", options_.run_dir});
  ASSERT_TRUE(leftover.ok()) << leftover.error().message();
  const pid_t pid = leftover->pid();
  fs::create_directories(options_.run_dir + "/vms/vm-0123456789ab");
  std::ofstream(options_.run_dir + "/vms/vm-0123456789ab/agent.sock") << "";
  ASSERT_EQ(FindOurProcesses(options_.run_dir), std::vector<pid_t>{pid});
  StartDaemon();
  EXPECT_FALSE(Alive(pid));
  EXPECT_FALSE(fs::exists(options_.run_dir + "/vms/vm-0123456789ab"));
  std::lock_guard lock(log_mu_);
  EXPECT_NE(log_.find("killed leftover process " + std::to_string(pid)), std::string::npos) << log_;
}

// ---- The verbs that talk to the daemon -----------------------------------------------

using kf::testing::Cli;
using kf::testing::CliRun;

TEST(DaemonCli, HelpAndUsage) {
  const CliRun top = Cli("--help");
  for (const char* verb : {"daemon", "get", "release", "status", "ls"}) {
    EXPECT_NE(top.output.find(std::string("  ") + verb), std::string::npos) << verb;
    const CliRun r = Cli(std::string(verb) + " --help");
    EXPECT_EQ(r.status, 0) << verb << "\n" << r.output;
    EXPECT_NE(r.output.find(std::string("Usage: kata-factory ") + verb), std::string::npos);
  }
  for (const char* args : {"get", "get a b", "release", "status extra", "ls --bogus",
                           "daemon extra", "daemon --max-live-vms x", "get t --label novalue",
                           "zygote"})
    EXPECT_EQ(Cli(args).status, 2) << args;
}

TEST_F(DaemonTest, CliTalksToTheDaemon) {
  const CliRun none = Cli("status --socket " + root_ + "/nobody.sock");
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.output.find("UNAVAILABLE"), std::string::npos) << none.output;
  AddFakeTemplate("fake");
  StartDaemon();
  const std::string sock = " --socket " + options_.socket;
  const CliRun status = Cli("status" + sock);
  EXPECT_EQ(status.status, 0) << status.output;
  EXPECT_NE(status.output.find("fake"), std::string::npos) << status.output;
  const CliRun json = Cli("status --json" + sock);
  EXPECT_EQ(json.status, 0);
  EXPECT_EQ(json.output.substr(0, 2), "{\"") << json.output;
  EXPECT_EQ(Cli("ls --all" + sock).status, 0);
  EXPECT_EQ(Cli("ls --json" + sock).output, "{\"vms\":[]}\n");
  const CliRun get = Cli("get nope" + sock);
  EXPECT_EQ(get.status, 1);
  EXPECT_NE(get.output.find("NOT_FOUND"), std::string::npos) << get.output;
  const CliRun release = Cli("release vm-000000000000" + sock);
  EXPECT_EQ(release.status, 1);
  EXPECT_NE(release.output.find("NOT_FOUND"), std::string::npos) << release.output;
}

}  // namespace
}  // namespace kf::daemon
