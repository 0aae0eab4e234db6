#include "memshare/guest_backing.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>

namespace kf {

Mapping::~Mapping() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

Mapping::Mapping(Mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Result<UniqueFd> CreateMemfd(const std::string& name, uint64_t size) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Error::Sys("memfd_create " + name);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
    return Error::Sys("ftruncate memfd to " + std::to_string(size) + " bytes");
  return fd;
}

Status SealMemfd(int fd) {
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
    return Error::Sys("F_ADD_SEALS on template memory");
  return Status::Ok();
}

namespace {
Result<Mapping> Map(int fd, uint64_t size, int flags) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED) return Error::Sys("mmap of " + std::to_string(size) + " bytes");
  return Mapping(static_cast<uint8_t*>(p), size);
}
}  // namespace

Result<Mapping> MapShared(int fd, uint64_t size) { return Map(fd, size, MAP_SHARED); }

Result<Mapping> MapPrivate(int fd, uint64_t size, const PrivateMapOptions& options) {
  ASSIGN_OR_RETURN(Mapping m, Map(fd, size, MAP_PRIVATE));
  if (options.mergeable && ::madvise(m.data(), m.size(), MADV_MERGEABLE) < 0)
    return Error::Sys("madvise(MADV_MERGEABLE)");
  return m;
}

}  // namespace kf
