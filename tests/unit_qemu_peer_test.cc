// The QEMU templating peer (bench/peers/): its JSON/QMP parsing, QMP client
// against a fake QEMU on a socketpair, QEMU command lines, /proc parsing,
// and its cleanup on error paths. No QEMU is started here.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench/peers/qemu_templating.h"
#include "bench/peers/qmp_client.h"
#include "factory/cli/json.h"

namespace kf::peers {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
// The value after flag `f` (first occurrence), or "".
std::string After(const std::vector<std::string>& v, const std::string& f) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == f) return v[i + 1];
  return "";
}

TEST(PeerJson, ParsesQmpShapes) {
  auto v = ParseJson(R"( {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7},
      "package": "Debian"}, "capabilities": ["oob"]}} )");
  ASSERT_TRUE(v.ok()) << v.error().message();
  const JsonValue* q = v->Find("QMP")->Find("version")->Find("qemu");
  EXPECT_EQ(q->Find("major")->number(), 7);
  EXPECT_EQ(v->Find("QMP")->Find("capabilities")->items()[0].str(), "oob");

  auto s = ParseJson(R"({"a":"q\"\\\/\n\u00e9\ud83d\ude00","b":[true,false,null,-1.5e2,0]})");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->GetString("a"), "q\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  const auto& b = s->Find("b")->items();
  ASSERT_EQ(b.size(), 5u);
  EXPECT_TRUE(b[0].bool_value());
  EXPECT_TRUE(b[2].is_null());
  EXPECT_EQ(b[3].number(), -150);
  EXPECT_EQ(s->Find("b")->Dump(), "[true,false,null,-150,0]");
}

TEST(PeerJson, RejectsMalformed) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "\"\\x\"", "tru", "1 2",
                          "{\"a\":1}}", "\"\x01\"", "-", "1."})
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  std::string deep(200, '[');
  EXPECT_FALSE(ParseJson(deep + std::string(200, ']')).ok());
  EXPECT_EQ(cli::Json::Quote("a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\u0001\"");
}

TEST(PeerQmp, ClassifiesLines) {
  auto r = ParseQmpLine(R"({"return": {"status": "running", "running": true}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, QmpMessage::Kind::kReturn);
  EXPECT_EQ(r->body.GetString("status"), "running");

  auto e = ParseQmpLine(R"({"error": {"class": "GenericError", "desc": "no such capability"}})");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->kind, QmpMessage::Kind::kError);
  EXPECT_EQ(e->error_class, "GenericError");
  EXPECT_EQ(e->error_desc, "no such capability");

  auto ev = ParseQmpLine(
      R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": "setup"}})");
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->kind, QmpMessage::Kind::kEvent);
  EXPECT_EQ(ev->event, "MIGRATION");
  EXPECT_EQ(ev->body.GetString("status"), "setup");

  auto g = ParseQmpLine(R"({"QMP": {"version": {}, "capabilities": []}})");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->kind, QmpMessage::Kind::kGreeting);

  EXPECT_FALSE(ParseQmpLine(R"({"something": 1})").ok());
  EXPECT_FALSE(ParseQmpLine("[1]").ok());
  EXPECT_FALSE(ParseQmpLine("{not json").ok());

  EXPECT_EQ(QmpCommandLine("stop"), "{\"execute\":\"stop\"}\n");
  EXPECT_EQ(QmpCommandLine("stop", "", "kf-7"), "{\"execute\":\"stop\",\"id\":\"kf-7\"}\n");
  EXPECT_EQ(QmpCommandLine("migrate", R"({"uri":"exec:cat > '/x'"})"),
            "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > '/x'\"}}\n");
}

// A fake QEMU on the other end of a socketpair: greeting, then scripted
// replies (events interleaved, split writes, CRLF line ends), each with the
// id of the command it answers, and stale replies (another id, no id) that
// the client must skip.
TEST(PeerQmp, ClientAgainstFakeQemu) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::vector<std::string> received;
  std::thread fake([&] {
    auto send = [&](const std::string& s) {
      ASSERT_EQ(write(sv[1], s.data(), s.size()), (ssize_t)s.size());
    };
    // Reads one command line; returns its id as a JSON string ("\"kf-N\"").
    auto recv_line = [&] {
      std::string l;
      char c;
      while (read(sv[1], &c, 1) == 1 && c != '\n') l.push_back(c);
      const size_t at = l.find(",\"id\":");
      std::string id = at == std::string::npos ? "null" : l.substr(at + 6, l.size() - at - 7);
      received.push_back(at == std::string::npos ? l : l.substr(0, at) + "}");
      return id;
    };
    send(
        R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": []}})"
        "\r\n");
    std::string id = recv_line();  // qmp_capabilities
    send("{\"return\": {}, \"id\": " + id + "}\r\n");
    id = recv_line();  // query-status
    // What QEMU 7.2 sent once: the answer to an earlier connection's
    // qmp_capabilities, then our own's. Neither answers query-status.
    send("{\"return\": {}}\r\n");
    send(R"({"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}, "id": "kf-0"})"
         "\r\n");
    send(R"({"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 0}})"
         "\r\n{\"ret");
    usleep(2000);
    send("urn\": {\"status\": \"running\"}, \"id\": " + id + "}\r\n");
    id = recv_line();  // bogus
    send(R"({"error": {"class": "CommandNotFound", "desc": "The command bogus has not been found"}, "id": )" +
         id + "}\n");
    send(R"({"event": "STOP"})"
         "\n");
    usleep(20000);
    close(sv[1]);
  });
  auto c = QmpClient::Attach(UniqueFd(sv[0]), 2000);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->qemu_version(), "7.2.22");
  auto st = c->Execute("query-status");
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->GetString("status"), "running");
  auto events = c->TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "RESUME");
  auto bad = c->Execute("bogus", R"({"x":1})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("CommandNotFound"), std::string::npos);
  EXPECT_NE(bad.error().message().find("bogus"), std::string::npos) << bad.error().message();
  auto w = c->WaitEvent(1000);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(*w);
  EXPECT_EQ(c->TakeEvents()[0].event, "STOP");
  // QEMU gone: an error, not a hang.
  auto gone = c->Execute("query-status", "", 1000);
  EXPECT_FALSE(gone.ok());
  fake.join();
  EXPECT_EQ(received, (std::vector<std::string>{"{\"execute\":\"qmp_capabilities\"}",
                                                "{\"execute\":\"query-status\"}",
                                                "{\"execute\":\"bogus\",\"arguments\":{\"x\":1}}"}));
}

TEST(PeerQmp, ConnectTimesOutWithoutSocket) {
  auto c = QmpClient::Connect("/nonexistent-dir-kf/qmp.sock", 50);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("did not accept"), std::string::npos);
}

TEST(PeerQemu, CmdlineDropsPciOffKeepsTheRest) {
  EXPECT_EQ(QemuCmdline("console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux quiet rdinit=/init"),
            "console=ttyS0 reboot=k panic=-1 i8042.noaux quiet rdinit=/init");
  EXPECT_EQ(QemuCmdline("pci=off rdinit=/init"), "console=ttyS0 rdinit=/init");
  EXPECT_EQ(QemuCmdline("console=hvc0 console=ttyS1 x"), "console=ttyS0 x");
  EXPECT_EQ(QemuCmdline(""), "console=ttyS0");
}

TEST(PeerQemu, ManifestModules) {
  auto m = ParseGuestManifest(
      R"({"format": 1, "cmdline": "console=ttyS0 pci=off", "modules": ["virtio", "virtio_mmio"]})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->cmdline, "console=ttyS0 pci=off");
  EXPECT_TRUE(m->HasModule("virtio_mmio"));
  EXPECT_FALSE(m->HasModule("virtio_pci"));
  EXPECT_FALSE(ParseGuestManifest("[]").ok());
}

TEST(PeerQemu, TemplateAndCloneCommandLines) {
  QemuPeerOptions o;
  o.kernel = "/g/vmlinuz";
  o.initrd = "/g/initramfs.cpio.gz";
  o.mem_mib = 256;
  o.accel = "tcg";
  QemuLaunch t{true, "/w/memory", "/w/t/qmp.sock", "/w/t/serial.log", 0};
  const auto ta = BuildQemuArgs(o, "console=ttyS0 rdinit=/init", t);
  EXPECT_EQ(ta[0], "qemu-system-x86_64");
  EXPECT_EQ(After(ta, "-machine"), "q35,accel=tcg,memory-backend=mem0");
  EXPECT_EQ(After(ta, "-cpu"), "max");
  EXPECT_EQ(After(ta, "-m"), "256M");
  EXPECT_EQ(After(ta, "-object"),
            "memory-backend-file,id=mem0,size=256M,mem-path=/w/memory,share=on");
  EXPECT_EQ(After(ta, "-kernel"), "/g/vmlinuz");
  EXPECT_EQ(After(ta, "-initrd"), "/g/initramfs.cpio.gz");
  EXPECT_EQ(After(ta, "-append"), "console=ttyS0 rdinit=/init");
  EXPECT_EQ(After(ta, "-qmp"), "unix:/w/t/qmp.sock,server=on,wait=off");
  EXPECT_EQ(After(ta, "-serial"), "file:/w/t/serial.log");
  EXPECT_TRUE(Has(ta, "-nodefaults"));
  EXPECT_TRUE(Has(ta, "-no-reboot"));
  EXPECT_FALSE(Has(ta, "-incoming"));
  EXPECT_FALSE(Has(ta, "-device"));

  o.accel = "kvm";
  QemuLaunch c{false, "/w/memory", "/w/c0/qmp.sock", "/w/c0/serial.log", 1001};
  const auto ca = BuildQemuArgs(o, "console=ttyS0 rdinit=/init", c);
  EXPECT_EQ(After(ca, "-cpu"), "host");
  EXPECT_EQ(After(ca, "-object"),
            "memory-backend-file,id=mem0,size=256M,mem-path=/w/memory,share=off");
  EXPECT_EQ(After(ca, "-incoming"), "defer");
  EXPECT_EQ(After(ca, "-device"), "vhost-vsock-pci,id=vsock0,guest-cid=1001");
  // A clone's command line is the template's but for these.
  o.machine = "microvm";
  const auto ma = BuildQemuArgs(o, "x", c);
  EXPECT_EQ(After(ma, "-machine"), "microvm,acpi=on,accel=kvm,memory-backend=mem0");
  EXPECT_EQ(After(ma, "-device"), "vhost-vsock-device,id=vsock0,guest-cid=1001");
}

TEST(PeerQemu, ProcParsing) {
  auto m = ParseSmapsRollup(
      "55d0c0000000-7ffd5d5f6000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:               51980 kB\nPss:               39447 kB\nPss_Dirty:         30088 kB\n"
      "Pss_Anon:          30016 kB\nPss_File:           9359 kB\nPss_Shmem:            72 kB\n"
      "Shared_Clean:      12000 kB\nPrivate_Clean:       100 kB\nPrivate_Dirty:     30088 kB\n");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->rss, 51980ull * 1024);
  EXPECT_EQ(m->pss, 39447ull * 1024);
  EXPECT_EQ(m->pss_anon, 30016ull * 1024);
  EXPECT_EQ(m->pss_shmem, 72ull * 1024);
  EXPECT_EQ(m->private_dirty, 30088ull * 1024);
  EXPECT_EQ(m->shared_clean, 12000ull * 1024);
  EXPECT_FALSE(ParseSmapsRollup("Rss: 1 kB\n").ok());

  auto a = ParseMemAvailable(
      "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 20000000ull * 1024);
  EXPECT_FALSE(ParseMemAvailable("MemTotal: 1 kB\n").ok());
}

TEST(PeerQemu, ReadyFrameCheck) {
  const std::string ready =
      std::string("\x72\x02\x08\x01", 4);  // Response{ready{agent_version: 1}}
  uint8_t h[10] = {0, 0, 0, 4, 0, 0, 0, 0, 2, 0};
  EXPECT_TRUE(CheckReadyFrame(h, ready).ok());
  uint8_t wrong_stream[10] = {0, 0, 0, 4, 0, 0, 0, 1, 2, 0};
  EXPECT_FALSE(CheckReadyFrame(wrong_stream, ready).ok());
  uint8_t request[10] = {0, 0, 0, 4, 0, 0, 0, 0, 1, 0};
  EXPECT_FALSE(CheckReadyFrame(request, ready).ok());
  EXPECT_FALSE(CheckReadyFrame(h, std::string("\x0a\x02\x08\x01", 4)).ok());  // ping, not ready
  EXPECT_FALSE(CheckReadyFrame(h, std::string("\x72\x02\x08", 3)).ok());      // length mismatch
}

TEST(PeerQemu, ReportJsonIsValidJson) {
  PeerReport r;
  r.qemu_version = "7.2.22";
  r.cmdline = "console=ttyS0 \"quoted\"";
  r.template_ready_by = "serial: kf-agent: listening on port 1024";
  r.mem_available_before = 3 << 20;
  r.mem_available_after = 1 << 20;
  QemuCloneSample c;
  c.pid = 42;
  c.ready_ns = 1500000;
  c.memory.pss = 2 << 20;
  r.clones = {c, c};
  auto v = ParseJson(PeerReportJson(r));
  ASSERT_TRUE(v.ok()) << v.error().message() << "\n" << PeerReportJson(r);
  EXPECT_EQ(v->GetString("cmdline"), r.cmdline);
  EXPECT_EQ(v->Find("clones")->items().size(), 2u);
  EXPECT_EQ(v->Find("clones")->items()[1].Find("ready_ns")->number(), 1500000);
  EXPECT_EQ(v->Find("mem_available_delta_per_clone_bytes")->number(), 1 << 20);
  EXPECT_EQ(v->Find("mean_pss_bytes")->number(), 2 << 20);
}

// Error paths: nothing of the run is left behind.
class PeerCleanup : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/kf-peer-test-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    root_ = t;
    std::filesystem::create_directory(root_ + "/work");
    std::ofstream(root_ + "/vmlinuz") << "k";
    std::ofstream(root_ + "/initramfs.cpio.gz") << "i";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  QemuPeerOptions Options(const std::string& qemu) {
    QemuPeerOptions o;
    o.guest_dir = root_;
    o.accel = "tcg";
    o.qemu_binary = qemu;
    o.work_dir = root_ + "/work";
    o.vsock = VsockMode::kOff;
    o.template_timeout_ms = 300;
    return o;
  }
  bool WorkEmpty() { return std::filesystem::is_empty(root_ + "/work"); }
  std::string root_;
};

TEST_F(PeerCleanup, QemuThatFailsToStart) {
  auto r = MeasureQemuTemplating(Options("/nonexistent/qemu-system-x86_64"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("exec of QEMU failed"), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(WorkEmpty());
}

TEST_F(PeerCleanup, QemuThatHangsIsKilled) {
  // A "QEMU" that never opens its QMP socket: records its pid and sleeps.
  const std::string fake = root_ + "/fake-qemu";
  std::ofstream(fake) << "#!/bin/sh\necho $$ > " << root_ << "/pid\nexec sleep 1000\n";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  auto r = MeasureQemuTemplating(Options(fake));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("did not accept"), std::string::npos) << r.error().message();
  EXPECT_TRUE(WorkEmpty());
  std::ifstream pidf(root_ + "/pid");
  int pid = 0;
  ASSERT_TRUE(pidf >> pid);
  EXPECT_NE(kill(pid, 0), 0) << "the fake QEMU " << pid << " is still there";
}

TEST_F(PeerCleanup, BadOptions) {
  auto o = Options("/bin/true");
  o.accel = "hvf";
  EXPECT_FALSE(MeasureQemuTemplating(o).ok());
  o = Options("/bin/true");
  o.clones = 0;
  EXPECT_FALSE(MeasureQemuTemplating(o).ok());
  o = Options("/bin/true");
  o.guest_dir = root_ + "/missing";
  EXPECT_FALSE(MeasureQemuTemplating(o).ok());
  EXPECT_TRUE(WorkEmpty());
}

}  // namespace
}  // namespace kf::peers
