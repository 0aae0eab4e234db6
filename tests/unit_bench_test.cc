// `kata-factory bench` without KVM: its usage and refusals as a user meets
// them, and its pure pieces (percentiles, sizes, the density stop rule,
// host-limit planning, the JSON report's shape).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench/density.h"
#include "bench/host_limits.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "factory/daemon/daemon_server.h"
#include "snapshot/template_files.h"
#include "vmm-glue/kvm.h"
#include "tests/cli_run.h"

namespace kf::bench {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

using kf::testing::Cli;
using kf::testing::CliRun;

const Value& At(const Struct& s, const std::string& key) {
  static const Value kMissing;
  auto it = s.fields().find(key);
  EXPECT_NE(it, s.fields().end()) << "missing key " << key;
  return it == s.fields().end() ? kMissing : it->second;
}

TEST(BenchCli, HelpNamesEveryMode) {
  CliRun r = Cli("bench --help");
  EXPECT_EQ(r.status, 0);
  for (const char* word : {"latency", "throughput", "density", "working-set", "--mem-budget",
                           "--dirty-pages", "--ksm", "--json", "--self", "--socket", "--compare",
                           "--qemu-clones"})
    EXPECT_NE(r.output.find(word), std::string::npos) << word;
  EXPECT_NE(Cli("--help").output.find("bench"), std::string::npos);
}

TEST(BenchCli, BadUsageIsExit2WithOneLine) {
  for (const char* args : {"bench --mode fast",
                           "bench --qemu-clones 3",
                           "bench --compare --qemu-clones 0",
                           "bench --compare --qemu-clones 101",
                           "bench --count 0",
                           "bench --count -1",
                           "bench --count abc",
                           "bench --count 2000000",
                           "bench --clients 0",
                           "bench --clients 1000",
                           "bench --self --socket /x.sock",
                           "bench --guest windows",
                           "bench --socket /x --guest bare",
                           "bench --mem-budget 12Q",
                           "bench --mem-budget 0",
                           "bench --mem-budget G",
                           "bench --dirty-pages 1,,2",
                           "bench --dirty-pages x",
                           "bench --bogus",
                           "bench extra",
                           "bench --mode latency --ksm",
                           "bench --mode latency --mem-budget 1G",
                           "bench --mode density --dirty-pages 1",
                           "bench --mode latency --clients 4",
                           "bench --socket /x --guest-dir /g",
                           "bench --timeout 0"}) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
    EXPECT_EQ(r.output.rfind("kata-factory: ", 0), 0u) << args << "\n" << r.output;
  }
}

TEST(BenchCli, NoDaemonOnTheSocketIsExit1) {
  CliRun r = Cli("bench --socket /nonexistent/kf-bench.sock --mode latency --count 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("no daemon answers on /nonexistent/kf-bench.sock"), std::string::npos)
      << r.output;
}

TEST(BenchCli, SelfWithoutKvmSaysWhy) {
  if (Kvm::UnavailableReason().empty())
    GTEST_SKIP() << "KVM is usable here: kvm_bench_test runs it";
  CliRun r = Cli("bench --self --mode latency --count 1 --quiet");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("KVM is not usable here"), std::string::npos) << r.output;
}

TEST(BenchCli, DensityThatCannotFitIsRefusedBeforeAnyVm) {
  // 1,000,000 VMs of an in-process daemon need 3,000,000 open files: more
  // than fs.nr_open allows even root, by default.
  auto limits = ReadHostLimits();
  ASSERT_TRUE(limits.ok());
  if (PlanLimits(*limits, 1000000, CostsFor("bare", true)).refusal.empty())
    GTEST_SKIP() << "this host's limits would let 1,000,000 VMs try";
  CliRun r = Cli("bench --mode density --count 1000000 --quiet");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("density: 1000000 live VMs need about"), std::string::npos) << r.output;
}

// Against a running daemon (in this process) whose template loads but
// cannot boot: the bench finds the template, skips pool hits (no pool),
// fails at the first clone, and still prints its report, with the error.
TEST(BenchCli, AgainstASocketAFailedModeStillPrintsTheReport) {
  char tmpl[] = "/tmp/kf-bench-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  daemon::DaemonOptions o;
  o.socket = root + "/factory.sock";
  o.run_dir = root + "/run";
  o.state_dir = root + "/state";
  o.zygote_exe = KF_BINARY;
  o.mem_floor_bytes = 0;
  o.hooks.log = [](daemon::LogSeverity, const std::string&, const std::string&,
                   const std::string&) {};
  std::filesystem::create_directories(o.state_dir + "/templates");
  TemplateState state;
  state.guest_kind = kGuestKindBare;
  state.vcpus.resize(1);
  ASSERT_TRUE(
      WriteTemplate(o.state_dir + "/templates/fake", state, std::vector<uint8_t>(2 << 20, 0)).ok());
  auto d = daemon::Daemon::Start(o);
  ASSERT_TRUE(d.ok()) << d.error().message();

  CliRun r =
      Cli("bench --socket " + o.socket + " --mode latency --count 2 --json --quiet --timeout 2");
  EXPECT_EQ(r.status, 1) << r.output;
  // stdout's JSON object, then the one-line reason on stderr.
  const size_t end = r.output.find('\n');
  ASSERT_NE(end, std::string::npos) << r.output;
  Struct root_json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.output.substr(0, end), &root_json).ok())
      << r.output;
  const Struct& target = At(root_json, "target").struct_value();
  EXPECT_EQ(At(target, "daemon").string_value(), "socket");
  EXPECT_EQ(At(target, "template").string_value(), "fake");
  EXPECT_EQ(At(target, "guest").string_value(), "bare");
  EXPECT_NE(At(root_json, "error").string_value().find("latency: the warm-up VM: GetVM"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.substr(end + 1).rfind("kata-factory: latency: ", 0), 0u) << r.output;
  d->reset();
  std::filesystem::remove_all(root);
}

TEST(BenchStats, NearestRankPercentiles) {
  std::vector<uint64_t> v;
  for (uint64_t i = 100; i >= 1; --i) v.push_back(i * 1000);
  LatencySummary s = Summarize(v);
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.p50_ns, 50000u);
  EXPECT_EQ(s.p90_ns, 90000u);
  EXPECT_EQ(s.p99_ns, 99000u);
  EXPECT_EQ(s.max_ns, 100000u);
  EXPECT_EQ(s.mean_ns, 50500u);
  EXPECT_EQ(Summarize({}).count, 0u);
  EXPECT_EQ(Summarize({}).p99_ns, 0u);
  LatencySummary one = Summarize({7});
  EXPECT_EQ(one.p50_ns, 7u);
  EXPECT_EQ(one.p99_ns, 7u);
  EXPECT_EQ(one.max_ns, 7u);
}

TEST(BenchStats, ParseBytes) {
  EXPECT_EQ(*ParseBytes("20G"), 20ull << 30);
  EXPECT_EQ(*ParseBytes("20GiB"), 20ull << 30);
  EXPECT_EQ(*ParseBytes("512M"), 512ull << 20);
  EXPECT_EQ(*ParseBytes("64k"), 64ull << 10);
  EXPECT_EQ(*ParseBytes("1T"), 1ull << 40);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("4096B"), 4096u);
  for (const char* bad : {"", "G", "0", "0G", "12Q", "-1G", "1.5G", "99999999999T"})
    EXPECT_FALSE(ParseBytes(bad).ok()) << bad;
}

TEST(BenchStats, ParseUintList) {
  EXPECT_EQ(*ParseUintList("0,256,1024,4096", 10000), (std::vector<uint64_t>{0, 256, 1024, 4096}));
  EXPECT_EQ(*ParseUintList("7", 10), (std::vector<uint64_t>{7}));
  for (const char* bad : {"", ",", "1,", ",1", "1,,2", "a", "1, 2", "11"})
    EXPECT_FALSE(ParseUintList(bad, 10).ok()) << bad;
}

TEST(BenchDensity, StopRule) {
  EXPECT_EQ(DensityStopRule(0, 10, 0, 0), DensityStop::kGoOn);
  EXPECT_EQ(DensityStopRule(9, 10, 0, 1ull << 40), DensityStop::kGoOn);  // no budget
  EXPECT_EQ(DensityStopRule(10, 10, 0, 0), DensityStop::kCount);
  EXPECT_EQ(DensityStopRule(10, 10, 100, 1000), DensityStop::kCount);  // count first
  EXPECT_EQ(DensityStopRule(5, 10, 100, 100), DensityStop::kBudget);   // reached
  // 4 VMs took 80 bytes: the fifth, at 20, would reach 100, not pass it.
  EXPECT_EQ(DensityStopRule(4, 10, 100, 80), DensityStop::kGoOn);
  // 4 VMs took 84: the fifth, at 21, would pass 100.
  EXPECT_EQ(DensityStopRule(4, 10, 100, 84), DensityStop::kBudget);
  EXPECT_EQ(DensityStopRule(0, 10, 100, 0), DensityStop::kGoOn);
  EXPECT_EQ(DensityStep(1), 1u);
  EXPECT_EQ(DensityStep(20), 1u);
  EXPECT_EQ(DensityStep(21), 2u);
  EXPECT_EQ(DensityStep(10000), 500u);
}

HostLimits Roomy() {
  HostLimits l;
  l.pid_max = 4194304;
  l.threads_max = 1000000;
  l.max_map_count = 65530;
  l.nr_open = 1048576;
  l.nofile_soft = 1024;
  l.nofile_hard = 524288;
  l.nproc_soft = l.nproc_hard = 100000;
  return l;
}

TEST(BenchLimits, RaisesTheSoftOpenFileLimitUpToTheHardOne) {
  LimitPlan p = PlanLimits(Roomy(), 10000, CostsFor("bare", true));
  EXPECT_TRUE(p.refusal.empty()) << p.refusal;
  EXPECT_GE(p.nofile_wanted, 30000u);
  EXPECT_FALSE(p.raise_nofile_hard);
  EXPECT_EQ(p.pid_max_wanted, 0u);
  // Against a socket the daemon holds the descriptors, not the bench.
  EXPECT_EQ(PlanLimits(Roomy(), 10000, CostsFor("bare", false)).nofile_wanted, 0u);
}

TEST(BenchLimits, RefusesWhatItCannotRaiseAndSaysHow) {
  HostLimits l = Roomy();
  l.nofile_hard = 4096;
  LimitPlan p = PlanLimits(l, 10000, CostsFor("bare", true));
  EXPECT_NE(p.refusal.find("RLIMIT_NOFILE"), std::string::npos) << p.refusal;
  EXPECT_NE(p.refusal.find("run as root"), std::string::npos) << p.refusal;
  l.root = true;  // root raises the hard limit too
  p = PlanLimits(l, 10000, CostsFor("bare", true));
  EXPECT_TRUE(p.refusal.empty()) << p.refusal;
  EXPECT_TRUE(p.raise_nofile_hard);

  l = Roomy();
  l.pid_max = 32768;
  p = PlanLimits(l, 20000, CostsFor("linux", false));  // 3 tasks per VM
  EXPECT_NE(p.refusal.find("kernel.pid_max is 32768"), std::string::npos) << p.refusal;
  l.root = true;
  p = PlanLimits(l, 20000, CostsFor("linux", false));
  EXPECT_TRUE(p.refusal.empty()) << p.refusal;
  EXPECT_GE(p.pid_max_wanted, 60000u);

  l = Roomy();
  l.nproc_soft = 5000;
  p = PlanLimits(l, 10000, CostsFor("bare", false));
  EXPECT_NE(p.refusal.find("RLIMIT_NPROC"), std::string::npos) << p.refusal;
  EXPECT_TRUE(PlanLimits(l, 100, CostsFor("bare", false)).refusal.empty());
}

// A report with every section filled, as the bench would make it.
BenchReport FullReport() {
  BenchReport r;
  r.command = "kata-factory bench --mode all --json";
  r.date = "2026-11-29T12:00:00Z";
  r.mode = "all";
  r.machine.cpu_model = "CPU \"x\"";
  r.machine.cores = 2;
  r.machine.kvm = "pvm";
  r.template_name = "bare";
  r.guest = "bare";
  r.template_mem_bytes = 128ull << 20;
  LatencyResult lat;
  lat.pool_hit.count = 3;
  lat.pool_hit.total = Summarize({1000000, 2000000, 3000000});
  lat.pool_miss.skipped = "pool target 4";
  r.latency = lat;
  ThroughputResult t;
  t.clients = 2;
  t.done = 10;
  t.vms_per_second = 123.5;
  r.throughput = t;
  DensityResult d;
  d.count = 2;
  d.live = 2;
  d.stop_reason = "count";
  d.limit_actions = {"raised RLIMIT_NOFILE from 1024 to 4096"};
  d.points.push_back(DensityPoint{1, 0.1, 500000, 120000, 2000000, 110000, 550000, {}});
  d.points.push_back(DensityPoint{2, 0.2, 510000, 100000, 2000000, 100000, 550000, {}});
  d.ksm_requested = true;
  d.ksm.after.pages_sharing = 10;
  d.ksm.saved_bytes = 40960;
  r.density = d;
  WorkingSetResult w;
  w.vms_per_step = 2;
  WorkingSetStep s0, s1;
  s0.pages = 0;
  s0.vms = 2;
  s1.pages = 999999;
  s1.skipped = "does not fit";
  w.steps = {s0, s1};
  r.working_set = w;
  return r;
}

TEST(BenchReport, JsonIsOneObjectWithEverySection) {
  const std::string json = ReportJson(FullReport());
  EXPECT_EQ(json.find('\n'), std::string::npos);
  Struct root;
  auto st = google::protobuf::util::JsonStringToMessage(json, &root);
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  EXPECT_EQ(At(root, "report_version").number_value(), kReportVersion);
  EXPECT_EQ(At(root, "command").string_value(), "kata-factory bench --mode all --json");
  EXPECT_EQ(At(root, "date").string_value(), "2026-11-29T12:00:00Z");
  const Struct& machine = At(root, "machine").struct_value();
  EXPECT_EQ(At(machine, "cpu_model").string_value(), "CPU \"x\"");
  for (const char* k : {"cores", "mem_total_bytes", "kernel", "kvm", "under_hypervisor"})
    At(machine, k);
  const Struct& target = At(root, "target").struct_value();
  EXPECT_EQ(At(target, "daemon").string_value(), "self");
  EXPECT_EQ(At(target, "template_mem_bytes").number_value(), 128 << 20);

  const Struct& lat = At(root, "latency").struct_value();
  EXPECT_FALSE(At(lat, "what").string_value().empty());
  const Struct& hit = At(lat, "pool_hit").struct_value();
  const Struct& total = At(hit, "get_vm_to_first_ping_ms").struct_value();
  EXPECT_EQ(At(total, "count").number_value(), 3);
  EXPECT_EQ(At(total, "p50").number_value(), 2.0);
  EXPECT_EQ(At(total, "max").number_value(), 3.0);
  for (const char* k : {"p90", "p99", "mean"}) At(total, k);
  for (const char* k : {"get_vm_ms", "first_ping_ms", "daemon_get_vm_ms", "release_ms"}) At(hit, k);
  EXPECT_EQ(At(At(lat, "pool_miss").struct_value(), "skipped").string_value(), "pool target 4");

  const Struct& tp = At(root, "throughput").struct_value();
  EXPECT_EQ(At(tp, "vms_per_second").number_value(), 123.5);
  EXPECT_EQ(At(tp, "clients").number_value(), 2);

  const Struct& den = At(root, "density").struct_value();
  EXPECT_EQ(At(den, "stop_reason").string_value(), "count");
  const auto& points = At(den, "points").list_value();
  ASSERT_EQ(points.values_size(), 2);
  const Struct& p1 = points.values(1).struct_value();
  EXPECT_EQ(At(p1, "live").number_value(), 2);
  EXPECT_EQ(At(p1, "pss_per_vm").number_value(), 100000);
  for (const char* k : {"mem_available_delta_per_vm", "rss_per_vm", "private_dirty_per_vm",
                        "kvm_estimate_per_vm", "batch_get_vm_to_first_ping_ms"})
    At(p1, k);
  const Struct& limits = At(den, "limits").struct_value();
  for (const char* k : {"pid_max", "max_map_count", "nofile_soft", "nofile_hard"}) At(limits, k);
  EXPECT_EQ(At(limits, "actions").list_value().values_size(), 1);
  const Struct& ksm = At(den, "ksm").struct_value();
  EXPECT_EQ(At(ksm, "saved_bytes").number_value(), 40960);
  EXPECT_EQ(At(ksm, "pages_sharing").number_value(), 10);

  const Struct& ws = At(root, "working_set").struct_value();
  const auto& steps = At(ws, "steps").list_value();
  ASSERT_EQ(steps.values_size(), 2);
  At(steps.values(0).struct_value(), "pss_per_vm");
  EXPECT_EQ(At(steps.values(1).struct_value(), "skipped").string_value(), "does not fit");
  EXPECT_EQ(root.fields().count("error"), 0u);
}

TEST(BenchReport, OnlyTheModesThatRanAndTheError) {
  BenchReport r = FullReport();
  r.throughput.reset();
  r.density.reset();
  r.error = "latency: GetVM: boom";
  Struct root;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ReportJson(r), &root).ok());
  EXPECT_EQ(root.fields().count("throughput"), 0u);
  EXPECT_EQ(root.fields().count("density"), 0u);
  EXPECT_EQ(At(root, "error").string_value(), "latency: GetVM: boom");
  const std::string text = ReportText(r);
  EXPECT_NE(text.find("stopped early: latency: GetVM: boom"), std::string::npos) << text;
  EXPECT_NE(text.find("pool misses: not measured: pool target 4"), std::string::npos) << text;
}

}  // namespace
}  // namespace kf::bench
