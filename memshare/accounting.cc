#include "memshare/accounting.h"

#include <fstream>
#include <sstream>

namespace kf {

namespace {
Result<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Error::Sys("open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

Result<ProcessMemory> ParseSmapsRollup(const std::string& text) {
  ProcessMemory m;
  bool seen_rss = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    uint64_t kib = 0;
    if (!(fields >> key >> kib)) continue;
    const uint64_t bytes = kib * 1024;
    if (key == "Rss:") m.rss = bytes, seen_rss = true;
    else if (key == "Pss:") m.pss = bytes;
    else if (key == "Private_Dirty:") m.private_dirty = bytes;
    else if (key == "Shared_Clean:") m.shared_clean = bytes;
    else if (key == "Anonymous:") m.anonymous = bytes;
  }
  if (!seen_rss) return Error("smaps_rollup has no Rss line");
  return m;
}

Result<ProcessMemory> ReadProcessMemory(pid_t pid) {
  ASSIGN_OR_RETURN(std::string text,
                   ReadFile("/proc/" + std::to_string(pid) + "/smaps_rollup"));
  return ParseSmapsRollup(text);
}

Result<uint64_t> ReadMemAvailable() {
  ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/meminfo"));
  std::istringstream in(text);
  std::string key;
  uint64_t kib;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return kib * 1024;
  }
  return Error("/proc/meminfo has no MemAvailable");
}

uint64_t EstimateKvmVmBytes(uint64_t guest_mem_bytes, int vcpus) {
  constexpr uint64_t kFixedPerVm = 260 * 1024;    // fitted to ENVIRONMENT.md section 4
  constexpr uint64_t kPerVcpu = 24 * 1024;        // vcpu struct, LAPIC page, run page
  const uint64_t pages = guest_mem_bytes / 4096;
  return kFixedPerVm + uint64_t(vcpus) * kPerVcpu + pages * 8;
}

}  // namespace kf
