// Log levels, shared by the logger and the config ("log_level").
#pragma once

#include <string_view>

#include "vmm-glue/result.h"

namespace kf::ops {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn" (or "warning"), "error"; case-insensitive.
Result<LogLevel> ParseLogLevel(std::string_view text);
// The name written in log lines: "debug", "info", "warn", "error".
const char* LogLevelName(LogLevel level);

}  // namespace kf::ops
