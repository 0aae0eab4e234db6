// Linux guests on a real (VMX/SVM) /dev/kvm: a stock kernel with the agent
// as /init is booted, templated and cloned; every clone resumes the kernel
// and answers on its own agent.sock. Runs in the nested tier (the host's
// /dev/kvm here is PVM, which cannot run a stock kernel: ENVIRONMENT.md);
// skips with the reason where KVM or the guest images are missing.
//
// The guest images come from scripts/build-guest, in $KF_GUEST_DIR.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "factory/agent_client.h"
#include "factory/linux_template.h"
#include "factory/sandbox_client.h"
#include "factory/zygote.h"
#include "memshare/accounting.h"
#include "snapshot/rootfs_image.h"

namespace kf {
namespace {

class KvmLinuxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = Kvm::UnavailableReason();
    if (!skip_reason_.empty()) return;
    auto kvm = Kvm::Open();
    ASSERT_TRUE(kvm.ok()) << kvm.error().message();
    if (kvm->info().is_pvm) {
      skip_reason_ = "this /dev/kvm is PVM, which cannot run a stock Linux kernel";
      return;
    }
    const char* guest = std::getenv("KF_GUEST_DIR");
    if (guest == nullptr || !std::filesystem::exists(std::string(guest) + "/vmlinuz")) {
      skip_reason_ = "no guest images: set KF_GUEST_DIR to scripts/build-guest's output";
      return;
    }
    char tmpl[] = "/tmp/kf-linux-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/linux";
    LinuxTemplateOptions o;
    o.kernel_path = std::string(guest) + "/vmlinuz";
    o.initrd_path = std::string(guest) + "/initramfs.cpio.gz";
    o.rootfs_path = std::string(guest) + "/rootfs.ext4";
    o.mem_bytes = 256ull << 20;
    o.verbose = true;
    auto boot = CreateLinuxTemplate(*kvm, o, dir_);
    ASSERT_TRUE(boot.ok()) << boot.error().message();
    std::fprintf(stderr, "linux template: agent answered %.2f s after VM creation (%llu probes)\n",
                 boot->boot_ns / 1e9, static_cast<unsigned long long>(boot->probes));
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(std::filesystem::exists(dir_ + "/state.bin"))
        << "template creation failed in SetUpTestSuite";
  }

  static Zygote SpawnZygote() {
    auto t = LoadTemplate(dir_);
    EXPECT_TRUE(t.ok()) << t.error().message();
    auto z = Zygote::Spawn(std::move(*t));
    EXPECT_TRUE(z.ok()) << z.error().message();
    return std::move(*z);
  }
  static CloneHandle MustCloneHandle(Zygote& z, std::string* run_dir = nullptr,
                                     bool mergeable = false) {
    static int next = 0;
    const std::string dir = root_ + "/run/" + std::to_string(next++);
    std::filesystem::create_directories(dir);
    if (run_dir != nullptr) *run_dir = dir;
    SandboxOptions o;
    o.agent_sock = dir + "/agent.sock";
    o.mergeable = mergeable;
    auto c = z.Clone(o);
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(*c);
  }
  // ConnectAgent, with the clone's console in the failure message.
  static Result<AgentClient> Connect(const CloneHandle& c) {
    auto a = ConnectAgent(c, 60000);
    if (a.ok()) return a;
    const std::string log = c.agent_sock.substr(0, c.agent_sock.rfind('/')) + "/console.log";
    std::string tail = ReadFile(log);
    if (tail.size() > 3000) tail = tail.substr(tail.size() - 3000);
    return a.error().Context("clone pid " + std::to_string(c.pid) + ", console:\n" + tail +
                             "\n---");
  }
  static std::string ReadFile(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  static std::string skip_reason_, root_, dir_;
};

std::string KvmLinuxTest::skip_reason_, KvmLinuxTest::root_, KvmLinuxTest::dir_;

TEST_F(KvmLinuxTest, TemplateHoldsABootedKernel) {
  auto t = LoadTemplate(dir_);
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->state.guest_kind, "linux");
  ASSERT_EQ(t->state.vcpus.size(), 1u);
  EXPECT_EQ(t->state.vcpus[0].sregs.cs.dpl, 0) << "Linux runs its kernel at CPL0";
  EXPECT_TRUE(t->state.vm.ioapic.has_value());
  EXPECT_TRUE(t->state.vm.pit.has_value());
  EXPECT_TRUE(t->state.vsock.has_value());
  EXPECT_TRUE(t->state.linux_guest.pmem.has_value());
  ASSERT_TRUE(t->rootfs.has_value()) << "the template's rootfs.img was not mapped";
  EXPECT_EQ(t->rootfs->size, t->state.linux_guest.rootfs_size);
  const std::string console = ReadFile(dir_ + "/boot-console.log");
  EXPECT_NE(console.find("Linux version"), std::string::npos) << console.substr(0, 2000);
}

// 20 clones of one template, each answering on its own agent.sock, each
// reading the same file from the pmem rootfs, served by DAX.
TEST_F(KvmLinuxTest, TwentyClonesEachAnswerOnTheirOwnSocketAndShareTheDaxRootfs) {
  Zygote z = SpawnZygote();
  std::vector<CloneHandle> clones;
  for (int i = 0; i < 20; ++i) clones.push_back(MustCloneHandle(z));
  std::set<std::string> sockets, rootfs_ids;
  for (auto& c : clones) {
    auto a = Connect(c);
    ASSERT_TRUE(a.ok()) << c.agent_sock << ": " << a.error().message();
    for (uint64_t k = 0; k < 3; ++k) {
      auto p = a->Ping(1000 + k);
      ASSERT_TRUE(p.ok()) << p.error().message();
    }
    sockets.insert(c.agent_sock);
    auto id = a->ReadFile("/rootfs/etc/kf-rootfs-id");
    ASSERT_TRUE(id.ok()) << id.error().message();
    EXPECT_TRUE(id->dax()) << "the rootfs file is not served by DAX";
    EXPECT_EQ(id->size(), 65u) << "a 64-hex-digit build key and a newline";
    rootfs_ids.insert(id->data());
    auto mounts = a->ReadFile("/proc/mounts");
    ASSERT_TRUE(mounts.ok()) << mounts.error().message();
    std::string line;
    std::istringstream in(mounts->data());
    while (std::getline(in, line) && line.find(" /rootfs ") == std::string::npos) line.clear();
    EXPECT_NE(line.find("/dev/pmem0 /rootfs ext4 ro"), std::string::npos) << mounts->data();
    EXPECT_NE(line.find("dax"), std::string::npos) << "the mount is not reported as dax: " << line;
  }
  EXPECT_EQ(sockets.size(), 20u);
  EXPECT_EQ(rootfs_ids.size(), 1u) << "clones read different rootfs contents";
  for (auto& c : clones) EXPECT_TRUE(ReleaseClone(c).ok());
}

// KSM merges the identical pages the clones dirtied as they resumed the
// same kernel (MADV_MERGEABLE clone memory). Reports Pss per clone before
// and after.
TEST_F(KvmLinuxTest, KsmMergesPagesAcrossClones) {
  const std::string ksm = "/sys/kernel/mm/ksm/";
  auto write = [&](const std::string& name, const std::string& v) {
    std::ofstream f(ksm + name);
    f << v;
    return static_cast<bool>(f.flush());
  };
  auto read = [&](const std::string& name) {
    return std::strtoull(ReadFile(ksm + name).c_str(), nullptr, 10);
  };
  if (!std::filesystem::exists(ksm + "run") || !write("run", "0"))
    GTEST_SKIP() << "KSM is not available or not writable here (" << ksm << "run)";
  Zygote z = SpawnZygote();
  constexpr int kClones = 20;
  std::vector<CloneHandle> clones;
  for (int i = 0; i < kClones; ++i) clones.push_back(MustCloneHandle(z, nullptr, true));
  for (auto& c : clones) {
    auto a = Connect(c);
    ASSERT_TRUE(a.ok()) << a.error().message();
    ASSERT_TRUE(a->Ping(1).ok());
  }
  auto pss_per_clone = [&](uint64_t* private_dirty) {
    uint64_t pss = 0, dirty = 0;
    for (auto& c : clones) {
      auto m = ReadProcessMemory(c.pid);
      EXPECT_TRUE(m.ok()) << m.error().message();
      if (!m.ok()) continue;
      pss += m->pss;
      dirty += m->private_dirty;
    }
    *private_dirty = dirty / kClones;
    return pss / kClones;
  };
  uint64_t dirty_off = 0, dirty_on = 0;
  const uint64_t pss_off = pss_per_clone(&dirty_off);
  ASSERT_TRUE(write("pages_to_scan", "20000") && write("sleep_millisecs", "10") && write("run", "1"));
  uint64_t sharing = 0;
  for (int i = 0; i < 240 && sharing == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    if (read("full_scans") >= 2) sharing = read("pages_sharing");
  }
  const uint64_t pss_on = pss_per_clone(&dirty_on);
  const uint64_t shared = read("pages_shared");
  std::fprintf(stderr,
               "KSM across %d linux clones: pages_shared %llu, pages_sharing %llu; per clone "
               "Pss %.2f MiB -> %.2f MiB, Private_Dirty %.2f MiB -> %.2f MiB\n",
               kClones, (unsigned long long)shared, (unsigned long long)sharing, pss_off / 1048576.0,
               pss_on / 1048576.0, dirty_off / 1048576.0, dirty_on / 1048576.0);
  write("run", "2");  // unmerge, and stop
  EXPECT_GT(sharing, 0u) << "KSM merged nothing across " << kClones << " clones";
  for (auto& c : clones) EXPECT_TRUE(ReleaseClone(c).ok());
}

// A damaged rootfs.img is refused when the template is loaded: a clone
// would resume a kernel whose mounted file system changed under it.
TEST_F(KvmLinuxTest, DamagedRootfsImageIsRefused) {
  const std::string bad = root_ + "/damaged";
  std::filesystem::create_directories(bad);
  for (const char* f : {"state.bin", "memory.img"})
    std::filesystem::create_hard_link(dir_ + "/" + f, bad + "/" + f);
  std::filesystem::copy_file(dir_ + "/" + kRootfsFileName, bad + "/" + kRootfsFileName);
  std::filesystem::permissions(bad + "/" + kRootfsFileName, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  {
    std::fstream f(bad + "/" + kRootfsFileName, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1 << 20);
    f.put('\x5a');
  }
  auto t = LoadTemplate(bad);
  ASSERT_FALSE(t.ok()) << "a damaged rootfs.img was accepted";
  EXPECT_NE(t.error().message().find("checksum"), std::string::npos) << t.error().message();
  std::filesystem::remove(bad + "/" + kRootfsFileName);
  t = LoadTemplate(bad);
  ASSERT_FALSE(t.ok()) << "a missing rootfs.img was accepted";
  EXPECT_NE(t.error().message().find(kRootfsFileName), std::string::npos) << t.error().message();
}

// Bad inputs to template creation: a clear error, no template directory,
// no thread or process left running (the calls return only once the VM is
// torn down).
TEST_F(KvmLinuxTest, BadKernelMissingInitramfsAndSilentGuestAreClearErrors) {
  auto kvm = Kvm::Open();
  ASSERT_TRUE(kvm.ok());
  const std::string guest = std::getenv("KF_GUEST_DIR");
  LinuxTemplateOptions o;
  o.kernel_path = root_ + "/garbage-kernel";
  {
    std::ofstream f(o.kernel_path, std::ios::binary);
    for (int i = 0; i < 100000; ++i) f.put(static_cast<char>(i * 7919 % 251));
  }
  o.initrd_path = guest + "/initramfs.cpio.gz";
  o.mem_bytes = 128ull << 20;
  auto r = CreateLinuxTemplate(*kvm, o, root_ + "/bad-kernel");
  ASSERT_FALSE(r.ok());
  std::fprintf(stderr, "damaged kernel: %s\n", r.error().message().c_str());
  EXPECT_FALSE(std::filesystem::exists(root_ + "/bad-kernel"));

  o.kernel_path = guest + "/vmlinuz";
  o.initrd_path = root_ + "/no-such-initramfs";
  r = CreateLinuxTemplate(*kvm, o, root_ + "/no-initrd");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no-such-initramfs"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(root_ + "/no-initrd"));

  // A kernel that never starts the agent: no init to run, and panic=0 keeps
  // it sitting in the panic instead of resetting.
  o.initrd_path = guest + "/initramfs.cpio.gz";
  o.cmdline = "console=ttyS0 panic=0 pci=off rdinit=/kf-no-such-init init=/kf-no-such-init";
  o.boot_timeout_s = 25;
  r = CreateLinuxTemplate(*kvm, o, root_ + "/silent");
  ASSERT_FALSE(r.ok());
  std::fprintf(stderr, "silent guest: %.300s\n", r.error().message().c_str());
  EXPECT_NE(r.error().message().find("no answer within 25 s"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(root_ + "/silent"));
}

// Each clone gets its own identity; after the reseed, no two clones' kernel
// RNGs give the same bytes (before it, they would: same template state).
TEST_F(KvmLinuxTest, IdentityAndRngArePerClone) {
  Zygote z = SpawnZygote();
  CloneHandle a = MustCloneHandle(z), b = MustCloneHandle(z);
  auto ca = Connect(a), cb = Connect(b);
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  ASSERT_TRUE(cb.ok()) << cb.error().message();
  auto ia = FreshIdentity("sandbox-a"), ib = FreshIdentity("sandbox-b");
  ASSERT_TRUE(ia.ok() && ib.ok());
  ASSERT_TRUE(ca->SetIdentity(*ia).ok());
  ASSERT_TRUE(cb->SetIdentity(*ib).ok());
  auto ga = ca->GetIdentity(), gb = cb->GetIdentity();
  ASSERT_TRUE(ga.ok() && gb.ok());
  EXPECT_EQ(ga->sandbox_id, "sandbox-a");
  EXPECT_EQ(gb->sandbox_id, "sandbox-b");
  EXPECT_EQ(ga->hostname, ia->hostname);
  auto ra = ca->Random(32), rb = cb->Random(32);
  ASSERT_TRUE(ra.ok()) << ra.error().message();
  ASSERT_TRUE(rb.ok()) << rb.error().message();
  EXPECT_EQ(ra->size(), 32u);
  EXPECT_NE(*ra, *rb) << "two reseeded clones produced the same random bytes";
  EXPECT_TRUE(ReleaseClone(a).ok());
  EXPECT_TRUE(ReleaseClone(b).ok());
}

// The clone's console: console.log beside agent.sock, and console.sock
// accepting a client.
TEST_F(KvmLinuxTest, CloneHasItsConsole) {
  Zygote z = SpawnZygote();
  std::string run;
  CloneHandle c = MustCloneHandle(z, &run);
  auto a = Connect(c);
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_TRUE(std::filesystem::exists(run + "/console.log"));
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s/console.sock", run.c_str());
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  EXPECT_TRUE(a->Ping(1).ok()) << "the console client did not disturb the agent";
  EXPECT_TRUE(ReleaseClone(c).ok());
  EXPECT_FALSE(std::filesystem::exists(run + "/console.sock")) << "console.sock left behind";
  EXPECT_FALSE(std::filesystem::exists(run + "/agent.sock")) << "agent.sock left behind";
}

// A released clone's VMM exits; the zygote keeps cloning.
TEST_F(KvmLinuxTest, ReleasedCloneExitsAndZygoteKeepsServing) {
  Zygote z = SpawnZygote();
  CloneHandle c = MustCloneHandle(z);
  ASSERT_TRUE(Connect(c).ok());
  const pid_t pid = c.pid;
  EXPECT_TRUE(ReleaseClone(c).ok());
  EXPECT_NE(::kill(pid, 0), 0) << "the released clone's VMM still runs";
  CloneHandle d = MustCloneHandle(z);
  auto a = Connect(d);
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_TRUE(a->Ping(7).ok());
  EXPECT_TRUE(ReleaseClone(d).ok());
}

}  // namespace
}  // namespace kf
