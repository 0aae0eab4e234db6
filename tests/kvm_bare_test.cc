// Host KVM tier: template, clone and isolation of the bare guest on the real
// /dev/kvm. Skips (with the reason) where KVM is not usable; the nested tier
// runs this same binary inside a VM with a real /dev/kvm.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/bare/bare_abi.h"
#include "agent/bare/bare_image.h"
#include "factory/bare_template.h"
#include "factory/sandbox_client.h"
#include "factory/zygote.h"
#include "memshare/guest_backing.h"

namespace kf {
namespace {

constexpr uint64_t kMem = 32ull << 20;
constexpr uint64_t kInit = 8ull << 20;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

class KvmBareTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = Kvm::UnavailableReason();
    if (!skip_reason_.empty()) return;
    char tmpl[] = "/tmp/kf-kvm-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/bare";
    auto kvm = Kvm::Open();
    ASSERT_TRUE(kvm.ok()) << kvm.error().message();
    BareTemplateOptions o;
    o.mem_bytes = kMem;
    o.init_bytes = kInit;
    auto boot = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), dir_);
    ASSERT_TRUE(boot.ok()) << boot.error().message();
    init_hash_ = boot->init_hash;
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << "KVM not usable: " << skip_reason_;
    ASSERT_FALSE(dir_.empty()) << "template creation failed in SetUpTestSuite";
  }

  static Zygote SpawnZygote() {
    auto t = LoadTemplate(dir_);
    EXPECT_TRUE(t.ok()) << t.error().message();
    auto z = Zygote::Spawn(std::move(*t));
    EXPECT_TRUE(z.ok()) << z.error().message();
    return std::move(*z);
  }
  static CloneHandle MustClone(Zygote& z) {
    auto c = z.Clone({});
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(*c);
  }
  // The expected hash of the boot-initialised range, computed on the host.
  static uint64_t ExpectedInitHash(uint64_t gpa, uint64_t bytes) {
    std::vector<uint64_t> words(bytes / 8);
    for (size_t i = 0; i < words.size(); ++i) words[i] = kf_init_pattern(gpa + i * 8);
    return kf_hash_words(KF_HASH_SEED, words.data(), words.size());
  }

  static std::string skip_reason_, root_, dir_;
  static uint64_t init_hash_;
};

std::string KvmBareTest::skip_reason_, KvmBareTest::root_, KvmBareTest::dir_;
uint64_t KvmBareTest::init_hash_ = 0;

TEST_F(KvmBareTest, TemplateHoldsTheBootedGuest) {
  EXPECT_EQ(init_hash_, ExpectedInitHash(KF_BARE_INIT_GPA, kInit));
  auto t = LoadTemplate(dir_);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->state.guest_kind, "bare");
  ASSERT_EQ(t->state.vcpus.size(), 1u);
  EXPECT_EQ(t->state.vcpus[0].sregs.cs.dpl, 3) << "the bare guest runs at CPL3";
  // The template memory itself holds the pattern the guest wrote.
  auto m = MapPrivate(t->memory.get(), t->state.mem_size);
  ASSERT_TRUE(m.ok());
  auto* words = reinterpret_cast<const uint64_t*>(m->data() + KF_BARE_INIT_GPA);
  EXPECT_EQ(kf_hash_words(KF_HASH_SEED, words, kInit / 8), init_hash_);
}

TEST_F(KvmBareTest, CloneAnswersPingAndHash) {
  Zygote z = SpawnZygote();
  CloneHandle c = MustClone(z);
  SandboxClient client(c.control.get());
  auto pings = client.Ping(42);
  ASSERT_TRUE(pings.ok()) << pings.error().message();
  EXPECT_EQ(*pings, 1u) << "a clone starts from the template's ping count (0)";
  auto hash = client.HashRange(KF_BARE_INIT_GPA, kInit);
  ASSERT_TRUE(hash.ok()) << hash.error().message();
  EXPECT_EQ(*hash, init_hash_);
  auto bad = client.HashRange(kMem - 8, 16);
  ASSERT_FALSE(bad.ok()) << "a range past guest memory must be refused by the guest";
  EXPECT_TRUE(ReleaseClone(c).ok());
}

TEST_F(KvmBareTest, CloneWritesStayInThatClone) {
  Zygote z = SpawnZygote();
  CloneHandle a = MustClone(z), b = MustClone(z);
  SandboxClient ca(a.control.get()), cb(b.control.get());
  const uint64_t range = 64 * 4096;
  const uint64_t original = ExpectedInitHash(KF_BARE_INIT_GPA, range);
  auto dirtied = ca.DirtyPages(KF_BARE_INIT_GPA, 64, 0xdeadbeef);
  ASSERT_TRUE(dirtied.ok()) << dirtied.error().message();
  EXPECT_EQ(*dirtied, 64u);
  auto ha = ca.HashRange(KF_BARE_INIT_GPA, range);
  auto hb = cb.HashRange(KF_BARE_INIT_GPA, range);
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_NE(*ha, original) << "clone A's own writes are visible to A";
  EXPECT_EQ(*hb, original) << "clone B must not see A's writes";
  // A clone made after A's writes starts from the template, not from A.
  CloneHandle c = MustClone(z);
  SandboxClient cc(c.control.get());
  auto hc = cc.HashRange(KF_BARE_INIT_GPA, range);
  ASSERT_TRUE(hc.ok());
  EXPECT_EQ(*hc, original);
  // And the template file is untouched.
  auto t = LoadTemplate(dir_);
  ASSERT_TRUE(t.ok()) << t.error().message();
}

TEST_F(KvmBareTest, HundredClonesAliveAtOnce) {
  const int n = EnvInt("KF_TEST_CLONES", 100);
  Zygote z = SpawnZygote();
  std::vector<CloneHandle> clones;
  std::set<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    clones.push_back(MustClone(z));
    ASSERT_TRUE(clones.back().control.valid()) << "clone " << i;
    pids.insert(clones.back().pid);
  }
  EXPECT_EQ(pids.size(), size_t(n)) << "one process per clone";
  for (int i = 0; i < n; ++i) {
    SandboxClient client(clones[i].control.get());
    auto p = client.Ping(i);
    ASSERT_TRUE(p.ok()) << "clone " << i << ": " << p.error().message();
  }
  for (auto& c : clones) EXPECT_TRUE(ReleaseClone(c).ok());
  for (pid_t pid : pids) EXPECT_NE(::kill(pid, 0), 0) << "sandbox " << pid << " still alive";
}

TEST_F(KvmBareTest, IdentityIsPerClone) {
  Zygote z = SpawnZygote();
  CloneHandle a = MustClone(z), b = MustClone(z);
  SandboxClient ca(a.control.get()), cb(b.control.get());
  auto id = FreshIdentity("sandbox-a");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(ca.SetIdentity(*id).ok());
  auto got_a = ca.GetIdentity();
  auto got_b = cb.GetIdentity();
  ASSERT_TRUE(got_a.ok() && got_b.ok());
  EXPECT_EQ(got_a->sandbox_id, "sandbox-a");
  EXPECT_EQ(got_a->identity_sets, 1u);
  EXPECT_EQ(got_b->sandbox_id, "") << "B must not see A's identity";
  EXPECT_EQ(got_b->identity_sets, 0u);
}

TEST_F(KvmBareTest, ClonesShareRngUntilReseededThenNever) {
  Zygote z = SpawnZygote();
  CloneHandle a = MustClone(z), b = MustClone(z);
  SandboxClient ca(a.control.get()), cb(b.control.get());
  // Without reseeding, clones of one template produce the same stream: the
  // hazard the factory's identity step exists to remove.
  auto ra = ca.Random(64), rb = cb.Random(64);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(*ra, *rb);
  auto ia = FreshIdentity("a"), ib = FreshIdentity("b");
  ASSERT_TRUE(ia.ok() && ib.ok());
  ASSERT_TRUE(ca.SetIdentity(*ia).ok());
  ASSERT_TRUE(cb.SetIdentity(*ib).ok());
  ra = ca.Random(64);
  rb = cb.Random(64);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_NE(*ra, *rb);
}

// utime + stime of a process, in clock ticks.
uint64_t CpuTicks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

TEST_F(KvmBareTest, IdleCloneUsesNoCpu) {
  Zygote z = SpawnZygote();
  CloneHandle c = MustClone(z);
  SandboxClient client(c.control.get());
  ASSERT_TRUE(client.Ping(1).ok());
  const uint64_t before = CpuTicks(c.pid);
  ::sleep(1);
  const uint64_t after = CpuTicks(c.pid);
  EXPECT_LE(after - before, 1u) << "an idle clone must sleep, not spin (ticks over 1 s)";
}

TEST_F(KvmBareTest, ReleasedCloneExitsAndZygoteKeepsServing) {
  Zygote z = SpawnZygote();
  CloneHandle a = MustClone(z);
  pid_t pid = a.pid;
  ASSERT_TRUE(ReleaseClone(a).ok());
  EXPECT_NE(::kill(pid, 0), 0);
  CloneHandle b = MustClone(z);
  SandboxClient cb(b.control.get());
  EXPECT_TRUE(cb.Ping(7).ok());
}

TEST_F(KvmBareTest, TemplateWithPitCapturesAndRestoresIt) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm.ok());
  if (!kvm->info().has_pit2) GTEST_SKIP() << "host has no KVM_CAP_PIT2";
  BareTemplateOptions o;
  o.mem_bytes = 16ull << 20;
  o.init_bytes = 1ull << 20;
  o.vm.pit = true;
  const std::string dir = root_ + "/with-pit";
  auto boot = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), dir);
  ASSERT_TRUE(boot.ok()) << boot.error().message();
  auto t = LoadTemplate(dir);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_TRUE(t->state.vm.pit.has_value() || !t->state.vm.unsupported.empty());
  auto z = Zygote::Spawn(std::move(*t));
  ASSERT_TRUE(z.ok());
  CloneHandle c = MustClone(*z);
  SandboxClient client(c.control.get());
  EXPECT_TRUE(client.Ping(3).ok());
}

TEST_F(KvmBareTest, CreateRefusesAnExistingDirectory) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm.ok());
  BareTemplateOptions o;
  o.mem_bytes = 16ull << 20;
  o.init_bytes = 0;
  auto r = CreateBareTemplate(*kvm, o, EmbeddedBareImage(), dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("already exists"), std::string::npos);
}

}  // namespace
}  // namespace kf
