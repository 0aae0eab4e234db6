// The kata-factory verbs. Each returns the process exit code: 0 success,
// 1 the operation failed (one-line reason on stderr), 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace kf::cli {

using Argv = std::vector<std::string>;

int TemplateCommand(const Argv& args);
int CloneCommand(const Argv& args);
int DemoCommand(const Argv& args);
int HostCommand(const Argv& args);

// Prints "kata-factory: <message>" to stderr and returns `code`.
int Fail(const std::string& message, int code = 1);

inline constexpr int kExitUsage = 2;

}  // namespace kf::cli
