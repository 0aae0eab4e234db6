#include "factory/jail/cgroup.h"

#include <fcntl.h>
#include <linux/sched.h>  // struct clone_args, CLONE_INTO_CGROUP
#include <signal.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kf {

namespace {

Status WriteFileAt(int dirfd, const char* name, const std::string& value) {
  UniqueFd fd(::openat(dirfd, name, O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::Sys(std::string("open ") + name);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return Error::Sys(std::string("write '") + value + "' to " + name);
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& value) {
  return WriteFileAt(AT_FDCWD, path.c_str(), value);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) return Error::Sys("mkdir " + path);
  return Status::Ok();
}

bool ControllersAvailable(const std::string& dir, std::string* missing) {
  const std::string have = ReadFile(dir + "/cgroup.controllers");
  for (const char* c : {"memory", "pids"}) {
    if (have.find(c) == std::string::npos) {
      *missing = c;
      return false;
    }
  }
  return true;
}

// Enables the memory and pids controllers for `dir`'s children.
Status DelegateControllers(const std::string& dir) {
  std::string missing;
  if (!ControllersAvailable(dir, &missing))
    return Error("the " + missing + " controller is not available in " + dir);
  return WriteFile(dir + "/cgroup.subtree_control", "+memory +pids");
}

std::string LimitValue(uint64_t v) { return v == 0 ? "max" : std::to_string(v); }

Result<SandboxCgroups> Disabled(CgroupMode mode, const Error& why) {
  if (mode == CgroupMode::kRequired) return why.Context("cgroups required (--cgroup required)");
  return SandboxCgroups();
}

}  // namespace

std::optional<CgroupMode> ParseCgroupMode(std::string_view name) {
  if (name == "auto") return CgroupMode::kAuto;
  if (name == "off") return CgroupMode::kOff;
  if (name == "required") return CgroupMode::kRequired;
  return std::nullopt;
}

const char* CgroupModeName(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kAuto: return "auto";
    case CgroupMode::kOff: return "off";
    case CgroupMode::kRequired: return "required";
  }
  return "?";
}

Result<std::string> OwnCgroupDir() {
  // The cgroup2 mount point from mountinfo (field 5; fstype after " - ").
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line, mount_point;
  while (std::getline(mounts, line)) {
    const size_t sep = line.find(" - ");
    if (sep == std::string::npos || line.compare(sep + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, sep));
    std::string f;
    for (int i = 0; i < 5 && fields >> f; ++i) {
      if (i == 4) mount_point = f;
    }
    break;
  }
  if (mount_point.empty()) return Error("no cgroup2 file system is mounted");
  std::ifstream self("/proc/self/cgroup");
  while (std::getline(self, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    std::string rel = line.substr(3);
    if (rel == "/") rel.clear();
    return mount_point + rel;
  }
  return Error("/proc/self/cgroup has no cgroup v2 entry (0::)");
}

namespace {

// CG for a process in `own`: a daemon restarted in its own kf-daemon leaf
// keeps the layout.
std::string BaseFor(const std::string& own) {
  if (std::filesystem::path(own).filename() == "kf-daemon")
    return std::filesystem::path(own).parent_path().string();
  return own;
}

// The root cgroup (no cgroup.type file) may hold processes and hand
// controllers down; any other must be emptied first.
bool IsRootCgroup(const std::string& dir) {
  return ::access((dir + "/cgroup.type").c_str(), F_OK) != 0;
}

}  // namespace

CgroupProbe ProbeSandboxCgroups() {
  CgroupProbe p;
  auto own = OwnCgroupDir();
  if (!own.ok()) {
    p.reason = own.error().message();
    return p;
  }
  p.base = BaseFor(*own);
  std::string missing;
  if (::access((p.base + "/cgroup.procs").c_str(), W_OK) != 0) {
    p.reason = p.base + "/cgroup.procs is not writable";
  } else if (!ControllersAvailable(p.base, &missing)) {
    p.reason = "the " + missing + " controller is not available in " + p.base;
  } else if (!IsRootCgroup(p.base)) {
    // Setup moves the daemon to kf-daemon; anyone else left in CG would
    // keep it from handing controllers down.
    std::istringstream procs(ReadFile(p.base + "/cgroup.procs"));
    pid_t pid;
    while (procs >> pid)
      if (pid != ::getpid()) {
        p.reason = p.base + " holds other processes (pid " + std::to_string(pid) +
                   "): run the daemon in a cgroup of its own (systemd: Delegate=yes)";
        break;
      }
  }
  p.usable = p.reason.empty();
  return p;
}

Result<SandboxCgroups> SandboxCgroups::Setup(CgroupMode mode) {
  SandboxCgroups c;
  if (mode == CgroupMode::kOff) {
    c.description_ = "off (--cgroup off)";
    return c;
  }
  auto own = OwnCgroupDir();
  if (!own.ok()) {
    ASSIGN_OR_RETURN(c, Disabled(mode, own.error()));
    c.description_ = own.error().message();
    return c;
  }
  const std::string base = BaseFor(*own);
  auto attempt = [&]() -> Status {
    if (::access((base + "/cgroup.procs").c_str(), W_OK) != 0)
      return Error::Sys(base + "/cgroup.procs is not writable");
    if (!IsRootCgroup(base) && base == *own) {
      // Move ourselves (all threads) out of the way of the controllers.
      RETURN_IF_ERROR(MakeDir(base + "/kf-daemon"));
      RETURN_IF_ERROR(WriteFile(base + "/kf-daemon/cgroup.procs", "0"));
    }
    RETURN_IF_ERROR(DelegateControllers(base));
    RETURN_IF_ERROR(MakeDir(base + "/kf-sandboxes"));
    return DelegateControllers(base + "/kf-sandboxes");
  };
  if (Status s = attempt(); !s.ok()) {
    ASSIGN_OR_RETURN(c, Disabled(mode, s.error()));
    c.description_ = "cgroup v2 at " + base + " cannot be used: " + s.error().message();
    return c;
  }
  c.parent_ = base + "/kf-sandboxes";
  c.description_ = c.parent_;
  return c;
}

Result<UniqueFd> SandboxCgroups::Create(const std::string& id, const CgroupLimits& limits) const {
  if (!enabled()) return Error("sandbox cgroups are off: " + description_);
  const std::string dir = DirFor(id);
  if (::mkdir(dir.c_str(), 0755) < 0) return Error::Sys("mkdir " + dir);
  UniqueFd fd(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  Status s = fd.valid() ? Status::Ok() : Status(Error::Sys("open " + dir));
  if (s.ok()) s = WriteFileAt(fd.get(), "memory.max", LimitValue(limits.memory_max_bytes));
  // The guest's memory is what memory.max bounds; swapping it out would
  // only make a runaway clone slow instead of stopping it.
  if (s.ok() && ::faccessat(fd.get(), "memory.swap.max", W_OK, 0) == 0)
    s = WriteFileAt(fd.get(), "memory.swap.max", "0");
  if (s.ok()) s = WriteFileAt(fd.get(), "pids.max", LimitValue(limits.pids_max));
  if (!s.ok()) {
    ::rmdir(dir.c_str());
    return s.error().Context("sandbox cgroup " + dir);
  }
  return fd;
}

void SandboxCgroups::Remove(const std::string& id) const {
  if (!enabled()) return;
  const std::string dir = DirFor(id);
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
  if (errno != EBUSY) return;
  // Still populated (a sandbox that outlived its release): cgroup.kill
  // (Linux 5.14+) ends every process in it, then wait briefly for them.
  (void)WriteFile(dir + "/cgroup.kill", "1");
  for (int i = 0; i < 100; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno != EBUSY) return;
    ::usleep(10000);
  }
}

std::vector<std::string> SandboxCgroups::RemoveEmpty() const {
  std::vector<std::string> removed;
  if (!enabled()) return removed;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent_, ec)) {
    if (!e.is_directory(ec)) continue;
    if (::rmdir(e.path().c_str()) == 0)
      removed.push_back("removed leftover sandbox cgroup " + e.path().string());
  }
  return removed;
}

Status EnterCgroup(int dirfd) { return WriteFileAt(dirfd, "cgroup.procs", "0"); }

pid_t ForkIntoCgroup(int dirfd, bool* born_in_cgroup) {
  clone_args args{};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(dirfd);
  const long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0 || errno != ENOSYS) {
    *born_in_cgroup = pid >= 0;
    return static_cast<pid_t>(pid);
  }
  *born_in_cgroup = false;
  return ::fork();
}

}  // namespace kf
