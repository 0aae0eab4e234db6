#include "factory/loaded_template.h"

#include "memshare/guest_backing.h"
#include "snapshot/template_files.h"

namespace kf {

Result<LoadedTemplate> LoadTemplate(const std::string& dir) {
  LoadedTemplate t;
  t.dir = dir;
  ASSIGN_OR_RETURN(t.state, ReadTemplateState(dir));
  ASSIGN_OR_RETURN(t.memory, CreateMemfd("kf-template", t.state.mem_size));
  RETURN_IF_ERROR(CopyAndVerifyMemory(dir, t.state, t.memory.get()));
  RETURN_IF_ERROR(SealMemfd(t.memory.get()));
  return t;
}

}  // namespace kf
