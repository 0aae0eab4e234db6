// "what: strerror(errno)" without linking kf_vmm_glue (where Error::Sys
// lives), so that kf_daemon_ops stays free of KVM and protobuf.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>

#include "vmm-glue/result.h"

namespace kf::ops {

inline Error SysError(const std::string& what, int err = errno) {
  return Error(what + ": " + std::strerror(err), err);
}

}  // namespace kf::ops
