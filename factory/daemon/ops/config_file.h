// Reading the daemon's TOML config file (toml++, Debian's libtomlplusplus).
//
// Errors are values naming the file, the line and column, and the key:
//   /etc/kata-factory/config.toml:7:14: templates.bare.pool_size: expected a
//   non-negative integer, got string "8"
// Unknown keys are errors, never ignored; so is a duplicate key (TOML).
#pragma once

#include <string>
#include <string_view>

#include "factory/daemon/ops/daemon_config.h"
#include "vmm-glue/result.h"

namespace kf::ops {

// Defaults, then every key of the file over them. Not validated as a whole:
// call ValidateDaemonConfig after the flags are applied.
Result<DaemonConfig> LoadDaemonConfig(const std::string& path);

// The same from text; `source_name` stands for the file in messages.
Result<DaemonConfig> ParseDaemonConfig(std::string_view text, const std::string& source_name);

}  // namespace kf::ops
