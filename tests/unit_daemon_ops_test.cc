// kf_daemon_ops: config (TOML + flags), JSON-lines logger, Prometheus text
// format, the /metrics HTTP server. No KVM, no gRPC.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "factory/daemon/ops/byte_size.h"
#include "factory/daemon/ops/config_file.h"
#include "factory/daemon/ops/config_flags.h"
#include "factory/daemon/ops/config_keys.h"
#include "factory/daemon/ops/factory_metrics.h"
#include "factory/daemon/ops/host_port.h"
#include "factory/json_escape.h"
#include "factory/daemon/ops/json_logger.h"
#include "factory/daemon/ops/metrics.h"
#include "factory/daemon/ops/metrics_http.h"

namespace kf::ops {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/kf_ops_" + std::to_string(getpid()) + "_" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- sizes and addresses ----

TEST(ByteSize, ParsesUnitsAndRejectsJunk) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("2gb"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("1T"), 1ull << 40);
  EXPECT_EQ(*ParseByteSize("8k"), 8192u);
  EXPECT_EQ(*ParseByteSize("10B"), 10u);
  for (const char* bad :
       {"", "G", "2X", "2GG", "-1", "1.5G", "2 G", "99999999999999999999", "20000000T"}) {
    auto r = ParseByteSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message().find(bad), std::string::npos) << bad;
    }
  }
  EXPECT_EQ(FormatByteSize(2ull << 30), "2G");
  EXPECT_EQ(FormatByteSize(1536), "1536");
  EXPECT_EQ(FormatByteSize(0), "0");
}

TEST(HostPort, ParsesV4V6AndNames) {
  auto a = ParseHostPort("127.0.0.1:9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  auto b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  EXPECT_TRUE(ParseHostPort("localhost:80").ok());
  for (const char* bad : {"", "9464", ":9464", "host:", "host:65536", "::1:80", "[::1]80", "h:x"})
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
}

// ---- config ----

constexpr char kGoodConfig[] = R"(
socket = "/tmp/kf/factory.sock"
run_dir = "/tmp/kf/run"
state_dir = "/tmp/kf/state"
tcp_listen = "127.0.0.1:7070"
metrics_listen = ""
log_level = "debug"
log_file = "/tmp/kf/log.jsonl"
max_live_vms = 500
mem_floor = "2G"

[templates.bare]
guest = "bare"
mem_mib = 128
pool_size = 16
refill_per_second = 50.5
mergeable = false

[templates.prebuilt]
path = "/var/lib/kata-factory/templates/prebuilt"
pool_size = 4
refill_per_second = 10
)";

TEST(Config, DefaultsAreDocumentedValues) {
  DaemonConfig c;
  EXPECT_EQ(c.socket, "/run/kata-factory/factory.sock");
  EXPECT_EQ(c.run_dir, "/run/kata-factory");
  EXPECT_EQ(c.state_dir, "/var/lib/kata-factory");
  EXPECT_EQ(c.tcp_listen, "");
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.log_file, "");
  EXPECT_EQ(c.max_live_vms, 1024u);
  EXPECT_EQ(c.mem_floor_bytes, 1ull << 30);
  EXPECT_TRUE(c.templates.empty());
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
  // An empty file is the defaults.
  auto e = ParseDaemonConfig("", "empty.toml");
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_EQ(e->socket, c.socket);
  EXPECT_EQ(e->max_live_vms, c.max_live_vms);
}

TEST(Config, ParsesEveryKey) {
  auto r = ParseDaemonConfig(kGoodConfig, "good.toml");
  ASSERT_TRUE(r.ok()) << r.error().message();
  const DaemonConfig& c = *r;
  EXPECT_EQ(c.socket, "/tmp/kf/factory.sock");
  EXPECT_EQ(c.run_dir, "/tmp/kf/run");
  EXPECT_EQ(c.state_dir, "/tmp/kf/state");
  EXPECT_EQ(c.tcp_listen, "127.0.0.1:7070");
  EXPECT_EQ(c.metrics_listen, "");
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.log_file, "/tmp/kf/log.jsonl");
  EXPECT_EQ(c.max_live_vms, 500u);
  EXPECT_EQ(c.mem_floor_bytes, 2ull << 30);
  EXPECT_EQ(c.source, "good.toml");
  ASSERT_EQ(c.templates.size(), 2u);
  const TemplateConfig& bare = c.templates.at("bare");
  EXPECT_EQ(bare.guest, "bare");
  EXPECT_EQ(bare.mem_mib, 128u);
  EXPECT_EQ(bare.pool_size, 16u);
  EXPECT_DOUBLE_EQ(bare.refill_per_second, 50.5);
  EXPECT_FALSE(bare.mergeable);
  EXPECT_EQ(bare.where, "good.toml:12");
  const TemplateConfig& pre = c.templates.at("prebuilt");
  EXPECT_EQ(pre.path, "/var/lib/kata-factory/templates/prebuilt");
  EXPECT_DOUBLE_EQ(pre.refill_per_second, 10);  // an integer where a number goes
  EXPECT_TRUE(pre.mergeable);                   // default
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
}

TEST(Config, MemFloorTakesBytesToo) {
  auto r = ParseDaemonConfig("mem_floor = 1048576\n", "x.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mem_floor_bytes, 1048576u);
}

// Each bad file: the message names file:line:column and the key.
TEST(Config, ErrorsNameFileLineAndKey) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"socket = \"/s\"\nsockt = \"/x\"\n", "bad.toml:2:9: unknown key \"sockt\""},
      {"max_live_vms = \"many\"\n", "bad.toml:1:16: max_live_vms: expected a non-negative integer"},
      {"max_live_vms = -3\n", "bad.toml:1:16: max_live_vms: must be >= 0"},
      {"mem_floor = \"2Q\"\n", "bad.toml:1:13: mem_floor: bad size \"2Q\""},
      {"mem_floor = true\n", "bad.toml:1:13: mem_floor: expected bytes or a size"},
      {"log_level = \"loud\"\n", "bad.toml:1:13: log_level: bad log level \"loud\""},
      {"socket = 3\n", "bad.toml:1:10: socket: expected a string, got integer 3"},
      {"socket = [1]\n", "bad.toml:1:10: socket: expected a string, got array"},
      {"\n[templates.bare]\npool_size = \"8\"\n",
       "bad.toml:3:13: templates.bare.pool_size: expected a non-negative integer, got string "
       "\"8\""},
      {"[templates.bare]\nguest = \"bare\"\npool = 3\n",
       "bad.toml:3:8: unknown key \"templates.bare.pool\""},
      {"[templates.bare]\nmergeable = \"yes\"\n",
       "bad.toml:2:13: templates.bare.mergeable: expected true or false"},
      {"[templates.bare]\nrefill_per_second = -1.0\n",
       "bad.toml:2:21: templates.bare.refill_per_second: must be a finite number >= 0"},
      {"templates = 3\n", "bad.toml:1:13: templates: expected tables"},
      {"[templates]\nbare = 3\n", "bad.toml:2:1: templates.bare: expected a table"},
      {"[templates.\"a/b\"]\nguest = \"bare\"\n", "bad.toml:1:12: bad template name \"a/b\""},
      {"socket = \"/a\"\nsocket = \"/b\"\n", "bad.toml:2:"},  // duplicate: toml++'s message
      {"socket = \"/a\n", "bad.toml:1:"},                     // syntax
  };
  for (const Case& c : cases) {
    auto r = ParseDaemonConfig(c.text, "bad.toml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().message().rfind(c.want, 0), 0u)
        << "text:\n"
        << c.text << "got:  " << r.error().message() << "\nwant: " << c.want;
  }
}

TEST(Config, ValidationNamesTheSection) {
  auto check = [](const std::string& text, const std::string& want) {
    auto r = ParseDaemonConfig(text, "v.toml");
    ASSERT_TRUE(r.ok()) << r.error().message();
    Status s = ValidateDaemonConfig(*r);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.error().message().find(want), std::string::npos)
        << "got: " << s.error().message() << "\nwant: " << want;
  };
  check("\n[templates.x]\npool_size = 1\n", "v.toml:2: templates.x: give either path");
  check("[templates.x]\npath = \"/p\"\nguest = \"bare\"\n", "templates.x: give either path");
  check("[templates.x]\nguest = \"windows\"\n",
        "templates.x.guest: \"windows\" is not bare or linux");
  check("[templates.x]\npath = \"/p\"\nmem_mib = 64\n", "templates.x.mem_mib: only with guest");
  check("metrics_listen = \"9464\"\n", "v.toml: metrics_listen: bad address \"9464\"");
  check("tcp_listen = \"[::1\"\n", "tcp_listen: bad address");
  check("socket = \"\"\n", "socket: must not be empty");
  check(
      "max_live_vms = 10\n[templates.a]\nguest = \"bare\"\npool_size = 6\n"
      "[templates.b]\nguest = \"bare\"\npool_size = 6\n",
      "(templates.*.pool_size, 12 in all) exceed max_live_vms (10)");
  // max_live_vms = 0: no cap, so any pool fits.
  auto r = ParseDaemonConfig(
      "max_live_vms = 0\n[templates.a]\nguest = \"bare\"\npool_size = 5000\n", "v.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(ValidateDaemonConfig(*r).ok());
}

TEST(Config, LoadFileMissingIsAnError) {
  auto r = LoadDaemonConfig("/nonexistent/kf.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/kf.toml"), std::string::npos);
  EXPECT_NE(r.error().message().find("No such file"), std::string::npos);
}

TEST(ConfigFlags, OverrideFileValues) {
  std::string path = TempPath("flags.toml");
  { std::ofstream(path) << kGoodConfig; }
  auto r = DaemonConfigFromArgs(
      {"--config", path, "--socket", "/tmp/other.sock", "--max-live-vms=100", "--mem-floor", "512M",
       "--templates.bare.pool-size", "3", "--log_level", "warn", "--metrics-listen", "127.0.0.1:0",
       "--templates.new-one.guest", "linux", "--templates.new-one.mergeable", "false"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->socket, "/tmp/other.sock");
  EXPECT_EQ(r->run_dir, "/tmp/kf/run");  // from the file
  EXPECT_EQ(r->max_live_vms, 100u);
  EXPECT_EQ(r->mem_floor_bytes, 512ull << 20);
  EXPECT_EQ(r->templates.at("bare").pool_size, 3u);
  EXPECT_EQ(r->templates.at("bare").mem_mib, 128u);  // untouched
  EXPECT_EQ(r->log_level, LogLevel::kWarn);
  EXPECT_EQ(r->metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(r->templates.at("new-one").guest, "linux");
  EXPECT_FALSE(r->templates.at("new-one").mergeable);
  std::remove(path.c_str());
}

TEST(ConfigFlags, FlagsWithoutAFileStartFromDefaults) {
  auto r = DaemonConfigFromArgs({"--run-dir", "/tmp/r", "--tcp-listen", "[::1]:5000"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->run_dir, "/tmp/r");
  EXPECT_EQ(r->socket, "/run/kata-factory/factory.sock");
  EXPECT_EQ(r->source, "");
}

TEST(ConfigFlags, Errors) {
  auto msg = [](const std::vector<std::string>& args) {
    auto r = DaemonConfigFromArgs(args);
    return r.ok() ? std::string("ok") : r.error().message();
  };
  EXPECT_EQ(msg({"--max-live-vms", "lots"}).rfind("--max-live-vms: max_live_vms: expected", 0), 0u);
  EXPECT_EQ(msg({"--no-such-key", "1"}).rfind("--no-such-key: unknown key \"no_such_key\"", 0), 0u);
  EXPECT_EQ(msg({"--socket"}), "--socket: needs a value");
  EXPECT_EQ(msg({"positional"}).rfind("unexpected argument \"positional\"", 0), 0u);
  EXPECT_EQ(msg({"--templates.x", "1"}).rfind("--templates.x: ", 0), 0u);
  EXPECT_EQ(msg({"--config", "/a", "--config", "/b"}), "--config: given twice");
  EXPECT_NE(msg({"--templates.t.pool-size", "2"}).find("templates.t: give either path"),
            std::string::npos);  // validated after the flags
  EXPECT_NE(msg({"--config", "/nonexistent.toml"}).find("No such file"), std::string::npos);
}

// docs/config.example.toml documents every key: it must parse, validate and
// set every key away from nothing (so a key added to the code but not to
// the example fails here).
TEST(Config, ExampleFileParsesAndCoversEveryKey) {
  std::string path = std::string(KF_SOURCE_DIR) + "/docs/config.example.toml";
  auto r = LoadDaemonConfig(path);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(ValidateDaemonConfig(*r).ok());
  std::string text = ReadAll(path);
  for (const std::string& key : TopLevelKeys())
    EXPECT_NE(text.find("\n" + key + " = "), std::string::npos) << "example lacks " << key;
  for (const std::string& key : TemplateKeys())
    EXPECT_NE(text.find(key + " = "), std::string::npos) << "example lacks templates.*." << key;
  EXPECT_FALSE(r->templates.empty());
}

// ---- JSON logger ----

TEST(JsonEscape, EscapesAndRepairsUtf8) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("q\"b\\"), "\"q\\\"b\\\\\"");
  EXPECT_EQ(JsonString("a\nb\tc\r\b\f"), "\"a\\nb\\tc\\r\\b\\f\"");
  EXPECT_EQ(JsonString(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(JsonString(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(JsonString("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");         // valid UTF-8 kept
  EXPECT_EQ(JsonString("\xFF"), "\"\xEF\xBF\xBD\"");                  // invalid byte
  EXPECT_EQ(JsonString("\xC3"), "\"\xEF\xBF\xBD\"");                  // truncated
  EXPECT_EQ(JsonString("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // overlong
  EXPECT_EQ(JsonString("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // surrogate
}

std::chrono::system_clock::time_point FixedTime() {
  // 2026-05-01T12:34:56.789Z
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(1777638896789LL));
}

TEST(JsonLogger, FormatsLines) {
  EXPECT_EQ(JsonLogger::FormatTime(FixedTime()), "2026-05-01T12:34:56.789Z");
  EXPECT_EQ(JsonLogger::FormatTime(std::chrono::system_clock::time_point()),
            "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(JsonLogger::FormatLine(FixedTime(), LogLevel::kInfo, "started", LogFields()),
            "{\"time\":\"2026-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"started\"}\n");
  LogFields f;
  f.Str("template", "bare")
      .Sandbox("sb-1")
      .Int("pid", -4)
      .Uint("n", 7)
      .Num("ms", 1.25)
      .Bool("hit", true)
      .Num("bad", 0.0 / 0.0)
      .Str("msg", "shadow")
      .Str("k\"ey", "v\n");
  EXPECT_EQ(
      JsonLogger::FormatLine(FixedTime(), LogLevel::kWarn, "vm \"ready\"", f),
      "{\"time\":\"2026-05-01T12:34:56.789Z\",\"level\":\"warn\",\"msg\":\"vm \\\"ready\\\"\","
      "\"sandbox\":\"sb-1\",\"template\":\"bare\",\"pid\":-4,\"n\":7,\"ms\":1.25,"
      "\"hit\":true,\"bad\":null,\"field.msg\":\"shadow\",\"k\\\"ey\":\"v\\n\"}\n");
}

TEST(JsonLogger, FiltersByLevelAndWritesAFile) {
  std::string path = TempPath("log.jsonl");
  std::remove(path.c_str());
  auto logger = JsonLogger::Open(path, LogLevel::kInfo);
  ASSERT_TRUE(logger.ok()) << logger.error().message();
  (*logger)->SetClockForTest(FixedTime);
  (*logger)->Debug("hidden");
  (*logger)->Info("one", LogFields().Sandbox("a"));
  (*logger)->Error("two");
  (*logger)->SetLevel(LogLevel::kError);
  (*logger)->Warn("hidden too");
  EXPECT_FALSE((*logger)->Enabled(LogLevel::kWarn));
  EXPECT_EQ(ReadAll(path),
            "{\"time\":\"2026-05-01T12:34:56.789Z\",\"level\":\"info\",\"msg\":\"one\","
            "\"sandbox\":\"a\"}\n"
            "{\"time\":\"2026-05-01T12:34:56.789Z\",\"level\":\"error\",\"msg\":\"two\"}\n");
  // Reopen after a rotation: new lines go to a new file at the same path.
  std::string rotated = path + ".1";
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE((*logger)->Reopen().ok());
  (*logger)->Error("three");
  EXPECT_NE(ReadAll(path).find("\"three\""), std::string::npos);
  EXPECT_EQ(ReadAll(rotated).find("\"three\""), std::string::npos);
  std::remove(path.c_str());
  std::remove(rotated.c_str());
  EXPECT_FALSE(JsonLogger::Open("/nonexistent/dir/log", LogLevel::kInfo).ok());
}

TEST(JsonLogger, ThreadsNeverInterleaveLines) {
  std::string path = TempPath("threads.jsonl");
  std::remove(path.c_str());
  auto logger = JsonLogger::Open(path, LogLevel::kDebug);
  ASSERT_TRUE(logger.ok());
  constexpr int kThreads = 8, kLines = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i)
        (*logger)->Info(std::string(100 + t * 37, 'x'), LogFields().Int("t", t).Int("i", i));
    });
  }
  for (auto& th : threads) th.join();
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    ASSERT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
    ASSERT_EQ(line.back(), '}') << line;
  }
  EXPECT_EQ(n, kThreads * kLines);
  std::remove(path.c_str());
}

TEST(LogLevels, ParseAndName) {
  EXPECT_EQ(*ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  EXPECT_FALSE(ParseLogLevel("trace").ok());
  EXPECT_STREQ(LogLevelName(LogLevel::kError), "error");
}

// ---- Prometheus text ----

TEST(Metrics, RendersGoldenText) {
  MetricsRegistry reg;
  auto& total = reg.AddCounter("kf_requests_total", "Requests.\nSecond \\ line.", {"code", "path"});
  total.With({"OK", "/a"}).Inc();
  total.With({"OK", "/a"}).Inc(2);
  total.With({"NOT_FOUND", "q\"u\\o\nte"}).Inc();
  total.With({"OK", "/a"}).Inc(-5);  // ignored
  auto& live = reg.AddGauge("kf_live", "Live things.");
  live.Get().Set(3);
  live.Get().Dec();
  reg.AddGauge("kf_bytes", "Bytes.").Get().Set(2147483648.0);
  reg.AddGauge("kf_ratio", "Ratio.", {"t"}).With({"x"}).Set(0.25);
  auto& lat = reg.AddHistogram("kf_seconds", "Latency.", {0.001, 0.01, 1}, {"pool"});
  for (double v : {0.0005, 0.001, 0.002, 0.5, 7.0}) lat.With({"hit"}).Observe(v);
  reg.AddCounter("kf_empty_total", "No series yet.", {"code"});
  EXPECT_EQ(reg.Render(),
            "# HELP kf_requests_total Requests.\\nSecond \\\\ line.\n"
            "# TYPE kf_requests_total counter\n"
            "kf_requests_total{code=\"NOT_FOUND\",path=\"q\\\"u\\\\o\\nte\"} 1\n"
            "kf_requests_total{code=\"OK\",path=\"/a\"} 3\n"
            "# HELP kf_live Live things.\n"
            "# TYPE kf_live gauge\n"
            "kf_live 2\n"
            "# HELP kf_bytes Bytes.\n"
            "# TYPE kf_bytes gauge\n"
            "kf_bytes 2147483648\n"
            "# HELP kf_ratio Ratio.\n"
            "# TYPE kf_ratio gauge\n"
            "kf_ratio{t=\"x\"} 0.25\n"
            "# HELP kf_seconds Latency.\n"
            "# TYPE kf_seconds histogram\n"
            "kf_seconds_bucket{pool=\"hit\",le=\"0.001\"} 2\n"
            "kf_seconds_bucket{pool=\"hit\",le=\"0.01\"} 3\n"
            "kf_seconds_bucket{pool=\"hit\",le=\"1\"} 4\n"
            "kf_seconds_bucket{pool=\"hit\",le=\"+Inf\"} 5\n"
            "kf_seconds_sum{pool=\"hit\"} 7.5035\n"
            "kf_seconds_count{pool=\"hit\"} 5\n"
            "# HELP kf_empty_total No series yet.\n"
            "# TYPE kf_empty_total counter\n");
  // Removing a series drops it from the output.
  total.Remove({"NOT_FOUND", "q\"u\\o\nte"});
  EXPECT_EQ(reg.Render().find("NOT_FOUND"), std::string::npos);
}

TEST(Metrics, ValuesAndUnlabelledHistogram) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-7), "-7");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(0.0001), "0.0001");
  EXPECT_EQ(FormatMetricValue(0.00025), "0.00025");
  EXPECT_EQ(FormatMetricValue(1e-9), "1e-09");
  EXPECT_EQ(FormatMetricValue(123456.5), "123456.5");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
  MetricsRegistry reg;
  reg.AddHistogram("h_seconds", "H.", {0.5});
  EXPECT_EQ(reg.Render(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.5\"} 0\nh_seconds_bucket{le=\"+Inf\"} 0\n"
            "h_seconds_sum 0\nh_seconds_count 0\n");
}

TEST(Metrics, ConcurrentUpdatesAddUp) {
  MetricsRegistry reg;
  auto& c = reg.AddCounter("c_total", "C.", {"k"});
  auto& g = reg.AddGauge("g", "G.");
  auto& h = reg.AddHistogram("h_seconds", "H.", LatencyBucketsSeconds());
  constexpr int kThreads = 8, kIters = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        c.With({t % 2 ? "odd" : "even"}).Inc();
        g.Get().Inc();
        h.Get().Observe(0.001);
        if (i % 1000 == 0) (void)reg.Render();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c.With({"odd"}).Value() + c.With({"even"}).Value(), kThreads * kIters);
  EXPECT_EQ(g.Get().Value(), kThreads * kIters);
  auto s = h.Get().Take();
  EXPECT_EQ(s.count, uint64_t{kThreads * kIters});
  EXPECT_EQ(s.cumulative.back(), s.count);
}

TEST(MetricsDeathTest, MisuseAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MetricsRegistry reg;
        reg.AddCounter("a_total", "A.", {"x"}).With({"1", "2"});
      },
      "a_total wants 1 label values, got 2");
  EXPECT_DEATH(
      {
        MetricsRegistry reg;
        reg.AddGauge("dup", "D.");
        reg.AddGauge("dup", "D.");
      },
      "added twice");
  EXPECT_DEATH({ MetricsRegistry().AddGauge("bad-name", "B."); }, "bad metric name");
  EXPECT_DEATH({ MetricsRegistry().AddHistogram("h", "H.", {1, 0.5}); }, "strictly increasing");
  EXPECT_DEATH({ MetricsRegistry().AddHistogram("h", "H.", {1}, {"le"}); }, "bad label name");
}

TEST(FactoryMetrics, RegistersTheDocumentedNames) {
  MetricsRegistry reg;
  FactoryMetrics m = RegisterFactoryMetrics(reg);
  m.clone_seconds.Observe(0.0012);
  m.getvm_seconds.With({"hit"}).Observe(0.0003);
  m.getvm_total.With({"OK"}).Inc();
  m.pool_size.With({"bare"}).Set(8);
  m.live_vms.Set(10);
  m.vm_memory_bytes.With({"bare"}).Set(1 << 20);
  std::string ksm = TempPath("ksm");
  ASSERT_EQ(system(("mkdir -p " + ksm).c_str()), 0);
  std::ofstream(ksm + "/pages_sharing") << "1234\n";
  std::ofstream(ksm + "/pages_shared") << "56\n";
  UpdateKsmGauges(m, ksm);
  std::string text = reg.Render();
  for (const char* want : {
           "# TYPE katafactory_clone_seconds histogram\n",
           "katafactory_clone_seconds_bucket{le=\"0.0025\"} 1\n",
           "katafactory_getvm_seconds_bucket{pool=\"hit\",le=\"0.0005\"} 1\n",
           "# TYPE katafactory_getvm_total counter\n",
           "katafactory_getvm_total{code=\"OK\"} 1\n",
           "katafactory_pool_size{template=\"bare\"} 8\n",
           "katafactory_live_vms 10\n",
           "katafactory_vm_memory_bytes{template=\"bare\"} 1048576\n",
           "katafactory_ksm_pages_sharing 1234\n",
           "katafactory_ksm_pages_shared 56\n",
       })
    EXPECT_NE(text.find(want), std::string::npos) << want << "\nin:\n" << text;
  UpdateKsmGauges(m, "/nonexistent");  // no KSM: zeros
  EXPECT_EQ(m.ksm_pages_sharing.Value(), 0);
  ASSERT_EQ(system(("rm -rf " + ksm).c_str()), 0);
}

// ---- the /metrics HTTP server ----

// Sends `request` to 127.0.0.1:port and reads until the server closes.
std::string HttpExchange(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (!request.empty()) {
    ssize_t n = send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    (void)n;
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsHttp, ServesMetricsOverRealSocket) {
  MetricsRegistry reg;
  reg.AddGauge("kf_up", "Up.").Get().Set(1);
  auto server = MetricsHttpServer::Start("127.0.0.1:0", [&] { return reg.Render(); });
  ASSERT_TRUE(server.ok()) << server.error().message();
  uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);

  std::string body = "# HELP kf_up Up.\n# TYPE kf_up gauge\nkf_up 1\n";
  std::string ok = HttpExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(body.size()) +
                "\r\n"
                "Connection: close\r\n\r\n" +
                body);
  EXPECT_EQ(HttpExchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK", 0),
            0u);
  EXPECT_EQ(HttpExchange(port, "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not Found\r\n", 0),
            0u);
  std::string post = HttpExchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  std::string head = HttpExchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK", 0), 0u);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body
  EXPECT_EQ(HttpExchange(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(HttpExchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a'))
                .rfind("HTTP/1.1 431", 0),
            0u);

  // Many clients at once, each answered.
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int i = 0; i < 40; ++i) {
    clients.emplace_back([&] {
      if (HttpExchange(port, "GET /metrics HTTP/1.1\r\n\r\n").find("kf_up 1") != std::string::npos)
        ++answered;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(answered.load(), 40);

  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_EQ(HttpExchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

TEST(MetricsHttp, DropsIdleClientsAndStopsWithThemOpen) {
  MetricsHttpServer::Options opts;
  opts.client_timeout = std::chrono::milliseconds(200);
  auto server = MetricsHttpServer::Start(
      "127.0.0.1:0", [] { return std::string("x 1\n"); }, opts);
  ASSERT_TRUE(server.ok());
  uint16_t port = (*server)->port();
  auto start = std::chrono::steady_clock::now();
  // Half a request, then silence: the server closes it after the timeout.
  EXPECT_EQ(HttpExchange(port, "GET /metrics HTTP/1.1\r\n"), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // Still serving afterwards.
  EXPECT_NE(HttpExchange(port, "GET /metrics HTTP/1.1\r\n\r\n").find("x 1"), std::string::npos);
  // Stop with an idle client connected.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  server->reset();
  close(fd);
}

TEST(MetricsHttp, BadAddressIsAnError) {
  auto r = MetricsHttpServer::Start("nonsense", [] { return std::string(); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("metrics server: bad address"), std::string::npos);
  auto a = MetricsHttpServer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(a.ok());
  auto b = MetricsHttpServer::Start("127.0.0.1:" + std::to_string((*a)->port()),
                                    [] { return std::string(); });
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("Address already in use"), std::string::npos);
}

}  // namespace
}  // namespace kf::ops
