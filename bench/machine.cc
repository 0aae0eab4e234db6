#include "bench/machine.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "factory/template_host.h"
#include "vmm-glue/kvm.h"
#include "vmm-glue/nx_huge_pages.h"

namespace kf::bench {

namespace {

// The first "flags" line of /proc/cpuinfo, padded with spaces.
std::string CpuFlags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
  return "";
}

uint64_t MemTotal() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (f >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    f.ignore(256, '\n');
  }
  return 0;
}

}  // namespace

Machine DescribeMachine() {
  Machine m;
  m.cores = static_cast<uint64_t>(::sysconf(_SC_NPROCESSORS_ONLN));
  m.mem_total_bytes = MemTotal();
  const std::string flags = CpuFlags();
  m.under_hypervisor = flags.find(" hypervisor ") != std::string::npos;
  m.kvm_nx_huge_pages = ReadNxHugePages().value;
  auto kvm = Kvm::Open();
  if (kvm.ok()) {
    TemplateHost host = DescribeTemplateHost(*kvm);
    m.cpu_model = host.cpu_model;
    m.kernel = host.kernel_release;
    if (host.is_pvm)
      m.kvm = "pvm";
    else if (flags.find(" vmx ") != std::string::npos)
      m.kvm = "vmx";
    else if (flags.find(" svm ") != std::string::npos)
      m.kvm = "svm";
    else
      m.kvm = "kvm";
  } else {
    m.kvm = "none";
    m.kvm_reason = kvm.error().message();
    utsname uts{};
    ::uname(&uts);
    m.kernel = uts.release;
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("model name", 0) == 0) {
        m.cpu_model = line.substr(line.find(':') + 2);
        break;
      }
  }
  return m;
}

}  // namespace kf::bench
