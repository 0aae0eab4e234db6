#include "snapshot/memory_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "snapshot/file_io.h"
#include "snapshot/memory_hash.h"
#include "snapshot/template_state.h"

namespace kf {
namespace {

constexpr char kFooterMagic[8] = {'K', 'F', 'M', 'E', 'M', 'F', 'T', '1'};
// Footer fields, at these offsets; the last 8 bytes hash the ones before.
constexpr size_t kOffVersion = 8, kOffSize = 12, kOffMemSize = 16, kOffChecksum = 24,
                 kOffTemplateId = 32, kOffFooterHash = 56;
static_assert(kOffFooterHash + 8 == kMemoryFooterSize);

// Large reads keep the number of system calls low on multi-GiB memory.
constexpr size_t kCopyChunk = 8 << 20;

alignas(64) const uint8_t kZeroPage[kTemplatePageSize] = {};

bool IsZero(const uint8_t* p, size_t n) { return std::memcmp(p, kZeroPage, n) == 0; }

// Writes the non-zero pages of data[0, n) at `off`, coalescing runs of
// them into one write each.
Status WriteNonZeroPages(int fd, const uint8_t* data, size_t n, uint64_t off,
                         const std::string& name) {
  size_t run_start = 0, run_len = 0;
  for (size_t pos = 0; pos < n; pos += kTemplatePageSize) {
    const size_t len = std::min<size_t>(kTemplatePageSize, n - pos);
    if (IsZero(data + pos, len)) {
      if (run_len > 0)
        RETURN_IF_ERROR(PwriteAll(fd, data + run_start, run_len, off + run_start, name));
      run_len = 0;
      continue;
    }
    if (run_len == 0) run_start = pos;
    run_len += len;
  }
  if (run_len > 0) RETURN_IF_ERROR(PwriteAll(fd, data + run_start, run_len, off + run_start, name));
  return Status::Ok();
}

}  // namespace

Status WriteMemoryFile(int fd, const std::string& name, std::span<const uint8_t> memory,
                       const MemoryFooter& footer) {
  RETURN_IF_ERROR(WriteNonZeroPages(fd, memory.data(), memory.size(), 0, name));

  uint8_t buf[kMemoryFooterSize] = {};
  std::memcpy(buf, kFooterMagic, sizeof(kFooterMagic));
  PutLe32(buf + kOffVersion, kTemplateFormatVersion);
  PutLe32(buf + kOffSize, kMemoryFooterSize);
  PutLe64(buf + kOffMemSize, footer.mem_size);
  PutLe64(buf + kOffChecksum, footer.checksum);
  PutLe64(buf + kOffTemplateId, footer.template_id);
  PutLe64(buf + kOffFooterHash, XXH3_64bits(buf, kOffFooterHash));
  // Written at mem_size, so a zero tail of memory becomes a hole before it.
  return PwriteAll(fd, buf, sizeof(buf), memory.size(), name);
}

Result<MemoryFooter> ReadMemoryFooter(int fd, uint64_t file_size, const std::string& name) {
  if (file_size < kMemoryFooterSize) {
    return Error(name + " is " + std::to_string(file_size) + " bytes, too short for its footer");
  }
  uint8_t buf[kMemoryFooterSize];
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd, buf, sizeof(buf), file_size - sizeof(buf), name));
  if (got != sizeof(buf)) return Error(name + " footer: short read");
  if (std::memcmp(buf, kFooterMagic, sizeof(kFooterMagic)) != 0) {
    return Error(name + " has no footer (truncated or not a template memory file)");
  }
  if (GetLe64(buf + kOffFooterHash) != XXH3_64bits(buf, kOffFooterHash)) {
    return Error(name + " footer checksum mismatch (damaged template)");
  }
  if (GetLe32(buf + kOffVersion) != kTemplateFormatVersion ||
      GetLe32(buf + kOffSize) != kMemoryFooterSize) {
    return Error(name + " footer has format version " + std::to_string(GetLe32(buf + kOffVersion)) +
                 ", size " + std::to_string(GetLe32(buf + kOffSize)) + " (this build reads " +
                 std::to_string(kTemplateFormatVersion) + ", " + std::to_string(kMemoryFooterSize) +
                 ")");
  }
  return MemoryFooter{GetLe64(buf + kOffMemSize), GetLe64(buf + kOffChecksum),
                      GetLe64(buf + kOffTemplateId)};
}

Result<uint64_t> CopyMemoryData(int src_fd, uint64_t mem_size, int dest_fd,
                                const std::string& name) {
  ASSIGN_OR_RETURN(MemoryHasher hasher, MemoryHasher::Create());
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(kCopyChunk);
  // Advisory only: a failure changes nothing but speed.
  (void)::posix_fadvise(src_fd, 0, static_cast<off_t>(mem_size), POSIX_FADV_SEQUENTIAL);

  uint64_t off = 0;
  while (off < mem_size) {
    // [off, data) is a hole, [data, hole) is data.
    uint64_t data = 0, hole = 0;
    const off_t d = ::lseek(src_fd, static_cast<off_t>(off), SEEK_DATA);
    if (d < 0 && errno == ENXIO) {
      data = mem_size;  // only holes from here to the end of the file
    } else if (d < 0 && errno == EINVAL) {
      data = off;  // no SEEK_DATA here: treat the rest as data
      hole = mem_size;
    } else if (d < 0) {
      return Error::Sys("SEEK_DATA in " + name);
    } else {
      data = std::min<uint64_t>(static_cast<uint64_t>(d), mem_size);
    }
    hasher.UpdateZeros(data - off);
    if (data >= mem_size) break;
    if (hole == 0) {
      const off_t h = ::lseek(src_fd, static_cast<off_t>(data), SEEK_HOLE);
      if (h < 0) return Error::Sys("SEEK_HOLE in " + name);
      hole = std::min<uint64_t>(static_cast<uint64_t>(h), mem_size);
      if (hole <= data) return Error(name + " changed while being read");
    }
    for (uint64_t pos = data; pos < hole;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyChunk, hole - pos));
      ASSIGN_OR_RETURN(size_t got, PreadFull(src_fd, buf.get(), n, pos, name));
      if (got != n) {
        return Error(name + " ended at " + std::to_string(pos + got) + " bytes, expected " +
                     std::to_string(mem_size) + " (truncated while being read)");
      }
      hasher.Update({buf.get(), n});
      RETURN_IF_ERROR(WriteNonZeroPages(dest_fd, buf.get(), n, pos, "guest memory copy"));
      pos += n;
    }
    off = hole;
  }
  return hasher.Digest();
}

}  // namespace kf
