// qemu_peer: runs the Kata-style QEMU templating peer (bench/peers/
// qemu_templating.h) by hand and prints what it measured.
//
//   qemu_peer --guest-dir build/guest --clones 2 --accel tcg [--json]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/peers/qemu_templating.h"

namespace {

constexpr char kUsage[] =
    "Usage: qemu_peer --guest-dir DIR [OPTIONS]\n"
    "\n"
    "Kata Containers' VM templating with QEMU on our guest: boots a template with\n"
    "its RAM in a shared file, saves its device state (x-ignore-shared), then starts\n"
    "N clones with -incoming and the RAM file mapped privately. Prints the template's\n"
    "boot time and, per clone, spawn -> ready and host memory (smaps_rollup, MemAvailable).\n"
    "\n"
    "  --guest-dir DIR      vmlinuz, initramfs.cpio.gz (manifest.json) of scripts/build-guest\n"
    "  --clones N           clones (default 2)\n"
    "  --mem-mib M          guest RAM (default 256)\n"
    "  --vcpus N            (default 1)\n"
    "  --accel kvm|tcg      (default kvm)\n"
    "  --machine q35|microvm (default q35)\n"
    "  --qemu BIN           (default qemu-system-x86_64)\n"
    "  --work-dir DIR       parent of the run's temporary directory (default /dev/shm)\n"
    "  --cmdline STR        guest kernel command line (default: the manifest's, no pci=off)\n"
    "  --vsock auto|on|off  agent Ready over vhost-vsock as readiness (default auto)\n"
    "  --template-timeout S (default 180)\n"
    "  --clone-timeout S    (default 60)\n"
    "  --json               one JSON object on stdout\n"
    "  -q, --quiet          no progress on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 failed, 2 bad usage.\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "qemu_peer: %s\nTry 'qemu_peer --help'.\n", why.c_str());
  return 2;
}

bool ParseUint(const char* s, uint32_t* out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(s, &end, 10);
  if (end == s || *end != '\0' || v > 0xffffffffUL) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }
double MiB(double bytes) { return bytes / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  kf::peers::QemuPeerOptions o;
  bool json = false, quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char** v) {
      if (i + 1 >= argc) return false;
      *v = argv[++i];
      return true;
    };
    const char* v = nullptr;
    uint32_t n = 0;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
    } else if (!value(&v)) {
      return Usage(a.rfind("--", 0) == 0 ? a + " needs a value" : "unknown argument " + a);
    } else if (a == "--guest-dir") {
      o.guest_dir = v;
    } else if (a == "--clones" || a == "--mem-mib" || a == "--vcpus" || a == "--template-timeout" ||
               a == "--clone-timeout") {
      if (!ParseUint(v, &n)) return Usage(a + ": not a number: " + v);
      if (a == "--clones")
        o.clones = n;
      else if (a == "--mem-mib")
        o.mem_mib = n;
      else if (a == "--vcpus")
        o.vcpus = n;
      else if (a == "--template-timeout")
        o.template_timeout_ms = static_cast<int>(n) * 1000;
      else
        o.clone_timeout_ms = static_cast<int>(n) * 1000;
    } else if (a == "--accel") {
      o.accel = v;
    } else if (a == "--machine") {
      o.machine = v;
    } else if (a == "--qemu") {
      o.qemu_binary = v;
    } else if (a == "--work-dir") {
      o.work_dir = v;
    } else if (a == "--cmdline") {
      o.cmdline = v;
    } else if (a == "--vsock") {
      const std::string m = v;
      if (m == "auto")
        o.vsock = kf::peers::VsockMode::kAuto;
      else if (m == "on")
        o.vsock = kf::peers::VsockMode::kOn;
      else if (m == "off")
        o.vsock = kf::peers::VsockMode::kOff;
      else
        return Usage("--vsock: auto, on or off");
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (o.guest_dir.empty()) return Usage("--guest-dir is required");
  if (!quiet)
    o.log = [](const std::string& s) { std::fprintf(stderr, "qemu_peer: %s\n", s.c_str()); };

  auto r = kf::peers::MeasureQemuTemplating(o);
  if (!r.ok()) {
    std::fprintf(stderr, "qemu_peer: %s\n", r.error().message().c_str());
    return 1;
  }
  if (json) {
    std::printf("%s\n", kf::peers::PeerReportJson(*r).c_str());
    return 0;
  }
  std::printf("QEMU %s (%s), %s, machine %s, %u MiB, %u vCPU\n", r->qemu_version.c_str(),
              r->qemu_binary.c_str(), r->accel.c_str(), r->machine.c_str(), r->mem_mib, r->vcpus);
  std::printf("readiness: %s (%s)\n", kf::peers::ReadinessName(r->readiness),
              r->readiness_note.c_str());
  std::printf(
      "template: boot %.1f ms (%s), save %.1f ms, device state %llu bytes, RAM file %.1f MiB\n",
      Ms(r->template_boot_ns), r->template_ready_by.c_str(), Ms(r->template_save_ns),
      static_cast<unsigned long long>(r->state_file_bytes), MiB(r->memory_file_bytes));
  for (size_t i = 0; i < r->clones.size(); ++i) {
    const auto& c = r->clones[i];
    std::printf(
        "clone %zu: ready %.1f ms (QMP %.1f, migrated %.1f, running %.1f); Pss %.2f MiB, "
        "Private_Dirty %.2f MiB, Rss %.2f MiB\n",
        i, Ms(c.ready_ns), Ms(c.qmp_ns), Ms(c.migrated_ns), Ms(c.running_ns), MiB(c.memory.pss),
        MiB(c.memory.private_dirty), MiB(c.memory.rss));
  }
  std::printf(
      "per clone: MemAvailable delta %.2f MiB, mean Pss %.2f MiB, mean Private_Dirty %.2f MiB\n",
      MiB(r->MemAvailableDeltaPerClone()), MiB(r->MeanPss()), MiB(r->MeanPrivateDirty()));
  return 0;
}
