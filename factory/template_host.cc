#include "factory/template_host.h"

#include <sys/utsname.h>

#include <fstream>
#include <string>

namespace kf {

namespace {

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

TemplateHost DescribeTemplateHost(const Kvm& kvm) {
  TemplateHost host;
  utsname uts{};
  ::uname(&uts);
  host.kernel_release = uts.release;
  host.cpu_model = CpuModel();
  host.is_pvm = kvm.info().is_pvm;
  return host;
}

}  // namespace kf
