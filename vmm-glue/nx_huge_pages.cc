#include "vmm-glue/nx_huge_pages.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "vmm-glue/unique_fd.h"

namespace kf {

namespace {

constexpr char kParam[] = "/module/kvm/parameters/nx_huge_pages";
constexpr char kVulnerability[] = "/devices/system/cpu/vulnerabilities/itlb_multihit";

// The first line of a sysfs file; false when it cannot be read.
bool ReadLine(const std::string& path, std::string* line) {
  std::ifstream f(path);
  if (!f) return false;
  std::getline(f, *line);
  return true;
}

}  // namespace

std::string NxHugePages::WhyNotTunable() const {
  if (!present) return "the kvm module is not loaded (no nx_huge_pages parameter)";
  if (value == "never") return "already never";
  if (value != "N")
    return "the mitigation is on (" + value + "): this host asked for it; leaving it";
  if (itlb_multihit.empty())
    return "the CPU does not say whether iTLB multihit affects it; leaving it";
  if (itlb_multihit.rfind("Not affected", 0) != 0)
    return "the CPU is affected by iTLB multihit (" + itlb_multihit +
           "): never would stop anyone turning the mitigation on; leaving it";
  return "";
}

NxHugePages ReadNxHugePages(const std::string& sysfs) {
  NxHugePages n;
  n.present = ReadLine(sysfs + kParam, &n.value);
  if (!ReadLine(sysfs + kVulnerability, &n.itlb_multihit)) n.itlb_multihit.clear();
  return n;
}

Result<std::string> SetNxHugePagesNever(const std::string& sysfs) {
  const NxHugePages before = ReadNxHugePages(sysfs);
  if (std::string why = before.WhyNotTunable(); !why.empty())
    return Error(before.present ? "kvm.nx_huge_pages stays " + before.value + ": " + why : why);
  UniqueFd fd(::open((sysfs + kParam).c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid())
    return Error::Sys(errno == EACCES || errno == EPERM
                          ? "open " + sysfs + kParam + " for writing (root only, on a writable /sys)"
                          : "open " + sysfs + kParam);
  static constexpr char kNever[] = "never";
  if (::write(fd.get(), kNever, sizeof kNever - 1) != static_cast<ssize_t>(sizeof kNever - 1))
    return Error::Sys(errno == EBUSY ? "write never to kvm.nx_huge_pages (VMs exist on this "
                                       "host; the kernel takes it only while none does)"
                                     : "write never to kvm.nx_huge_pages");
  const NxHugePages after = ReadNxHugePages(sysfs);
  if (after.value != "never")
    return Error("wrote never to kvm.nx_huge_pages, it reads back " + after.value +
                 " (a kernel without the never setting?)");
  return "kvm.nx_huge_pages " + before.value + " -> never (no recovery thread per VM)";
}

}  // namespace kf
