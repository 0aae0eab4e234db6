#include "snapshot/template_files.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "snapshot/file_io.h"
#include "snapshot/memory_file.h"
#include "snapshot/rootfs_image.h"
#include "snapshot/state_file.h"
#include "vmm-glue/unique_fd.h"

namespace kf {
namespace {

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// "a/b/" and "a/b" name the same directory; the temporary sibling must be
// "a/b.tmp-N", not "a/b/.tmp-N".
std::string StripTrailingSlashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

std::string ParentOf(const std::string& dir) {
  std::string parent = std::filesystem::path(dir).parent_path().string();
  return parent.empty() ? "." : parent;
}

Result<uint64_t> RandomId() {
  uint64_t id = 0;
  ssize_t n;
  do {
    n = ::getrandom(&id, sizeof(id), 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(id))) return Error::Sys("getrandom");
  return id;
}

// Removes a template directory by its known entries only, never
// recursively: a wrong path must not be able to delete anything else.
void RemoveTemplateDir(const std::string& dir) {
  ::unlink(Join(dir, kStateFileName).c_str());
  ::unlink(Join(dir, kMemoryFileName).c_str());
  ::unlink(Join(dir, kRootfsFileName).c_str());
  ::rmdir(dir.c_str());
}

Status WriteNewFile(const std::string& path, const auto& write) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Error::Sys("creating " + path);
  Status written = write(fd);
  if (!written.ok()) {
    ::close(fd);
    return written;
  }
  return SyncAndClose(fd, path);
}

// rename() without replacing: a directory that appeared at `to` since the
// existence check (even an empty one, which rename() would replace) wins.
Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  if (errno == EEXIST) {
    return Error("template directory " + to + " already exists; refusing to overwrite it", EEXIST);
  }
  if (errno != EINVAL) return Error::Sys("renaming " + from + " to " + to);
  // The file system cannot do RENAME_NOREPLACE; the earlier check stands.
  if (::rename(from.c_str(), to.c_str()) < 0) {
    return Error::Sys("renaming " + from + " to " + to);
  }
  return Status::Ok();
}

// Everything after the temporary directory exists; the caller removes it
// on failure.
Status WriteAndPublish(const std::string& tmp, const std::string& dir,
                       const std::string& state_bytes, std::span<const uint8_t> memory,
                       const MemoryFooter& footer, const std::string& rootfs_image,
                       const TemplateState& state) {
  if (!rootfs_image.empty()) {
    RETURN_IF_ERROR(CopyRootfsImage(
        rootfs_image, Join(tmp, kRootfsFileName),
        {state.linux_guest.rootfs_size, state.linux_guest.rootfs_checksum}));
  }
  const std::string memory_path = Join(tmp, kMemoryFileName);
  RETURN_IF_ERROR(WriteNewFile(
      memory_path, [&](int fd) { return WriteMemoryFile(fd, memory_path, memory, footer); }));
  const std::string state_path = Join(tmp, kStateFileName);
  RETURN_IF_ERROR(WriteNewFile(state_path, [&](int fd) {
    return PwriteAll(fd, state_bytes.data(), state_bytes.size(), 0, state_path);
  }));
  // The entries must be durable before the rename can make them visible.
  RETURN_IF_ERROR(FsyncDirectory(tmp));
  RETURN_IF_ERROR(RenameNoReplace(tmp, dir));
  Status synced = FsyncDirectory(ParentOf(dir));
  if (!synced.ok()) {
    // The rename may not survive a crash; report failure and leave nothing.
    RemoveTemplateDir(dir);
    return synced;
  }
  return Status::Ok();
}

Status CheckMemoryFileSize(uint64_t size, const TemplateState& state) {
  if (size != state.memory_file_size) {
    return Error(std::string(kMemoryFileName) + " is " + std::to_string(size) +
                 " bytes, state says " + std::to_string(state.memory_file_size));
  }
  return Status::Ok();
}

Result<TemplateState> ReadStateFile(const std::string& dir) {
  UniqueFd fd(::open(Join(dir, kStateFileName).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys(kStateFileName);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Sys(std::string("fstat of ") + kStateFileName);
  if (!S_ISREG(st.st_mode)) return Error(std::string(kStateFileName) + " is not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  uint8_t head[kStateHeaderSize];
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd.get(), head, sizeof(head), 0, kStateFileName));
  ASSIGN_OR_RETURN(StateHeader header, DecodeStateHeader({head, got}, size));

  // Bounded by kMaxStatePayload in DecodeStateHeader.
  std::vector<uint8_t> payload(header.payload_size);
  ASSIGN_OR_RETURN(
      got, PreadFull(fd.get(), payload.data(), payload.size(), kStateHeaderSize, kStateFileName));
  payload.resize(got);
  return DecodeStatePayload(header, payload);
}

// memory.img must exist, be the size recorded in state.bin, and carry the
// same template's footer.
Status CheckMemoryFile(const std::string& dir, const TemplateState& state) {
  UniqueFd fd(::open(Join(dir, kMemoryFileName).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys(kMemoryFileName);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Sys(std::string("fstat of ") + kMemoryFileName);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // An intact footer of another template means state.bin was taken from
  // elsewhere; say so rather than "wrong size".
  Result<MemoryFooter> footer = ReadMemoryFooter(fd.get(), size, kMemoryFileName);
  if (footer.ok() &&
      (footer->template_id != state.template_id || footer->mem_size != state.mem_size ||
       footer->checksum != state.memory_checksum)) {
    return Error("state.bin and memory.img belong to different templates: state.bin is template " +
                 Hex(state.template_id) + " with " + std::to_string(state.mem_size) +
                 " bytes of memory, memory.img is template " + Hex(footer->template_id) + " with " +
                 std::to_string(footer->mem_size) + " bytes");
  }
  RETURN_IF_ERROR(CheckMemoryFileSize(size, state));
  if (!footer.ok()) return footer.error();
  return Status::Ok();
}

}  // namespace

Status WriteTemplate(const std::string& dir_arg, TemplateState state,
                     std::span<const uint8_t> memory, const std::string& rootfs_image) {
  const std::string dir = StripTrailingSlashes(dir_arg);
  if (dir.empty() || dir == "/") return Error("invalid template directory \"" + dir_arg + "\"");
  // Checked first, before the costly hashing. RenameNoReplace checks again.
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0) {
    return Error("template directory " + dir + " already exists; refusing to overwrite it", EEXIST);
  }
  if (errno != ENOENT) return Error::Sys("checking " + dir);

  state.format_version = kTemplateFormatVersion;
  state.mem_size = memory.size();
  state.memory_file_size = state.mem_size + kMemoryFooterSize;
  if (state.regions.empty()) state.regions.push_back({0, state.mem_size, 0});
  if (state.created_unix_ns == 0) {
    state.created_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  }
  ASSIGN_OR_RETURN(state.template_id, RandomId());
  if (rootfs_image.empty() != (state.linux_guest.rootfs_size == 0))
    return Error("template " + dir + ": a rootfs image goes with linux_guest.rootfs_size");
  Status valid = ValidateTemplateState(state);
  if (!valid.ok()) return valid.error().Context("template " + dir);
  ASSIGN_OR_RETURN(state.memory_checksum, HashMemory(memory));
  ASSIGN_OR_RETURN(std::string state_bytes, EncodeStateFile(state));

  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  // Left by a writer of the same pid that crashed: ours to remove.
  RemoveTemplateDir(tmp);
  if (::mkdir(tmp.c_str(), 0755) < 0) return Error::Sys("creating " + tmp);

  const MemoryFooter footer{state.mem_size, state.memory_checksum, state.template_id};
  Status s = WriteAndPublish(tmp, dir, state_bytes, memory, footer, rootfs_image, state);
  if (!s.ok()) RemoveTemplateDir(tmp);
  return s;
}

Result<TemplateState> ReadTemplateState(const std::string& dir) {
  Result<TemplateState> state = ReadStateFile(dir);
  if (!state.ok()) return state.error().Context("template " + dir);
  Status memory = CheckMemoryFile(dir, *state);
  if (!memory.ok()) return memory.error().Context("template " + dir);
  return state;
}

Status CopyAndVerifyMemory(const std::string& dir, const TemplateState& state, int dest_fd) {
  const std::string context = "template " + dir;
  UniqueFd fd(::open(Join(dir, kMemoryFileName).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys(kMemoryFileName).Context(context);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Sys("fstat of memory.img").Context(context);
  Status sized = CheckMemoryFileSize(static_cast<uint64_t>(st.st_size), state);
  if (!sized.ok()) return sized.error().Context(context);
  if (::fstat(dest_fd, &st) < 0) return Error::Sys("fstat of the guest memory copy");
  if (static_cast<uint64_t>(st.st_size) < state.mem_size) {
    return Error("guest memory copy is " + std::to_string(st.st_size) + " bytes, needs " +
                 std::to_string(state.mem_size));
  }

  Result<uint64_t> sum = CopyMemoryData(fd.get(), state.mem_size, dest_fd, kMemoryFileName);
  if (!sum.ok()) return sum.error().Context(context);
  if (*sum != state.memory_checksum) {
    return Error("memory.img checksum mismatch (damaged template)").Context(context);
  }
  return Status::Ok();
}

}  // namespace kf
