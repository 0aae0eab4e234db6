// Runs the kata-factory binary under test (KF_BINARY, set per test target)
// with `args` through the shell, stdin from /dev/null, stderr merged into
// stdout: what a user at a terminal sees, and the exit status (-1 when it
// did not exit normally).
#pragma once

#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <string>

namespace kf::testing {

struct CliRun {
  int status;
  std::string output;
};

inline CliRun Cli(const std::string& args) {
  const std::string cmd = std::string(KF_BINARY) + " " + args + " 2>&1 </dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 512> buf;
  while (p && std::fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int st = p ? ::pclose(p) : -1;
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace kf::testing
