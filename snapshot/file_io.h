// Small I/O helpers shared by the template file formats: full reads and
// writes that retry on EINTR and short counts, fsync of a directory, and
// little-endian fields of the fixed-size headers. Errors name the file (the
// caller's `name`) and the errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "vmm-glue/result.h"

namespace kf {

// Writes all n bytes at offset `off`.
Status PwriteAll(int fd, const void* data, size_t n, uint64_t off, const std::string& name);

// Reads up to n bytes at `off`; returns fewer only at end of file.
Result<size_t> PreadFull(int fd, void* data, size_t n, uint64_t off, const std::string& name);

// fsync()s a directory, making the creation or rename of its entries durable.
Status FsyncDirectory(const std::string& dir);

// fsync()s and closes a file. close() is checked too: some file systems
// report deferred write errors only there.
Status SyncAndClose(int fd, const std::string& name);

inline void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t GetLe32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
inline uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace kf
