// The peer of issue #6 item 2: Kata Containers' VM templating with QEMU,
// measured on our own Linux guest (kernel + initramfs of scripts/build-guest).
//
// What Kata does (src/runtime/virtcontainers/factory/template/template.go and
// qemu.go), and what this does the same way:
//   template: QEMU boots the guest with its RAM in a file
//             (memory-backend-file,share=on), waits for the agent, then QMP
//             stop, migrate-set-capabilities x-ignore-shared, migrate to
//             "exec:cat > STATE" (device state only: shared RAM is skipped),
//             quit;
//   clone:    a new QEMU with the same command line but the RAM file mapped
//             privately (share=off, copy-on-write) and -incoming defer; QMP
//             migrate-set-capabilities x-ignore-shared, migrate-incoming
//             "exec:cat STATE", then cont (Kata's factory resumes the paused
//             VM it gets from the template).
// Per clone: time from spawning its QEMU to ready and its host memory.
// docs/BENCHMARKS.md ("Peers") describes the method and its sources.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::peers {

enum class VsockMode { kAuto, kOn, kOff };

struct QemuPeerOptions {
  // vmlinuz and initramfs.cpio.gz (scripts/build-guest); manifest.json when
  // present gives the command line and the module list.
  std::string guest_dir;
  std::string kernel;  // default guest_dir/vmlinuz
  std::string initrd;  // default guest_dir/initramfs.cpio.gz
  uint32_t mem_mib = 256;
  uint32_t vcpus = 1;
  uint32_t clones = 2;
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accel = "kvm";    // "kvm" or "tcg"
  std::string machine = "q35";  // "q35" (Kata's default on x86) or "microvm"
  // A fresh directory is made under it for the memory file, the device
  // state, sockets and logs, and removed at the end. Default: /dev/shm
  // (tmpfs, as Kata mounts one for its template) or /tmp.
  std::string work_dir;
  // The guest's command line; default: the manifest's (or build-guest's)
  // without pci=off and quiet kept, console=ttyS0.
  std::string cmdline;
  // vhost-vsock for the agent's Ready as readiness: kAuto uses it when
  // /dev/vhost-vsock can be opened and the guest can drive the device
  // (q35: virtio_pci in the initramfs; microvm: virtio_mmio).
  VsockMode vsock = VsockMode::kAuto;
  uint32_t cid_base = 0;             // template's guest CID; clones get the next ones. 0: chosen
  int template_timeout_ms = 180000;  // QEMU spawn to the agent up (TCG boots take tens of s)
  int clone_timeout_ms = 60000;      // per clone, spawn to ready
  // Progress lines ("template: booting ..."); may be empty.
  std::function<void(const std::string&)> log;
};

// How a clone's readiness was decided.
enum class Readiness {
  kQmpRunning,  // incoming migration completed, cont, query-status "running"
  kAgentReady,  // ... and then the agent's Ready frame over AF_VSOCK (CID, port 1024)
};
const char* ReadinessName(Readiness r);

// /proc/PID/smaps_rollup, bytes.
struct ProcessMemory {
  uint64_t rss = 0, pss = 0, pss_anon = 0, pss_file = 0, pss_shmem = 0;
  uint64_t private_clean = 0, private_dirty = 0, shared_clean = 0, shared_dirty = 0;
};

struct QemuCloneSample {
  int pid = -1;
  uint32_t cid = 0;          // 0 without vsock
  uint64_t qmp_ns = 0;       // spawn -> QMP greeting and capabilities
  uint64_t migrated_ns = 0;  // spawn -> incoming migration "completed"
  uint64_t running_ns = 0;   // spawn -> cont done and query-status "running"
  uint64_t ready_ns = 0;     // spawn -> ready (running_ns, or the agent's Ready)
  Readiness readiness = Readiness::kQmpRunning;
  ProcessMemory memory;  // read once every clone was ready
};

struct PeerReport {
  std::string qemu_version;  // from the QMP greeting
  std::string qemu_binary, accel, machine, cmdline;
  uint32_t mem_mib = 0, vcpus = 0;
  std::string work_dir;  // removed by now
  Readiness readiness = Readiness::kQmpRunning;
  std::string readiness_note;  // why vsock was or was not used
  // Template: spawn -> agent up (serial console line, or Ready over vsock).
  uint64_t template_boot_ns = 0;
  std::string template_ready_by;   // "serial: <the line>" or "vsock Ready"
  uint64_t template_save_ns = 0;   // stop, migrate (device state), quit
  uint64_t state_file_bytes = 0;   // the device state file
  uint64_t memory_file_bytes = 0;  // the RAM file's allocated bytes (shared by clones)
  std::vector<QemuCloneSample> clones;
  // MemAvailable before the first clone minus after the last one was
  // ready, divided by the number of clones (may be negative: noise).
  int64_t mem_available_before = 0, mem_available_after = 0;
  double MemAvailableDeltaPerClone() const;
  double MeanPss() const;
  double MeanPrivateDirty() const;
  double MeanRss() const;
};

// Boots the template, clones it opts.clones times (one at a time, all kept
// alive until memory is read), then kills every QEMU it started and removes
// its directory: on success and on every error.
Result<PeerReport> MeasureQemuTemplating(const QemuPeerOptions& opts);

// The pieces, exposed for tests.

// The kernel command line for QEMU: `base` without pci=off (virtio-pci
// needs PCI) and with console=ttyS0.
std::string QemuCmdline(const std::string& base);

// manifest.json's "cmdline" and whether its "modules" list names `module`.
struct GuestManifest {
  std::string cmdline;
  std::vector<std::string> modules;
  bool HasModule(const std::string& m) const;
};
Result<GuestManifest> ParseGuestManifest(const std::string& json_text);

struct QemuLaunch {
  bool is_template = false;
  std::string memory_file;  // the template's RAM file
  std::string qmp_socket;
  std::string serial_log;
  uint32_t vsock_cid = 0;  // 0: no vsock device
};
// argv (argv[0] = the binary) of one QEMU: template or clone.
std::vector<std::string> BuildQemuArgs(const QemuPeerOptions& opts, const std::string& cmdline,
                                       const QemuLaunch& launch);

Result<ProcessMemory> ParseSmapsRollup(const std::string& text);
// MemAvailable of /proc/meminfo text, bytes.
Result<uint64_t> ParseMemAvailable(const std::string& text);

// The agent's first frame: a response on stream 0 whose payload is a
// Response with its `ready` member (field 14). Checks the 10-byte header
// and the payload's first tag.
Status CheckReadyFrame(const uint8_t* header, const std::string& payload);

// The report as one JSON object (for --json and `kata-factory bench`).
std::string PeerReportJson(const PeerReport& r);

}  // namespace kf::peers
