// The QEMU templating peer (bench/peers/) for real: one template and two
// clones under KVM. Skips, with the reason, without a usable /dev/kvm, QEMU
// or the guest images ($KF_GUEST_DIR, scripts/build-guest's output).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench/peers/qemu_templating.h"

namespace kf::peers {
namespace {

std::string SkipReason() {
  const int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return "no usable /dev/kvm";
  const int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  close(kvm);
  if (vm < 0) return "/dev/kvm cannot create a VM";
  close(vm);
  if (std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0)
    return "no qemu-system-x86_64 (Debian's qemu-system-x86)";
  const char* guest = std::getenv("KF_GUEST_DIR");
  if (guest == nullptr || !std::filesystem::exists(std::string(guest) + "/vmlinuz"))
    return "no guest images: set KF_GUEST_DIR to scripts/build-guest's output";
  return "";
}

TEST(KvmQemuPeer, TemplateAndTwoClones) {
  const std::string skip = SkipReason();
  if (!skip.empty()) GTEST_SKIP() << skip;
  char parent[] = "/tmp/kf-qemu-peer-kvm-XXXXXX";
  ASSERT_NE(mkdtemp(parent), nullptr);
  QemuPeerOptions o;
  o.guest_dir = std::getenv("KF_GUEST_DIR");
  o.accel = "kvm";
  o.clones = 2;
  o.mem_mib = 256;
  o.work_dir = parent;
  o.template_timeout_ms = 60000;
  o.clone_timeout_ms = 20000;
  auto r = MeasureQemuTemplating(o);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_GT(r->template_boot_ns, 0u);
  EXPECT_GT(r->state_file_bytes, 0u);
  // The RAM file holds the template's memory; the device state does not.
  EXPECT_LT(r->state_file_bytes, uint64_t{o.mem_mib} << 19);
  ASSERT_EQ(r->clones.size(), 2u);
  for (const auto& c : r->clones) {
    EXPECT_GT(c.ready_ns, 0u);
    EXPECT_LE(c.migrated_ns, c.running_ns);
    EXPECT_LE(c.running_ns, c.ready_ns);
    EXPECT_GT(c.memory.pss, 0u);
    EXPECT_NE(kill(c.pid, 0), 0) << "clone QEMU " << c.pid << " still runs";
  }
  RecordProperty("readiness", ReadinessName(r->readiness));
  std::printf("%s\n", PeerReportJson(*r).c_str());
  EXPECT_TRUE(std::filesystem::is_empty(parent)) << "the run left files in " << parent;
  std::filesystem::remove_all(parent);
}

}  // namespace
}  // namespace kf::peers
