// The daemon's configuration: what `kata-factory daemon` reads from its TOML
// file (config_file.h), with `--key value` flags over it (config_flags.h).
// Every key, its default and its meaning: docs/config.example.toml.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "factory/daemon/ops/log_level.h"
#include "vmm-glue/result.h"

namespace kf::ops {

// [templates.NAME]: one template and its warm pool. Give either `path` (a
// template directory made by `kata-factory template create`) or `guest`
// (the daemon creates the template at start-up, under state_dir).
struct TemplateConfig {
  std::string path;
  std::string guest;             // "bare" or "linux"; empty when path is given
  uint64_t mem_mib = 0;          // with guest: 0 = the guest kind's default
  uint64_t pool_size = 0;        // warm clones kept ready; 0 = clone on demand only
  double refill_per_second = 0;  // pool refill rate cap; 0 = as fast as clones come
  bool mergeable = true;         // madvise(MADV_MERGEABLE) clone memory for KSM
  std::string where;             // "FILE:LINE" of its [templates.NAME] header, for errors
};

struct DaemonConfig {
  std::string socket = "/run/kata-factory/factory.sock";  // gRPC Unix socket, mode 0600
  std::string run_dir = "/run/kata-factory";              // per-sandbox sockets: RUN_DIR/<id>/
  std::string state_dir = "/var/lib/kata-factory";        // templates the daemon creates
  std::string tcp_listen;                         // gRPC over TCP too: "HOST:PORT"; "" = off
  std::string metrics_listen = "127.0.0.1:9464";  // GET /metrics; "" = off
  LogLevel log_level = LogLevel::kInfo;
  std::string log_file;                             // "" = stderr (journald under systemd)
  uint64_t max_live_vms = 1024;                     // admission cap; 0 = no cap
  uint64_t mem_floor_bytes = uint64_t{1} << 30;     // refuse GetVM below this MemAvailable; 0 = off
  uint64_t lease_seconds = 0;  // lease of a GetVM that asks for none; 0 = until ReleaseVM
  std::string guest_dir;       // vmlinuz + initramfs.cpio.gz for linux templates; "" = $KF_GUEST_DIR
  // The pool of every template without a [templates.NAME] section (found in
  // state_dir, or made later by CreateTemplate). A section's own pool keys
  // have their own defaults (below), not these.
  uint64_t pool_size = 0;
  double refill_per_second = 0;
  bool mergeable = true;
  // The sandbox jail (factory/jail/, docs/RELIABILITY.md).
  std::string seccomp = "enforce";   // enforce, log or off
  std::string cgroup = "auto";       // auto, off or required
  std::string sandbox_uids = "auto";  // auto, off or FIRST:COUNT
  uint64_t sandbox_memory_headroom_bytes = uint64_t{64} << 20;  // memory.max = guest + this
  uint64_t sandbox_pids_max = 64;    // pids.max; 0 = no limit
  bool drop_capabilities = true;
  // kvm.nx_huge_pages: keep, or never (set at start where that changes no
  // protection; vmm-glue/nx_huge_pages.h).
  std::string kvm_nx_huge_pages = "keep";
  std::map<std::string, TemplateConfig> templates;  // by name, sorted
  std::string source;  // the file it was read from; "" = defaults and flags only
};

// Whole-config checks that no single key can make: addresses parse, each
// template has exactly one of path/guest, pools fit under max_live_vms.
// Errors name the key and, for templates, where the section is.
Status ValidateDaemonConfig(const DaemonConfig& config);

// Template names become labels and directory names: [A-Za-z0-9_.-]{1,64},
// not "." or "..".
Status ValidateTemplateName(const std::string& name);

}  // namespace kf::ops
