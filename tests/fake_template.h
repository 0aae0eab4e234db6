// A valid template directory that is not a bootable guest: a daemon finds
// it at start and gives it a pool, a zygote loads it, a clone of it cannot
// run. For daemon tests that need no KVM.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/template_files.h"

namespace kf::testing {

inline void WriteFakeTemplate(const std::string& dir) {
  TemplateState s;
  s.guest_kind = kGuestKindBare;
  s.vcpus.resize(1);
  std::vector<uint8_t> memory(2 << 20, 0);
  Status w = WriteTemplate(dir, s, memory);
  ASSERT_TRUE(w.ok()) << w.error().message();
}

}  // namespace kf::testing
