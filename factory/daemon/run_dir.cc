#include "factory/daemon/run_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kf::daemon {

namespace fs = std::filesystem;

Status MakeDirs(const std::string& path) {
  if (path.empty()) return Status::Ok();
  std::string sofar;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    sofar = path.substr(0, pos);
    if (sofar.empty()) continue;
    if (::mkdir(sofar.c_str(), 0700) < 0 && errno != EEXIST) return Error::Sys("mkdir " + sofar);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return Error::Sys("stat " + path);
  if (!S_ISDIR(st.st_mode)) return Error(path + " is not a directory");
  return Status::Ok();
}

Result<UniqueFd> LockFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::Sys("open " + path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno != EWOULDBLOCK) return Error::Sys("flock " + path);
    char buf[32] = {};
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Error(path + " is locked by another daemon (pid " + holder + ")");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) < 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0)
    return Error::Sys("write " + path);
  return fd;
}

bool SocketAnswers(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

Result<UniqueFd> ClaimSocket(const std::string& socket_path) {
  if (socket_path.size() >= sizeof(sockaddr_un::sun_path))
    return Error("socket path " + socket_path + " is longer than " +
                 std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  auto lock = LockFile(socket_path + ".lock");
  if (!lock.ok()) return lock.error().Context("socket " + socket_path + " is taken");
  if (SocketAnswers(socket_path))
    return Error("another daemon answers on " + socket_path + " (refusing to start)");
  struct stat st;
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error(socket_path + " exists and is not a socket");
    if (::unlink(socket_path.c_str()) < 0) return Error::Sys("remove stale " + socket_path);
  }
  return std::move(*lock);
}

namespace {

// Empty when the process is gone. read(2), not a stream: a process that
// exits between the /proc listing and the read makes read() fail (ESRCH),
// which libstdc++'s filebuf turns into an exception that istreambuf_iterator
// lets through (it ended a daemon's start once, in the nested tier).
std::vector<std::string> ReadCmdline(pid_t pid) {
  std::string all;
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
    ::close(fd);
    if (n < 0) all.clear();
  }
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == '\0') args.push_back(all.substr(start, i - start)), start = i + 1;
  return args;
}

}  // namespace

std::vector<pid_t> FindOurProcesses(const std::string& run_dir) {
  std::vector<pid_t> pids;
  std::error_code ec;
  const pid_t self = ::getpid();
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == self) continue;
    auto args = ReadCmdline(pid);
    if (args.size() < 2 || args[1] != "zygote") continue;
    for (size_t i = 2; i + 1 < args.size(); ++i)
      if (args[i] == "--run-dir" && args[i + 1] == run_dir) {
        pids.push_back(pid);
        break;
      }
  }
  return pids;
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(paren + 1));
  ProcStat st;
  if (!(rest >> st.state >> st.ppid)) return std::nullopt;
  return st;
}

std::vector<std::string> CleanLeftovers(const std::string& run_dir) {
  std::vector<std::string> done;
  auto pids = FindOurProcesses(run_dir);
  for (pid_t pid : pids)
    if (::kill(pid, SIGKILL) == 0) done.push_back("killed leftover process " + std::to_string(pid));
  for (int i = 0; i < 100 && !pids.empty(); ++i) {
    std::erase_if(pids, [](pid_t pid) {
      // Gone, or a zombie waiting for a parent that is not us.
      const auto stat = ReadProcStat(pid);
      return !stat || stat->state == 'Z';
    });
    if (!pids.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::error_code ec;
  const std::string vms = run_dir + "/vms";
  for (const auto& e : fs::directory_iterator(vms, ec)) {
    fs::remove_all(e.path(), ec);
    done.push_back("removed leftover " + e.path().string());
  }
  return done;
}

}  // namespace kf::daemon
