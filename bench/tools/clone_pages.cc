// kf-clone-pages PID [--list]: where a clone's private guest memory is.
//
// A clone maps the template's memory (the zygote's sealed memfd,
// "/memfd:kf-template") MAP_PRIVATE, so every guest page it writes becomes a
// private copy. This reads /proc/PID/pagemap for that mapping and, for each
// private copy, compares it with the template's page (through
// /proc/PID/map_files), printing how many copies there are, how many bytes
// of each changed, and how they spread over guest-physical MiB. --list adds
// one line per page (guest-physical address, bytes changed). Root only
// (pagemap's flags, map_files). docs/BENCHMARKS.md "Where a Linux clone's
// private memory goes" shows what it found.
#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = uint64_t{1} << 63;
constexpr uint64_t kFileOrSharedAnon = uint64_t{1} << 61;

struct Region {
  uint64_t lo = 0, hi = 0, offset = 0;
};

// The largest mapping of the template memfd in PID's address space.
bool FindTemplateMapping(const std::string& pid, Region* out) {
  std::ifstream maps("/proc/" + pid + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:kf-template ") == std::string::npos) continue;
    Region r;
    if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &r.lo, &r.hi, &r.offset) != 3)
      continue;
    if (r.hi - r.lo > out->hi - out->lo) *out = r;
  }
  return out->hi > out->lo;
}

int Bucket(int changed) {
  if (changed == 0) return 0;
  if (changed <= 16) return 1;
  if (changed <= 256) return 2;
  if (changed <= 2048) return 3;
  if (changed < 4096) return 4;
  return 5;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--list") != 0)) {
    std::fprintf(stderr, "usage: kf-clone-pages PID [--list]\n");
    return 2;
  }
  const std::string pid = argv[1];
  const bool list = argc == 3;
  Region r;
  if (!FindTemplateMapping(pid, &r)) {
    std::fprintf(stderr, "kf-clone-pages: process %s maps no /memfd:kf-template\n", pid.c_str());
    return 1;
  }
  char files[128];
  std::snprintf(files, sizeof files, "/proc/%s/map_files/%" PRIx64 "-%" PRIx64, pid.c_str(), r.lo, r.hi);
  int pagemap = ::open(("/proc/" + pid + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  int mem = ::open(("/proc/" + pid + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  int tmpl = ::open(files, O_RDONLY | O_CLOEXEC);
  if (pagemap < 0 || mem < 0 || tmpl < 0) {
    std::fprintf(stderr, "kf-clone-pages: cannot open pagemap, mem or %s: %s (root?)\n", files,
                 std::strerror(errno));
    return 1;
  }
  uint64_t copies = 0, shared = 0;
  uint64_t buckets[6] = {};
  std::map<uint64_t, uint64_t> per_mib;
  static unsigned char mine[kPage], theirs[kPage];
  for (uint64_t addr = r.lo; addr < r.hi; addr += kPage) {
    uint64_t entry = 0;
    if (::pread(pagemap, &entry, sizeof entry, static_cast<off_t>(addr / kPage * 8)) != 8) break;
    if (!(entry & kPresent)) continue;
    if (entry & kFileOrSharedAnon) {
      ++shared;
      continue;
    }
    ++copies;
    const uint64_t gpa = r.offset + (addr - r.lo);
    ++per_mib[gpa >> 20];
    if (::pread(mem, mine, kPage, static_cast<off_t>(addr)) != static_cast<ssize_t>(kPage)) continue;
    if (::pread(tmpl, theirs, kPage, static_cast<off_t>(gpa)) != static_cast<ssize_t>(kPage))
      std::memset(theirs, 0, kPage);
    int changed = 0;
    for (uint64_t i = 0; i < kPage; ++i) changed += mine[i] != theirs[i];
    ++buckets[Bucket(changed)];
    if (list) std::printf("page 0x%" PRIx64 " %d\n", gpa, changed);
  }
  std::printf("template mapping %" PRIx64 "-%" PRIx64 ": %" PRIu64 " private copies (%.2f MiB), %" PRIu64
              " template pages mapped\n",
              r.lo, r.hi, copies, copies * kPage / 1048576.0, shared);
  std::printf("bytes changed per copy: 0: %" PRIu64 ", 1-16: %" PRIu64 ", 17-256: %" PRIu64 ", 257-2048: %" PRIu64
              ", 2049-4095: %" PRIu64 ", 4096: %" PRIu64 "\n",
              buckets[0], buckets[1], buckets[2], buckets[3], buckets[4], buckets[5]);
  std::printf("copies per guest-physical MiB:");
  for (const auto& [mib, n] : per_mib) std::printf(" %" PRIu64 ":%" PRIu64, mib, n);
  std::printf("\n");
  return 0;
}
