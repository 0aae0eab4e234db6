#include "bench/peers/qemu_templating.h"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "bench/peers/qmp_client.h"
#include "factory/cli/json.h"
#include "vmm-glue/unique_fd.h"

namespace kf::peers {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kAgentVsockPort = 1024;  // docs/AGENT_PROTOCOL.md
// scripts/build-guest's CMDLINE, for a guest dir without manifest.json.
constexpr char kBuildGuestCmdline[] =
    "console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nomux i8042.nopnp "
    "i8042.dumbkbd quiet rdinit=/init";

uint64_t NsSince(Clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}
int MsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::Sys("open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Tail(const std::string& path, size_t bytes) {
  auto text = ReadFile(path);
  if (!text.ok()) return "";
  const std::string& t = *text;
  return t.size() > bytes ? t.substr(t.size() - bytes) : t;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A QEMU we started: SIGKILLed and reaped when this goes away, whatever
// happened before.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Kill(); }

  static Result<std::unique_ptr<Child>> Spawn(const std::vector<std::string>& argv,
                                              const std::string& log_path) {
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!log.valid()) return Error::Sys("open " + log_path);
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null.valid()) return Error::Sys("open /dev/null");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return Error::Sys("fork");
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(null.get(), 0);
      ::dup2(log.get(), 1);
      ::dup2(log.get(), 2);
      ::execvp(cargv[0], cargv.data());
      const char msg[] = "exec of QEMU failed\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    auto c = std::make_unique<Child>();
    c->pid_ = pid;
    c->log_ = log_path;
    return c;
  }

  int pid() const { return pid_; }
  const std::string& log() const { return log_; }

  // Whether it has exited (reaped then); *status gets its wait status.
  bool Exited(int* status = nullptr) {
    if (pid_ < 0) return true;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      exit_status_ = st;
      if (status != nullptr) *status = st;
      return true;
    }
    return false;
  }
  // Waits up to `timeout_ms` for it to exit by itself.
  bool WaitExit(int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!Exited()) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }
  void Kill() {
    if (pid_ < 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  std::string Describe() {
    std::string why;
    int st = exit_status_;
    if (pid_ >= 0 && !Exited(&st)) return "still running";
    if (WIFEXITED(st))
      why = "exited with status " + std::to_string(WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
      why = "killed by signal " + std::to_string(WTERMSIG(st));
    return why;
  }

 private:
  int pid_ = -1;
  int exit_status_ = 0;
  std::string log_;
};

// The run's directory: removed with everything in it when this goes away.
class WorkDir {
 public:
  ~WorkDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  Status Make(const std::string& parent) {
    std::string templ = parent + "/kf-qemu-peer-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return Error::Sys("mkdtemp " + templ);
    path_ = templ;
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string DefaultWorkParent() {
  struct stat st;
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0)
    return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

Result<uint64_t> MemAvailableNow() {
  ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/meminfo"));
  return ParseMemAvailable(text);
}

Status ReadFull(int fd, uint8_t* buf, size_t n, Clock::time_point deadline) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, MsLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error::Sys("poll (vsock)");
    if (r == 0) return Error("timed out reading the agent's Ready frame");
    const ssize_t k = ::read(fd, buf + got, n - got);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return Error::Sys("read (vsock)");
    if (k == 0) return Error("the agent closed the connection before its Ready frame");
    got += static_cast<size_t>(k);
  }
  return Status::Ok();
}

// Connects to the agent at (cid, 1024), retrying until it accepts, and reads
// its Ready frame.
Status WaitAgentReady(uint32_t cid, Clock::time_point deadline, Child* qemu) {
  std::string last = "no attempt";
  while (Clock::now() < deadline) {
    if (qemu->Exited()) return Error("QEMU " + qemu->Describe() + " while waiting for the agent");
    UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::Sys("socket(AF_VSOCK)");
    sockaddr_vm sa{};
    sa.svm_family = AF_VSOCK;
    sa.svm_cid = cid;
    sa.svm_port = kAgentVsockPort;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      uint8_t header[10];
      RETURN_IF_ERROR(ReadFull(fd.get(), header, sizeof header, deadline));
      const uint32_t len = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                           (uint32_t{header[2]} << 8) | header[3];
      if (len > 65536) return Error("agent frame of " + std::to_string(len) + " bytes");
      std::string payload(len, '\0');
      RETURN_IF_ERROR(
          ReadFull(fd.get(), reinterpret_cast<uint8_t*>(payload.data()), len, deadline));
      return CheckReadyFrame(header, payload);
    }
    last = std::strerror(errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Error("the agent at vsock CID " + std::to_string(cid) + " port 1024 did not answer (" +
               last + ")");
}

// Waits for the agent's "listening on ..." line on the serial console.
Result<std::string> WaitSerialReady(const std::string& serial_log, Clock::time_point deadline,
                                    Child* qemu) {
  while (true) {
    auto text = ReadFile(serial_log);
    if (text.ok()) {
      std::istringstream lines(*text);
      std::string line;
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        // "kf-agent: listening on vsock port 1024, guest CID N, ..." with a
        // vsock device; "... no vsock device yet (guest CID unknown);
        // listening on port 1024 anyway" without (agent/linux/main.c).
        if (line.find("kf-agent:") != std::string::npos &&
            (line.find("listening on vsock port") != std::string::npos ||
             line.find("listening on port") != std::string::npos))
          return line;
        if (line.find("Kernel panic") != std::string::npos ||
            line.find("kf-agent: fatal") != std::string::npos)
          return Error("the guest failed: " + line);
      }
    }
    if (qemu->Exited())
      return Error("QEMU " + qemu->Describe() + " before the agent was up; its log: " +
                   Tail(qemu->log(), 600) + " serial: " + Tail(serial_log, 600));
    if (Clock::now() >= deadline)
      return Error("the agent did not come up on the serial console in time; serial tail: " +
                   Tail(serial_log, 600));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::string> MigrationStatus(QmpClient& qmp) {
  ASSIGN_OR_RETURN(JsonValue r, qmp.Execute("query-migrate"));
  return r.GetString("status");
}

// Polls query-migrate until "completed" (waking early on any event).
Status WaitMigration(QmpClient& qmp, Clock::time_point deadline, const std::string& what) {
  while (true) {
    ASSIGN_OR_RETURN(std::string status, MigrationStatus(qmp));
    if (status == "completed") return Status::Ok();
    if (status == "failed" || status == "cancelled") return Error(what + ": migration " + status);
    if (Clock::now() >= deadline)
      return Error(what + ": migration still '" + status + "' at the deadline");
    RETURN_IF_ERROR(qmp.WaitEvent(1));
    qmp.TakeEvents();
  }
}

// Connects to a starting QEMU's QMP socket, giving up early when it exits.
Result<QmpClient> ConnectQmp(const std::string& path, Clock::time_point deadline, Child* qemu,
                             const std::string& what) {
  while (true) {
    auto c = QmpClient::Connect(path, std::min(MsLeft(deadline), 50), MsLeft(deadline));
    if (c.ok()) return c;
    if (qemu->Exited() || Clock::now() >= deadline)
      return c.error().Context(what + " (QEMU " + qemu->Describe() +
                               ", its log: " + Tail(qemu->log(), 600) + ")");
  }
}

}  // namespace

const char* ReadinessName(Readiness r) {
  return r == Readiness::kAgentReady ? "agent_ready_vsock" : "qmp_running";
}

double PeerReport::MemAvailableDeltaPerClone() const {
  if (clones.empty()) return 0;
  return static_cast<double>(mem_available_before - mem_available_after) /
         static_cast<double>(clones.size());
}
double PeerReport::MeanPss() const {
  if (clones.empty()) return 0;
  double s = 0;
  for (const auto& c : clones) s += static_cast<double>(c.memory.pss);
  return s / static_cast<double>(clones.size());
}
double PeerReport::MeanPrivateDirty() const {
  if (clones.empty()) return 0;
  double s = 0;
  for (const auto& c : clones) s += static_cast<double>(c.memory.private_dirty);
  return s / static_cast<double>(clones.size());
}
double PeerReport::MeanRss() const {
  if (clones.empty()) return 0;
  double s = 0;
  for (const auto& c : clones) s += static_cast<double>(c.memory.rss);
  return s / static_cast<double>(clones.size());
}

std::string QemuCmdline(const std::string& base) {
  std::istringstream in(base);
  std::string tok, out;
  bool console = false;
  while (in >> tok) {
    if (tok == "pci=off") continue;
    if (tok.rfind("console=", 0) == 0) {
      if (console) continue;
      tok = "console=ttyS0";
      console = true;
    }
    out += (out.empty() ? "" : " ") + tok;
  }
  if (!console) out = "console=ttyS0" + std::string(out.empty() ? "" : " ") + out;
  return out;
}

bool GuestManifest::HasModule(const std::string& m) const {
  for (const auto& x : modules)
    if (x == m) return true;
  return false;
}

Result<GuestManifest> ParseGuestManifest(const std::string& json_text) {
  ASSIGN_OR_RETURN(JsonValue v, ParseJson(json_text));
  if (!v.is_object()) return Error("manifest.json is not an object");
  GuestManifest m;
  m.cmdline = v.GetString("cmdline");
  if (const JsonValue* mods = v.Find("modules"); mods != nullptr && mods->is_array())
    for (const auto& x : mods->items())
      if (x.is_string()) m.modules.push_back(x.str());
  return m;
}

std::vector<std::string> BuildQemuArgs(const QemuPeerOptions& opts, const std::string& cmdline,
                                       const QemuLaunch& launch) {
  const bool microvm = opts.machine == "microvm";
  const std::string mem = std::to_string(opts.mem_mib) + "M";
  std::vector<std::string> a = {opts.qemu_binary};
  a.insert(a.end(), {"-name", launch.is_template ? "kf-peer-template" : "kf-peer-clone"});
  std::string machine = microvm ? "microvm,acpi=on" : "q35";
  machine += ",accel=" + opts.accel + ",memory-backend=mem0";
  a.insert(a.end(), {"-machine", machine});
  a.insert(a.end(), {"-cpu", opts.accel == "kvm" ? "host" : "max"});
  a.insert(a.end(), {"-smp", std::to_string(opts.vcpus), "-m", mem});
  // Kata's knobs: FileBackedMem, and MemShared only for the template
  // (BootToBeTemplate); a clone maps the same file privately.
  a.insert(a.end(), {"-object", "memory-backend-file,id=mem0,size=" + mem +
                                    ",mem-path=" + launch.memory_file +
                                    (launch.is_template ? ",share=on" : ",share=off")});
  a.insert(a.end(), {"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"});
  a.insert(a.end(), {"-kernel", opts.kernel, "-initrd", opts.initrd, "-append", cmdline});
  a.insert(a.end(), {"-serial", "file:" + launch.serial_log});
  a.insert(a.end(), {"-qmp", "unix:" + launch.qmp_socket + ",server=on,wait=off"});
  if (launch.vsock_cid != 0)
    a.insert(a.end(), {"-device", std::string(microvm ? "vhost-vsock-device" : "vhost-vsock-pci") +
                                      ",id=vsock0,guest-cid=" + std::to_string(launch.vsock_cid)});
  if (!launch.is_template) a.insert(a.end(), {"-incoming", "defer"});
  return a;
}

Result<ProcessMemory> ParseSmapsRollup(const std::string& text) {
  ProcessMemory m;
  bool any = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    unsigned long long kb = 0;
    char unit[8] = {0};
    if (std::sscanf(line.c_str() + colon + 1, " %llu %7s", &kb, unit) != 2 ||
        std::strcmp(unit, "kB") != 0)
      continue;
    const uint64_t bytes = kb * 1024;
    uint64_t* dst = nullptr;
    if (key == "Rss")
      dst = &m.rss;
    else if (key == "Pss")
      dst = &m.pss;
    else if (key == "Pss_Anon")
      dst = &m.pss_anon;
    else if (key == "Pss_File")
      dst = &m.pss_file;
    else if (key == "Pss_Shmem")
      dst = &m.pss_shmem;
    else if (key == "Private_Clean")
      dst = &m.private_clean;
    else if (key == "Private_Dirty")
      dst = &m.private_dirty;
    else if (key == "Shared_Clean")
      dst = &m.shared_clean;
    else if (key == "Shared_Dirty")
      dst = &m.shared_dirty;
    if (dst != nullptr) {
      *dst = bytes;
      any = any || key == "Pss";
    }
  }
  if (!any) return Error("smaps_rollup has no Pss line");
  return m;
}

Result<uint64_t> ParseMemAvailable(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) return kb * 1024;
  }
  return Error("/proc/meminfo has no MemAvailable");
}

Status CheckReadyFrame(const uint8_t* h, const std::string& payload) {
  const uint32_t len =
      (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | h[3];
  const uint32_t stream =
      (uint32_t{h[4]} << 24) | (uint32_t{h[5]} << 16) | (uint32_t{h[6]} << 8) | h[7];
  if (len != payload.size()) return Error("agent frame: length does not match its payload");
  if (stream != 0) return Error("agent's first frame is on stream " + std::to_string(stream));
  if (h[8] != 2)
    return Error("agent's first frame is not a response (type " + std::to_string(h[8]) + ")");
  // Response.ready = 14, length-delimited: tag (14 << 3) | 2.
  if (payload.empty() || static_cast<uint8_t>(payload[0]) != ((14u << 3) | 2u))
    return Error("agent's first frame is not Ready");
  return Status::Ok();
}

Result<PeerReport> MeasureQemuTemplating(const QemuPeerOptions& in) {
  QemuPeerOptions opts = in;
  auto log = [&](const std::string& s) {
    if (opts.log) opts.log(s);
  };
  if (opts.accel != "kvm" && opts.accel != "tcg")
    return Error("accel must be kvm or tcg, not '" + opts.accel + "'");
  if (opts.machine != "q35" && opts.machine != "microvm")
    return Error("machine must be q35 or microvm, not '" + opts.machine + "'");
  if (opts.clones == 0) return Error("clones must be at least 1");
  if (opts.mem_mib < 64) return Error("mem_mib must be at least 64");
  if (opts.kernel.empty()) opts.kernel = opts.guest_dir + "/vmlinuz";
  if (opts.initrd.empty()) opts.initrd = opts.guest_dir + "/initramfs.cpio.gz";
  for (const auto& f : {opts.kernel, opts.initrd})
    if (::access(f.c_str(), R_OK) != 0) return Error::Sys("guest image " + f);
  if (opts.accel == "kvm" && ::access("/dev/kvm", R_OK | W_OK) != 0)
    return Error::Sys("accel=kvm needs /dev/kvm");

  GuestManifest manifest;
  bool have_manifest = false;
  if (!opts.guest_dir.empty()) {
    auto text = ReadFile(opts.guest_dir + "/manifest.json");
    if (text.ok()) {
      ASSIGN_OR_RETURN(manifest, ParseGuestManifest(*text));
      have_manifest = true;
    }
  }

  PeerReport report;
  report.qemu_binary = opts.qemu_binary;
  report.accel = opts.accel;
  report.machine = opts.machine;
  report.mem_mib = opts.mem_mib;
  report.vcpus = opts.vcpus;
  report.cmdline = QemuCmdline(!opts.cmdline.empty()       ? opts.cmdline
                               : !manifest.cmdline.empty() ? manifest.cmdline
                                                           : std::string(kBuildGuestCmdline));

  // vsock: the host side and the guest's driver for the transport.
  bool use_vsock = false;
  {
    const bool host = [] {
      UniqueFd fd(::open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC));
      return fd.valid();
    }();
    const std::string transport = opts.machine == "microvm" ? "virtio_mmio" : "virtio_pci";
    // Without a manifest, assume scripts/build-guest's default module list.
    const bool guest = have_manifest ? manifest.HasModule(transport) : transport == "virtio_mmio";
    if (opts.vsock == VsockMode::kOff) {
      report.readiness_note = "vsock off (asked): readiness is QMP running";
    } else if (!host) {
      if (opts.vsock == VsockMode::kOn) return Error::Sys("vsock on needs /dev/vhost-vsock");
      report.readiness_note = "no usable /dev/vhost-vsock: readiness is QMP running";
    } else if (!guest && opts.vsock == VsockMode::kAuto) {
      report.readiness_note = "the guest's initramfs has no " + transport +
                              " (scripts/build-guest --module " + transport +
                              "): readiness is QMP running";
    } else {
      use_vsock = true;
      report.readiness_note = "agent Ready over AF_VSOCK (vhost-vsock, port 1024)";
    }
  }
  report.readiness = use_vsock ? Readiness::kAgentReady : Readiness::kQmpRunning;
  uint32_t cid_base = opts.cid_base;
  if (use_vsock && cid_base == 0)
    cid_base = 1000000 + static_cast<uint32_t>(::getpid() % 1000) * 4096;

  WorkDir dir;
  RETURN_IF_ERROR(dir.Make(opts.work_dir.empty() ? DefaultWorkParent() : opts.work_dir));
  report.work_dir = dir.path();
  const std::string memory_file = dir.path() + "/memory";
  const std::string state_file = dir.path() + "/state";

  // ---- the template
  {
    const std::string d = dir.path() + "/template";
    std::filesystem::create_directory(d);
    QemuLaunch launch{true, memory_file, d + "/qmp.sock", d + "/serial.log",
                      use_vsock ? cid_base : 0};
    log("template: booting (" + opts.accel + ", " + std::to_string(opts.mem_mib) + " MiB)");
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::milliseconds(opts.template_timeout_ms);
    ASSIGN_OR_RETURN(auto qemu,
                     Child::Spawn(BuildQemuArgs(opts, report.cmdline, launch), d + "/qemu.log"));
    ASSIGN_OR_RETURN(QmpClient qmp,
                     ConnectQmp(launch.qmp_socket, deadline, qemu.get(), "template"));
    report.qemu_version = qmp.qemu_version();
    if (use_vsock) {
      auto st = WaitAgentReady(launch.vsock_cid, deadline, qemu.get());
      if (!st.ok()) return st.error().Context("template");
      report.template_ready_by = "vsock Ready";
    } else {
      ASSIGN_OR_RETURN(std::string line, WaitSerialReady(launch.serial_log, deadline, qemu.get()));
      report.template_ready_by = "serial: " + line;
    }
    report.template_boot_ns = NsSince(t0);
    log("template: agent up after " + std::to_string(report.template_boot_ns / 1000000) + " ms");

    const auto s0 = Clock::now();
    const auto save_deadline = s0 + std::chrono::milliseconds(opts.clone_timeout_ms);
    RETURN_IF_ERROR(qmp.Execute("stop"));
    RETURN_IF_ERROR(
        qmp.Execute("migrate-set-capabilities",
                    R"({"capabilities":[{"capability":"x-ignore-shared","state":true}]})"));
    RETURN_IF_ERROR(qmp.Execute(
        "migrate", "{\"uri\":" + cli::Json::Quote("exec:cat > " + ShellQuote(state_file)) + "}"));
    RETURN_IF_ERROR(WaitMigration(qmp, save_deadline, "template save"));
    (void)qmp.Execute("quit", "", 2000);  // QEMU may close before it replies
    if (!qemu->WaitExit(std::max(MsLeft(save_deadline), 1000)))
      return Error("template QEMU did not exit after quit");
    report.template_save_ns = NsSince(s0);
    struct stat st;
    if (::stat(state_file.c_str(), &st) != 0) return Error::Sys("stat " + state_file);
    report.state_file_bytes = static_cast<uint64_t>(st.st_size);
    if (::stat(memory_file.c_str(), &st) != 0) return Error::Sys("stat " + memory_file);
    report.memory_file_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
    log("template: saved (" + std::to_string(report.state_file_bytes) + " bytes of device state, " +
        std::to_string(report.memory_file_bytes >> 20) + " MiB of RAM in the file)");
  }

  // ---- the clones, one at a time, all kept until memory is read
  ASSIGN_OR_RETURN(uint64_t avail_before, MemAvailableNow());
  report.mem_available_before = static_cast<int64_t>(avail_before);
  std::vector<std::unique_ptr<Child>> clones;
  for (uint32_t i = 0; i < opts.clones; ++i) {
    const std::string what = "clone " + std::to_string(i);
    const std::string d = dir.path() + "/clone-" + std::to_string(i);
    std::filesystem::create_directory(d);
    QemuLaunch launch{false, memory_file, d + "/qmp.sock", d + "/serial.log",
                      use_vsock ? cid_base + 1 + i : 0};
    const auto args = BuildQemuArgs(opts, report.cmdline, launch);
    QemuCloneSample s;
    s.cid = launch.vsock_cid;
    s.readiness = report.readiness;
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::milliseconds(opts.clone_timeout_ms);
    ASSIGN_OR_RETURN(auto qemu, Child::Spawn(args, d + "/qemu.log"));
    s.pid = qemu->pid();
    clones.push_back(std::move(qemu));
    Child* c = clones.back().get();
    ASSIGN_OR_RETURN(QmpClient qmp, ConnectQmp(launch.qmp_socket, deadline, c, what));
    s.qmp_ns = NsSince(t0);
    RETURN_IF_ERROR(
        qmp.Execute("migrate-set-capabilities",
                    R"({"capabilities":[{"capability":"x-ignore-shared","state":true}]})"));
    RETURN_IF_ERROR(qmp.Execute(
        "migrate-incoming", "{\"uri\":" + cli::Json::Quote("exec:cat " + ShellQuote(state_file)) + "}"));
    {
      auto st = WaitMigration(qmp, deadline, what);
      if (!st.ok()) return st.error().Context("(QEMU log: " + Tail(c->log(), 600) + ")");
    }
    s.migrated_ns = NsSince(t0);
    // The template was stopped when saved, so the clone arrives paused; Kata's
    // factory resumes it (vm.Resume) before handing it out.
    RETURN_IF_ERROR(qmp.Execute("cont"));
    while (true) {
      ASSIGN_OR_RETURN(JsonValue status, qmp.Execute("query-status"));
      if (status.GetString("status") == "running") break;
      if (Clock::now() >= deadline)
        return Error(what + ": status '" + status.GetString("status") + "' after cont");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    s.running_ns = NsSince(t0);
    if (use_vsock) {
      auto st = WaitAgentReady(launch.vsock_cid, deadline, c);
      if (!st.ok()) return st.error().Context(what);
    }
    s.ready_ns = NsSince(t0);
    log(what + ": ready after " + std::to_string(s.ready_ns / 1000) + " us (pid " +
        std::to_string(s.pid) + ")");
    report.clones.push_back(s);
  }

  // ---- memory, with every clone alive
  for (size_t i = 0; i < clones.size(); ++i) {
    if (clones[i]->Exited())
      return Error("clone " + std::to_string(i) + " QEMU " + clones[i]->Describe() +
                   " before memory was read");
    ASSIGN_OR_RETURN(std::string text,
                     ReadFile("/proc/" + std::to_string(clones[i]->pid()) + "/smaps_rollup"));
    ASSIGN_OR_RETURN(report.clones[i].memory, ParseSmapsRollup(text));
  }
  ASSIGN_OR_RETURN(uint64_t avail_after, MemAvailableNow());
  report.mem_available_after = static_cast<int64_t>(avail_after);
  clones.clear();  // SIGKILL + reap each; `dir` goes next
  return report;
}

std::string PeerReportJson(const PeerReport& r) {
  cli::Json j;
  j.BeginObject().Str("peer", "kata_qemu_templating").Str("qemu_binary", r.qemu_binary)
      .Str("qemu_version", r.qemu_version).Str("accel", r.accel).Str("machine", r.machine)
      .Str("cmdline", r.cmdline).Uint("mem_mib", r.mem_mib).Uint("vcpus", r.vcpus)
      .Str("readiness", ReadinessName(r.readiness)).Str("readiness_note", r.readiness_note);
  j.BeginObjectIn("template").Uint("boot_ns", r.template_boot_ns)
      .Str("ready_by", r.template_ready_by).Uint("save_ns", r.template_save_ns)
      .Uint("state_file_bytes", r.state_file_bytes).Uint("memory_file_bytes", r.memory_file_bytes)
      .EndObject();
  j.BeginArray("clones");
  for (const auto& c : r.clones) {
    j.BeginObject().Int("pid", c.pid).Uint("cid", c.cid).Uint("qmp_ns", c.qmp_ns)
        .Uint("migrated_ns", c.migrated_ns).Uint("running_ns", c.running_ns)
        .Uint("ready_ns", c.ready_ns).Str("readiness", ReadinessName(c.readiness))
        .Uint("rss_bytes", c.memory.rss).Uint("pss_bytes", c.memory.pss)
        .Uint("pss_anon_bytes", c.memory.pss_anon).Uint("pss_file_bytes", c.memory.pss_file)
        .Uint("pss_shmem_bytes", c.memory.pss_shmem)
        .Uint("private_dirty_bytes", c.memory.private_dirty).EndObject();
  }
  j.EndArray();
  j.Int("mem_available_before", r.mem_available_before)
      .Int("mem_available_after", r.mem_available_after)
      .Num("mem_available_delta_per_clone_bytes", r.MemAvailableDeltaPerClone())
      .Num("mean_pss_bytes", r.MeanPss()).Num("mean_private_dirty_bytes", r.MeanPrivateDirty())
      .Num("mean_rss_bytes", r.MeanRss());
  return j.EndObject().str();
}

}  // namespace kf::peers
