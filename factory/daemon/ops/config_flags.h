// Flags over the config file: `kata-factory daemon --config FILE --key value`.
//
// Every key of the file is a flag: "--socket PATH", "--max-live-vms 100",
// "--mem-floor 2G", "--templates.bare.pool-size 8" ('-' and '_' are the
// same), as "--key value" or "--key=value". Flags win over the file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "factory/daemon/ops/daemon_config.h"
#include "vmm-glue/result.h"

namespace kf::ops {

// Sets one key from its text: "max_live_vms" or "templates.NAME.KEY".
Status ApplyConfigOverride(DaemonConfig& config, std::string_view key, std::string_view value);

// The whole daemon command line after the verb: reads --config FILE if
// given (else starts from the defaults: no file is read implicitly), applies
// every other --key value over it, then validates. Positional arguments and
// unknown keys are errors. Errors about flags say "--key: why".
Result<DaemonConfig> DaemonConfigFromArgs(const std::vector<std::string>& args);

}  // namespace kf::ops
