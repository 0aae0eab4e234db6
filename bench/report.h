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
#include "bench/throughput.h"
#include "bench/working_set.h"

namespace kf::bench {

inline constexpr int kReportVersion = 1;

struct BenchReport {
  std::string command;  // the command line, as given
  std::string date;     // UTC, ISO 8601
  Machine machine;
  // Where the VMs came from.
  bool self_daemon = true;
  std::string socket, template_name, guest;
  uint64_t template_mem_bytes = 0;
  uint64_t template_boot_ns = 0;  // --self: booting the template (0 when not made here)
  std::string mode;
  std::optional<LatencyResult> latency;
  std::optional<ThroughputResult> throughput;
  std::optional<DensityResult> density;
  std::optional<WorkingSetResult> working_set;
  std::string error;  // the failure that ended the bench early ("" when none)
};

std::string ReportJson(const BenchReport& report);
std::string ReportText(const BenchReport& report);

// "2026-11-29T11:00:00Z", now.
std::string UtcNow();

}  // namespace kf::bench
