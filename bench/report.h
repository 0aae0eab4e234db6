// The bench's report: every measurement with what it measured, the machine,
// the command line and the date; as a table for people or one JSON object
// for scripts (scripts/capacity-plan reads it). docs/BENCHMARKS.md
// "How to run" describes the fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/density.h"
#include "bench/latency.h"
#include "bench/machine.h"
#include "bench/soak.h"
#include "bench/throughput.h"
#include "bench/working_set.h"

namespace kf::bench {

inline constexpr int kReportVersion = 1;

// --compare: the peers and the ratios (bench/compare.h). Times in ns,
// memory in bytes per clone; 0 = not measured.
struct CompareResult {
  uint64_t ours_clone_ns = 0;         // pool miss, GetVM -> first Ping, p50
  double ours_pss_per_vm = 0;         // density, last point
  double ours_mem_available_per_vm = 0;
  uint64_t cold_boot_ns = 0;          // our VMM without a template: VM creation -> agent Ready
  std::string cold_boot_skipped;
  std::string qemu_skipped;           // why the QEMU peer did not run ("" when it did)
  std::string qemu_accel, qemu_readiness, qemu_version;
  uint32_t qemu_clones = 0;
  uint64_t qemu_template_boot_ns = 0;
  uint64_t qemu_clone_ns = 0;         // p50 of spawn -> ready
  uint64_t qemu_clone_max_ns = 0;
  double qemu_pss_per_vm = 0, qemu_private_dirty_per_vm = 0, qemu_mem_available_per_vm = 0;
};

struct BenchReport {
  std::string command;  // the command line, as given
  std::string date;     // UTC, ISO 8601
  Machine machine;
  // Where the VMs came from.
  bool self_daemon = true;
  std::string socket, template_name, guest;
  uint64_t template_mem_bytes = 0;
  uint32_t template_vcpus = 0;  // 0: the daemon did not say (an older one)
  uint64_t template_boot_ns = 0;  // --self: booting the template (0 when not made here)
  std::string mode;
  std::optional<LatencyResult> latency;
  std::optional<ThroughputResult> throughput;
  std::optional<SoakResult> soak;
  std::optional<DensityResult> density;
  std::optional<WorkingSetResult> working_set;
  std::optional<CompareResult> compare;
  std::string error;  // the failure that ended the bench early ("" when none)
};

std::string ReportJson(const BenchReport& report);
std::string ReportText(const BenchReport& report);

// "2026-11-29T11:00:00Z", now.
std::string UtcNow();

}  // namespace kf::bench
