#include "vmm-glue/result.h"

#include <cstring>

namespace kf {

Error Error::Sys(const std::string& what, int sys_errno) {
  return Error(what + ": " + std::strerror(sys_errno) + " (errno " +
                   std::to_string(sys_errno) + ")",
               sys_errno);
}

}  // namespace kf
