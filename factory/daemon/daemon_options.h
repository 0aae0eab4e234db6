// What the daemon core needs to run (factory/daemon/): where it listens and
// keeps things, admission limits, pool sizes, and the hooks through which
// the operations pieces (factory/daemon/ops/: JSON-lines logger, Prometheus
// metrics) plug in. `kata-factory daemon` fills it from its flags; the TOML
// config (ops::DaemonConfig) maps onto it field by field.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <grpcpp/support/status_code_enum.h>

#include "factory/jail/cgroup.h"
#include "factory/jail/sandbox_uids.h"
#include "factory/jail/jail_options.h"

namespace kf::daemon {

enum class LogSeverity { kDebug, kInfo, kWarn, kError };

// Everything is optional: an unset hook is skipped (the log falls back to
// plain lines on stderr). Hooks are called from any daemon thread, and must
// be thread-safe and quick.
struct DaemonHooks {
  // One log line; `sandbox` (a VM id) and `tmpl` may be empty.
  std::function<void(LogSeverity, const std::string& msg, const std::string& sandbox,
                     const std::string& tmpl)>
      log;
  // A GetVM that succeeded: seconds from request to reply.
  std::function<void(const std::string& tmpl, double seconds, bool pool_hit)> get_vm;
  // Every GetVM call, whatever its outcome (called by the gRPC service after
  // the core answered): the status code and its message ("" for OK).
  std::function<void(const std::string& tmpl, grpc::StatusCode code, const std::string& message)>
      get_vm_result;
  // A clone that answered its first Ping: seconds from zygote request.
  std::function<void(const std::string& tmpl, double seconds)> clone;
};

struct PoolOptions {
  uint32_t size = 0;               // warm VMs kept ready; 0: clone on demand only
  double refill_per_second = 0;    // cap on pool clones per second; 0: no cap
  bool mergeable = true;           // MADV_MERGEABLE on clone memory (KSM)
};

// A template the daemon creates at start (the config's `guest`).
struct StartupTemplate {
  std::string guest;     // "bare" or "linux"
  uint32_t mem_mib = 0;  // 0: the kind's default (CreateTemplate's)
};

struct DaemonOptions {
  std::string socket = "/run/kata-factory/factory.sock";  // gRPC, mode 0600
  std::string run_dir = "/run/kata-factory";    // RUN/vms/<id>/{agent,console}.sock, locks
  std::string state_dir = "/var/lib/kata-factory";  // STATE/templates/<name>/
  std::string tcp_listen;                       // "HOST:PORT" to also serve TCP; "" = off
  // The kata-factory binary that runs zygotes (`EXE zygote ...`). The daemon
  // binary itself by default; tests that host the daemon in-process point
  // it at build/kata-factory.
  std::string zygote_exe = "/proc/self/exe";
  // Linux templates made by CreateTemplate: vmlinuz and initramfs.cpio.gz
  // here unless the request names them.
  std::string guest_dir;

  // Admission: no GetVM miss or pool refill past these. nullopt: no cap
  // (note: 0 is a cap of zero VMs, which refuses every clone).
  std::optional<uint64_t> max_live_vms = 1024;
  uint64_t mem_floor_bytes = uint64_t{1} << 30;  // on MemAvailable; 0 = off

  PoolOptions default_pool;                      // templates with no entry below
  std::map<std::string, PoolOptions> pools;      // by template name
  // Templates that live outside STATE/templates (the config's `path`).
  std::map<std::string, std::string> external_templates;
  // Templates made by CreateTemplate at start, before serving, unless one of
  // that name exists (kept as it is). Start() fails if one cannot be made.
  std::map<std::string, StartupTemplate> startup_templates;

  uint32_t default_lease_seconds = 0;  // GetVM without lease_seconds; 0 = no expiry
  int release_grace_ms = 2000;         // a released VMM gets this long before SIGKILL
  int clone_timeout_ms = 30000;        // zygote request -> agent answers
  int refill_backoff_ms = 1000;        // first wait after a failed pool clone (doubles, max 30 s)

  // The sandbox jail (factory/jail/): seccomp and capabilities in every
  // sandbox; a cgroup v2 directory per sandbox where the host allows it.
  JailOptions jail;
  CgroupMode cgroup = CgroupMode::kAuto;
  SandboxUidSpec sandbox_uids;  // auto: a uid per sandbox when root
  uint64_t sandbox_memory_headroom_bytes = uint64_t{64} << 20;  // memory.max = guest + this
  uint64_t sandbox_pids_max = 64;                                // 0: no limit
  // Before any VM exists: set kvm.nx_huge_pages to never where that changes
  // no protection (vmm-glue/nx_huge_pages.h); the daemon command does it.
  bool kvm_nx_huge_pages_never = false;

  DaemonHooks hooks;
};

}  // namespace kf::daemon
