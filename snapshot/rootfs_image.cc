#include "snapshot/rootfs_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include <xxhash.h>

#include "snapshot/file_io.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

namespace {

constexpr size_t kChunk = 4 << 20;

// Streams the file at `fd` through XXH3, handing each chunk to `sink`.
template <typename Sink>
Result<RootfsDigest> HashFile(int fd, const std::string& name, Sink&& sink) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(),
                                                               &XXH3_freeState);
  if (!st || XXH3_64bits_reset(st.get()) != XXH_OK) return Error("XXH3 state for " + name);
  std::vector<uint8_t> buf(kChunk);
  RootfsDigest d;
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, PreadFull(fd, buf.data(), buf.size(), d.size, name));
    if (n == 0) break;
    XXH3_64bits_update(st.get(), buf.data(), n);
    RETURN_IF_ERROR(sink(buf.data(), n, d.size));
    d.size += n;
    if (n < buf.size()) break;
  }
  d.checksum = XXH3_64bits_digest(st.get());
  return d;
}

Result<UniqueFd> OpenRegular(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return Error::Sys("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error(path + " is not a regular file");
  return fd;
}

}  // namespace

Status CopyRootfsImage(const std::string& src, const std::string& dst,
                       const RootfsDigest& expected) {
  ASSIGN_OR_RETURN(UniqueFd in, OpenRegular(src));
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (out < 0) return Error::Sys("creating " + dst);
  auto copied = HashFile(in.get(), src, [&](const uint8_t* p, size_t n, uint64_t off) {
    return PwriteAll(out, p, n, off, dst);
  });
  Status closed = SyncAndClose(out, dst);
  Status result = Status::Ok();
  if (!copied.ok()) {
    result = copied.error();
  } else if (!closed.ok()) {
    result = closed;
  } else if (copied->size != expected.size || copied->checksum != expected.checksum) {
    result = Error(src + " changed while the template was being made (" +
                   std::to_string(expected.size) + " bytes when booted, " +
                   std::to_string(copied->size) + " when copied, or different content)");
  }
  if (!result.ok()) ::unlink(dst.c_str());
  return result;
}

}  // namespace kf
