// The daemon wired to its operations pieces (factory/daemon/ops_bridge.h),
// without KVM: the config (file and flags) mapped onto DaemonOptions, a
// daemon in this process whose GetVM outcomes show on GET /metrics and in
// a JSON-lines log file, and `kata-factory daemon` as a process (SIGHUP
// reopens its log, SIGTERM drains).
#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "factory/daemon/ops/config_flags.h"
#include "factory/daemon/ops_bridge.h"
#include "proto/factory.grpc.pb.h"
#include "snapshot/template_files.h"
#include "tests/fake_template.h"

namespace kf::daemon {
namespace {

namespace fs = std::filesystem;
using grpc::StatusCode;

ops::DaemonConfig ConfigFrom(const std::vector<std::string>& args) {
  auto c = ops::DaemonConfigFromArgs(args);
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c.ok() ? *c : ops::DaemonConfig();
}

// ---- Config -> DaemonOptions ------------------------------------------------------

TEST(DaemonBridgeConfig, MapsEveryKey) {
  auto o = DaemonOptionsFromConfig(ConfigFrom({
      "--socket", "/s/f.sock", "--run-dir", "/r", "--state-dir", "/st", "--tcp-listen",
      "127.0.0.1:5000", "--max-live-vms", "0", "--mem-floor", "2G", "--lease-seconds", "30",
      "--guest-dir", "/g", "--pool-size", "4", "--refill-per-second", "1.5", "--mergeable",
      "false", "--templates.pre.path", "/t/pre", "--templates.pre.pool-size", "3",
      "--templates.pre.refill-per-second", "2.5", "--templates.pre.mergeable", "false",
      "--templates.made.guest", "bare", "--templates.made.mem-mib", "64"}));
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->socket, "/s/f.sock");
  EXPECT_EQ(o->run_dir, "/r");
  EXPECT_EQ(o->state_dir, "/st");
  EXPECT_EQ(o->tcp_listen, "127.0.0.1:5000");
  EXPECT_FALSE(o->max_live_vms.has_value());  // 0 in the config: no cap
  EXPECT_EQ(o->mem_floor_bytes, 2ull << 30);
  EXPECT_EQ(o->default_lease_seconds, 30u);
  EXPECT_EQ(o->guest_dir, "/g");
  EXPECT_EQ(o->default_pool.size, 4u);
  EXPECT_DOUBLE_EQ(o->default_pool.refill_per_second, 1.5);
  EXPECT_FALSE(o->default_pool.mergeable);
  ASSERT_EQ(o->external_templates.size(), 1u);
  EXPECT_EQ(o->external_templates.at("pre"), "/t/pre");
  ASSERT_EQ(o->pools.count("pre"), 1u);
  EXPECT_EQ(o->pools.at("pre").size, 3u);
  EXPECT_DOUBLE_EQ(o->pools.at("pre").refill_per_second, 2.5);
  EXPECT_FALSE(o->pools.at("pre").mergeable);
  // A guest template: created at start; its pool has the section's defaults.
  ASSERT_EQ(o->startup_templates.count("made"), 1u);
  EXPECT_EQ(o->startup_templates.at("made").guest, "bare");
  EXPECT_EQ(o->startup_templates.at("made").mem_mib, 64u);
  EXPECT_EQ(o->external_templates.count("made"), 0u);
  EXPECT_EQ(o->pools.at("made").size, 0u);
  EXPECT_TRUE(o->pools.at("made").mergeable);
  EXPECT_TRUE(o->hooks.log == nullptr);
}

TEST(DaemonBridgeConfig, DefaultsAndCap) {
  auto d = DaemonOptionsFromConfig(ops::DaemonConfig());
  ASSERT_TRUE(d.ok());
  const DaemonOptions core_defaults;
  EXPECT_EQ(d->socket, core_defaults.socket);
  EXPECT_EQ(d->run_dir, core_defaults.run_dir);
  EXPECT_EQ(d->state_dir, core_defaults.state_dir);
  EXPECT_EQ(d->max_live_vms, core_defaults.max_live_vms);
  EXPECT_EQ(d->mem_floor_bytes, core_defaults.mem_floor_bytes);
  EXPECT_EQ(d->default_pool.size, 0u);
  EXPECT_TRUE(d->default_pool.mergeable);
  auto capped = DaemonOptionsFromConfig(ConfigFrom({"--max-live-vms", "5"}));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->max_live_vms, std::optional<uint64_t>(5));
}

TEST(DaemonBridgeConfig, FromAFileWithFlagsOverIt) {
  char dir[] = "/tmp/kf-bridge-cfg-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/config.toml";
  std::ofstream(path) << "max_live_vms = 0\npool_size = 1\n"
                         "[templates.a]\npath = \"/t/a\"\npool_size = 2\n";
  auto o = DaemonOptionsFromConfig(
      ConfigFrom({"--config", path, "--templates.a.pool-size", "5", "--max-live-vms", "10"}));
  fs::remove_all(dir);
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->max_live_vms, std::optional<uint64_t>(10));
  EXPECT_EQ(o->default_pool.size, 1u);
  EXPECT_EQ(o->pools.at("a").size, 5u);
  EXPECT_EQ(o->external_templates.at("a"), "/t/a");
}

TEST(DaemonBridgeConfig, RefusesWhatTheCoreCannotTake) {
  auto msg = [](const std::vector<std::string>& args) {
    auto o = DaemonOptionsFromConfig(ConfigFrom(args));
    return o.ok() ? std::string() : o.error().message();
  };
  EXPECT_NE(msg({"--pool-size", "100001"}).find("pool_size"), std::string::npos);
  EXPECT_NE(msg({"--max-live-vms", "0", "--templates.a.path", "/a", "--templates.a.pool-size",
                 "100001"})
                .find("templates.a.pool_size"),
            std::string::npos);
  EXPECT_NE(msg({"--lease-seconds", "4294967296"}).find("lease_seconds"), std::string::npos);
  EXPECT_NE(msg({"--templates..hidden.path", "/a"}).find("templates..hidden"), std::string::npos);
  EXPECT_EQ(msg({"--lease-seconds", "4294967295"}), "");
  EXPECT_EQ(msg({"--kvm-nx-huge-pages", "sometimes"}),
            "kvm_nx_huge_pages: 'sometimes' is not keep or never");
}

TEST(DaemonBridgeConfig, KvmNxHugePages) {
  auto d = DaemonOptionsFromConfig(ops::DaemonConfig());
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->kvm_nx_huge_pages_never);  // keep: the host's setting is left alone
  auto never = DaemonOptionsFromConfig(ConfigFrom({"--kvm-nx-huge-pages", "never"}));
  ASSERT_TRUE(never.ok()) << never.error().message();
  EXPECT_TRUE(never->kvm_nx_huge_pages_never);
}

TEST(DaemonBridgeConfig, OlderFlagSpellings) {
  auto args = ExpandDaemonFlagAliases({"--socket", "/s", "--mem-floor-mib", "3", "--no-mergeable",
                                       "--pool-size=2", "--max_live_vms", "7"});
  ASSERT_TRUE(args.ok()) << args.error().message();
  const ops::DaemonConfig c = ConfigFrom(*args);
  EXPECT_EQ(c.socket, "/s");
  EXPECT_EQ(c.mem_floor_bytes, 3ull << 20);
  EXPECT_FALSE(c.mergeable);
  EXPECT_EQ(c.pool_size, 2u);
  EXPECT_EQ(c.max_live_vms, 7u);
  auto eq = ExpandDaemonFlagAliases({"--mem-floor-mib=0"});
  ASSERT_TRUE(eq.ok());
  EXPECT_EQ(ConfigFrom(*eq).mem_floor_bytes, 0u);
  EXPECT_FALSE(ExpandDaemonFlagAliases({"--mem-floor-mib", "x"}).ok());
  EXPECT_FALSE(ExpandDaemonFlagAliases({"--mem-floor-mib", "-1"}).ok());
  // A flag without its value is left for the config's parser to refuse.
  auto dangling = ExpandDaemonFlagAliases({"--socket"});
  ASSERT_TRUE(dangling.ok());
  EXPECT_FALSE(ops::DaemonConfigFromArgs(*dangling).ok());
}

TEST(DaemonBridge, StatusCodeNamesAndLoopback) {
  EXPECT_STREQ(StatusCodeName(StatusCode::OK), "OK");
  EXPECT_STREQ(StatusCodeName(StatusCode::NOT_FOUND), "NOT_FOUND");
  EXPECT_STREQ(StatusCodeName(StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_STREQ(StatusCodeName(StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
}

// ---- A daemon in this process, with its ops pieces ------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// GET `path` from 127.0.0.1:port; the whole response ("" if no connection).
std::string HttpGet(uint16_t port, const std::string& path = "/metrics") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

using kf::testing::WriteFakeTemplate;

class DaemonBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-bridge-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    log_file_ = root_ + "/daemon.log";
    args_ = {"--socket",     root_ + "/factory.sock", "--run-dir", root_ + "/run",
             "--state-dir",  root_ + "/state",        "--mem-floor", "0",
             "--metrics-listen", "127.0.0.1:0",       "--log-file", log_file_,
             "--log-level",  "info"};
  }
  void TearDown() override {
    if (ops_) ops_->Attach(nullptr);
    daemon_.reset();
    ops_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  // Starts the bridge and the daemon as `kata-factory daemon` does.
  void Start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = args_;
    args.insert(args.end(), extra.begin(), extra.end());
    auto config = ops::DaemonConfigFromArgs(args);
    ASSERT_TRUE(config.ok()) << config.error().message();
    auto o = DaemonOptionsFromConfig(*config);
    ASSERT_TRUE(o.ok()) << o.error().message();
    o->zygote_exe = KF_BINARY;
    auto bridge = OpsBridge::Create(*config);
    ASSERT_TRUE(bridge.ok()) << bridge.error().message();
    ops_ = std::move(*bridge);
    o->hooks = ops_->Hooks();
    Status m = ops_->StartMetrics();
    ASSERT_TRUE(m.ok()) << m.error().message();
    ASSERT_NE(ops_->metrics_port(), 0);
    auto d = Daemon::Start(std::move(*o));
    ASSERT_TRUE(d.ok()) << d.error().message();
    daemon_ = std::move(*d);
    ops_->Attach(&daemon_->core());
    stub_ = pb::Factory::NewStub(grpc::CreateChannel("unix:" + root_ + "/factory.sock",
                                                     grpc::InsecureChannelCredentials()));
  }
  grpc::Status GetVm(const std::string& tmpl) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    pb::GetVMRequest req;
    req.set_template_(tmpl);
    pb::GetVMResponse resp;
    return stub_->GetVM(&ctx, req, &resp);
  }
  std::string Metrics() {
    const std::string r = HttpGet(ops_->metrics_port());
    EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
    return r;
  }

  std::string root_, log_file_;
  std::vector<std::string> args_;
  std::unique_ptr<OpsBridge> ops_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<pb::Factory::Stub> stub_;
};

TEST_F(DaemonBridgeTest, MetricsCountEveryGetVmOutcome) {
  fs::create_directories(root_ + "/state/templates");
  WriteFakeTemplate(root_ + "/state/templates/fake");
  WriteFakeTemplate(root_ + "/elsewhere");  // [templates.ext] path = ...
  Start({"--templates.ext.path", root_ + "/elsewhere"});
  ops_->set_gauge_ttl(std::chrono::milliseconds(0));  // this test wants fresh gauges
  std::string m = Metrics();
  for (const char* name :
       {"katafactory_clone_seconds_bucket{le=\"0.0001\"} 0", "katafactory_getvm_seconds_count",
        "katafactory_getvm_total{code=\"OK\"} 0", "katafactory_live_vms 0",
        "katafactory_ksm_pages_sharing ", "katafactory_ksm_pages_shared ",
        "katafactory_pool_size{template=\"fake\"} 0",
        "katafactory_pool_size{template=\"ext\"} 0", "# TYPE katafactory_vm_memory_bytes gauge"})
    EXPECT_NE(m.find(name), std::string::npos) << name << "\n" << m;
  EXPECT_EQ(m.find("code=\"NOT_FOUND\""), std::string::npos);

  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(GetVm("").error_code(), StatusCode::INVALID_ARGUMENT);
  m = Metrics();
  EXPECT_NE(m.find("katafactory_getvm_total{code=\"NOT_FOUND\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("katafactory_getvm_total{code=\"INVALID_ARGUMENT\"} 1"), std::string::npos)
      << m;

  // A template deleted: its pool series goes.
  grpc::ClientContext ctx;
  pb::DeleteTemplateRequest del;
  del.set_name("fake");
  pb::DeleteTemplateResponse del_resp;
  ASSERT_TRUE(stub_->DeleteTemplate(&ctx, del, &del_resp).ok());
  m = Metrics();
  EXPECT_EQ(m.find("katafactory_pool_size{template=\"fake\"}"), std::string::npos) << m;
}

TEST_F(DaemonBridgeTest, GaugesAreCachedBetweenScrapes) {
  fs::create_directories(root_ + "/state/templates");
  WriteFakeTemplate(root_ + "/state/templates/fake");
  Start();
  ops_->set_gauge_ttl(std::chrono::hours(1));
  EXPECT_NE(Metrics().find("katafactory_pool_size{template=\"fake\"} 0"), std::string::npos);
  grpc::ClientContext ctx;
  pb::DeleteTemplateRequest del;
  del.set_name("fake");
  pb::DeleteTemplateResponse del_resp;
  ASSERT_TRUE(stub_->DeleteTemplate(&ctx, del, &del_resp).ok());
  // Within the TTL the gauges are not read again; counters are always live.
  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);
  const std::string m = Metrics();
  EXPECT_NE(m.find("katafactory_pool_size{template=\"fake\"} 0"), std::string::npos) << m;
  EXPECT_NE(m.find("katafactory_getvm_total{code=\"NOT_FOUND\"} 1"), std::string::npos) << m;
}

TEST_F(DaemonBridgeTest, FailedGetVmIsAJsonLogLine) {
  Start();
  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);
  std::string log = ReadFile(log_file_);
  const size_t at = log.find("\"template\":\"nope\"");
  ASSERT_NE(at, std::string::npos) << log;
  const size_t begin = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
  const std::string line = log.substr(begin, log.find('\n', at) - begin);
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  EXPECT_NE(line.find("\"level\":\"info\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"GetVM failed: no template named 'nope'\""), std::string::npos)
      << line;
  EXPECT_NE(line.find("\"code\":\"NOT_FOUND\""), std::string::npos) << line;
  EXPECT_EQ(line.back(), '}') << line;
  // Every line is one JSON object; the core's own lines go there too.
  std::istringstream lines(log);
  for (std::string l; std::getline(lines, l);) {
    EXPECT_EQ(l.rfind("{\"time\":", 0), 0u) << l;
    EXPECT_EQ(l.back(), '}') << l;
  }
  EXPECT_NE(log.find("\"msg\":\"serving on unix:"), std::string::npos) << log;
  EXPECT_NE(log.find("\"msg\":\"serving /metrics\""), std::string::npos) << log;

  // Reopen (what SIGHUP does): after logrotate moved the file, a new one.
  fs::rename(log_file_, log_file_ + ".1");
  ASSERT_TRUE(ops_->ReopenLog().ok());
  EXPECT_EQ(GetVm("again").error_code(), StatusCode::NOT_FOUND);
  log = ReadFile(log_file_);
  EXPECT_NE(log.find("\"template\":\"again\""), std::string::npos) << log;
  EXPECT_EQ(ReadFile(log_file_ + ".1").find("again"), std::string::npos);
}

TEST_F(DaemonBridgeTest, LogLevelDropsLinesBelowIt) {
  args_.insert(args_.end(), {"--log-level", "warn"});
  Start();
  EXPECT_EQ(GetVm("nope").error_code(), StatusCode::NOT_FOUND);  // info: dropped
  const std::string log = ReadFile(log_file_);
  EXPECT_EQ(log.find("nope"), std::string::npos) << log;
  EXPECT_EQ(log.find("\"level\":\"info\""), std::string::npos) << log;
}

TEST_F(DaemonBridgeTest, MetricsOff) {
  args_.insert(args_.end(), {"--metrics-listen", ""});
  auto config = ops::DaemonConfigFromArgs(args_);
  ASSERT_TRUE(config.ok()) << config.error().message();
  auto bridge = OpsBridge::Create(*config);
  ASSERT_TRUE(bridge.ok());
  EXPECT_TRUE((*bridge)->StartMetrics().ok());
  EXPECT_EQ((*bridge)->metrics_port(), 0);
  // Rendering still works (nothing attached: gauges stay 0).
  EXPECT_NE((*bridge)->RenderMetrics().find("katafactory_live_vms 0"), std::string::npos);
}

// [templates.NAME] guest = ...: created at start through the core. Without
// KVM that cannot be done, and the daemon says so and does not start.
TEST_F(DaemonBridgeTest, GuestTemplatesAreCreatedAtStart) {
  std::vector<std::string> args = args_;
  args.insert(args.end(), {"--templates.made.guest", "bare", "--templates.made.mem-mib", "16"});
  auto config = ops::DaemonConfigFromArgs(args);
  ASSERT_TRUE(config.ok()) << config.error().message();
  auto o = DaemonOptionsFromConfig(*config);
  ASSERT_TRUE(o.ok());
  o->zygote_exe = KF_BINARY;
  o->hooks.log = [](LogSeverity, const std::string&, const std::string&, const std::string&) {};
  const bool kvm = ::access("/dev/kvm", R_OK | W_OK) == 0;
  {
    auto d = Daemon::Start(*o);
    if (!kvm) {
      ASSERT_FALSE(d.ok());
      EXPECT_NE(d.error().message().find("templates.made: cannot create the bare template"),
                std::string::npos)
          << d.error().message();
      EXPECT_FALSE(fs::exists(root_ + "/factory.sock"));  // never served
      return;
    }
    ASSERT_TRUE(d.ok()) << d.error().message();
    EXPECT_TRUE(fs::exists(root_ + "/state/templates/made/state.bin"));
  }
  // Restarted: the template is there, and kept as it is.
  const auto before = fs::last_write_time(root_ + "/state/templates/made/state.bin");
  auto again = Daemon::Start(*o);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(fs::last_write_time(root_ + "/state/templates/made/state.bin"), before);
}

// ---- kata-factory daemon, the process ---------------------------------------------------

std::string RunCli(const std::string& args) {
  std::string out;
  FILE* p = ::popen((std::string(KF_BINARY) + " " + args + " 2>&1").c_str(), "r");
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  return out;
}

TEST(DaemonBridgeCli, HelpTellsTheKeys) {
  const std::string help = RunCli("daemon --help");
  for (const char* s : {"--config FILE", "--metrics-listen", "127.0.0.1:9464", "--log-file",
                        "SIGHUP", "--max-live-vms", "0: no cap", "--templates.NAME.KEY",
                        "--mem-floor-mib", "--no-mergeable", "--pool-size"})
    EXPECT_NE(help.find(s), std::string::npos) << s << "\n" << help;
}

bool WaitFor(const std::function<bool()>& cond, int ms = 10000) {
  for (int i = 0; i < ms / 20; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

TEST(DaemonBridgeCli, SighupReopensTheLogAndSigtermDrains) {
  char tmpl[] = "/tmp/kf-bridge-cli-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string root = tmpl, log = root + "/d.log";
  std::vector<std::string> args = {KF_BINARY,        "daemon",        "--socket",
                                   root + "/f.sock", "--run-dir",     root + "/run",
                                   "--state-dir",    root + "/state", "--mem-floor-mib",
                                   "0",              "--metrics-listen", "127.0.0.1:0",
                                   "--log-file",     log,             "--no-mergeable"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, KF_BINARY, nullptr, nullptr, argv.data(), environ), 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(log).find("serving on unix:") != std::string::npos; }))
      << ReadFile(log);
  fs::rename(log, log + ".1");
  ::kill(pid, SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(log).find("log reopened") != std::string::npos; }));
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(ReadFile(log).find("\"msg\":\"drained\""), std::string::npos) << ReadFile(log);
  EXPECT_FALSE(fs::exists(root + "/f.sock"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace kf::daemon
