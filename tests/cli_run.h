// The kata-factory binary under test, and running it as a user would.
#pragma once

#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <cstdlib>
#include <string>

namespace kf::testing {

// The build's binary (KF_BINARY, set per test target), or $KF_BINARY where
// the build tree is not there (the nested tier copies the binary elsewhere).
inline std::string KfBinary() {
  const char* env = std::getenv("KF_BINARY");
  return env != nullptr && *env != '\0' ? env : KF_BINARY;
}

struct CliRun {
  int status;
  std::string output;
};

// Runs it with `args` through the shell, stdin from /dev/null, stderr merged
// into stdout: what a user at a terminal sees, and the exit status (-1 when
// it did not exit normally).
inline CliRun Cli(const std::string& args) {
  const std::string cmd = KfBinary() + " " + args + " 2>&1 </dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 512> buf;
  while (p && std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int st = p ? ::pclose(p) : -1;
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace kf::testing
