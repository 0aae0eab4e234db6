#include "memshare/pmem_backing.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "vmm-glue/pmem/pmem_device.h"

namespace kf {

static_assert(kPmemImageAlignment == pmem::kRegionAlignment);

namespace {

// A MAP_SHARED mapping of fd's [0, size) at a kPmemImageAlignment boundary:
// reserve size + alignment of address space, map the file over its aligned
// part, give back the rest.
Result<Mapping> MapAligned(int fd, uint64_t size, int prot, const std::string& path) {
  const uint64_t span = size + kPmemImageAlignment;
  void* r = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return Error::Sys("pmem image " + path + ": reserving address space");
  const uintptr_t start = reinterpret_cast<uintptr_t>(r);
  const uintptr_t aligned = (start + kPmemImageAlignment - 1) & ~(kPmemImageAlignment - 1);
  void* p = ::mmap(reinterpret_cast<void*>(aligned), size, prot, MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::munmap(r, span);
    return Error::Sys("pmem image " + path + ": mmap of " + std::to_string(size) + " bytes", err);
  }
  if (aligned > start) ::munmap(r, aligned - start);
  const uintptr_t end = aligned + size;
  if (start + span > end) ::munmap(reinterpret_cast<void*>(end), start + span - end);
  return Mapping(static_cast<uint8_t*>(p), size);
}

}  // namespace

Result<PmemBacking> MapPmemImage(const std::string& path, bool read_only) {
  UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys("pmem image " + path + ": open");
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Sys("pmem image " + path + ": fstat");
  if (!S_ISREG(st.st_mode)) return Error("pmem image " + path + ": not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    return Error("pmem image " + path +
                 ": empty (its size must be a non-zero multiple of 2 MiB, for DAX)");
  }
  if (size % kPmemImageAlignment != 0) {
    return Error("pmem image " + path + ": " + std::to_string(size) +
                 " bytes is not a multiple of 2 MiB (needed for DAX; pad the image, "
                 "e.g. truncate -s %2M)");
  }
  ASSIGN_OR_RETURN(Mapping m,
                   MapAligned(fd.get(), size, read_only ? PROT_READ : PROT_READ | PROT_WRITE, path));
  PmemBacking b;
  b.fd = std::move(fd);
  b.mapping = std::move(m);
  b.size = size;
  b.read_only = read_only;
  return b;
}

}  // namespace kf
