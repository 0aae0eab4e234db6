#include "factory/loaded_template.h"

#include <xxhash.h>

#include "memshare/guest_backing.h"
#include "snapshot/rootfs_image.h"
#include "snapshot/template_files.h"

namespace kf {

namespace {

// The image the template's kernel mounted, or an error: a different file
// under a resumed kernel would be a corrupted file system in every clone.
Result<PmemBacking> MapRootfs(const std::string& dir, const LinuxGuestConfig& lg) {
  const std::string path = dir + "/" + kRootfsFileName;
  ASSIGN_OR_RETURN(PmemBacking b, MapPmemImage(path, /*read_only=*/true));
  if (b.size != lg.rootfs_size)
    return Error(path + " is " + std::to_string(b.size) + " bytes, the template booted with " +
                 std::to_string(lg.rootfs_size));
  if (XXH3_64bits(b.mapping.data(), b.size) != lg.rootfs_checksum)
    return Error(path + " does not have the checksum the template recorded (damaged or replaced)");
  return b;
}

}  // namespace

Result<LoadedTemplate> LoadTemplate(const std::string& dir) {
  LoadedTemplate t;
  t.dir = dir;
  ASSIGN_OR_RETURN(t.state, ReadTemplateState(dir));
  if (t.state.linux_guest.rootfs_size != 0) {
    auto rootfs = MapRootfs(dir, t.state.linux_guest);
    if (!rootfs.ok()) return rootfs.error().Context("template " + dir);
    t.rootfs = std::move(*rootfs);
  }
  ASSIGN_OR_RETURN(t.memory, CreateMemfd("kf-template", t.state.mem_size));
  RETURN_IF_ERROR(CopyAndVerifyMemory(dir, t.state, t.memory.get()));
  RETURN_IF_ERROR(SealMemfd(t.memory.get()));
  return t;
}

}  // namespace kf
