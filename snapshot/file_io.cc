#include "snapshot/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "vmm-glue/unique_fd.h"

namespace kf {
namespace {
// Linux transfers at most ~2 GiB per call; stay well below.
constexpr size_t kMaxIo = size_t{1} << 30;
}  // namespace

Status PwriteAll(int fd, const void* data, size_t n, uint64_t off, const std::string& name) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, std::min(n, kMaxIo), static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error::Sys("writing " + name);
    }
    // A short write (disk full, file size limit) is followed by a call that
    // returns the errno, so just continue.
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Result<size_t> PreadFull(int fd, void* data, size_t n, uint64_t off, const std::string& name) {
  auto* p = static_cast<uint8_t*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t r =
        ::pread(fd, p + done, std::min(n - done, kMaxIo), static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Sys("reading " + name);
    }
    if (r == 0) break;  // end of file
    done += static_cast<size_t>(r);
  }
  return done;
}

Status FsyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys("opening directory " + dir);
  if (::fsync(fd.get()) < 0) return Error::Sys("fsync of directory " + dir);
  return Status::Ok();
}

Status SyncAndClose(int fd, const std::string& name) {
  if (::fsync(fd) < 0) {
    const int err = errno;
    ::close(fd);
    return Error::Sys("fsync of " + name, err);
  }
  if (::close(fd) < 0) return Error::Sys("closing " + name);
  return Status::Ok();
}

}  // namespace kf
