// The Linux guest agent (KF_LINUX_AGENT) run as an ordinary host process
// that listens on a Unix socket instead of vsock: how the unit tests talk to
// the real agent without a VM (unit_linux_agent_test, unit_run_test). The
// same binary runs in the guest in the nested tier.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef KF_LINUX_AGENT
#error "KF_LINUX_AGENT (the path of kf-agent-linux) must be defined"
#endif

namespace kf_test {

class HostLinuxAgent {
 public:
  HostLinuxAgent() = default;
  HostLinuxAgent(const HostLinuxAgent&) = delete;
  HostLinuxAgent& operator=(const HostLinuxAgent&) = delete;
  ~HostLinuxAgent() { Kill(); }

  // Forks the agent with its socket (agent.sock), log (agent.log, its
  // stderr) and state directory (state/) in `dir`, then `args` (buffer
  // sizes, container rootfs, ...). The child gets a private UTS namespace
  // if this process may have one (root, or an unprivileged user namespace),
  // so its sethostname touches only it; otherwise the agent is told not to
  // call sethostname. Returns false if fork failed.
  bool Start(const std::string& dir, const std::vector<std::string>& args) {
    sock_ = dir + "/agent.sock";
    log_ = dir + "/agent.log";
    state_ = dir + "/state";
    pid_ = fork();
    if (pid_ != 0) return pid_ > 0;
    int logfd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd >= 0) dup2(logfd, STDERR_FILENO);
    std::vector<std::string> all = {KF_LINUX_AGENT, "--listen-unix", sock_, "--no-set-clock",
                                    "--state-dir", state_};
    all.insert(all.end(), args.begin(), args.end());
    if (unshare(CLONE_NEWUTS) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWUTS) != 0)
      all.push_back("--no-set-hostname");
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    std::perror("execv " KF_LINUX_AGENT);
    _exit(127);
  }

  // At the end of a test: the agent must still be running after all the
  // test did (no crash, no exit); then it is killed and reaped.
  void ExpectAliveAndStop() {
    if (pid_ <= 0) return;
    int status = 0;
    EXPECT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "the agent exited; log:\n" << Log();
    Kill();
  }

  std::string Log() const {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  const std::string& sock() const { return sock_; }
  const std::string& log_path() const { return log_; }
  const std::string& state_dir() const { return state_; }

 private:
  void Kill() {
    if (pid_ <= 0) return;
    int status = 0;
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  pid_t pid_ = -1;
  std::string sock_, log_, state_;
};

}  // namespace kf_test
