// Summaries of measured samples: nearest-rank percentiles (the same rule as
// `kata-factory clone`, factory/clone_batch.h) and byte-size parsing for
// the bench's flags. Pure functions, unit tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::bench {

// Nanosecond samples summarised: count, p50, p90, p99, max, mean.
struct LatencySummary {
  uint64_t count = 0;
  uint64_t p50_ns = 0, p90_ns = 0, p99_ns = 0, max_ns = 0, mean_ns = 0;
};

LatencySummary Summarize(const std::vector<uint64_t>& samples_ns);

// "20G", "512M", "64K", "1T" (binary units; a trailing "iB" or "B" is
// allowed: "20GiB") or plain bytes. Rejects 0 and overflow.
Result<uint64_t> ParseBytes(const std::string& text);

// "0,256,1024" -> {0, 256, 1024}; each at most `max_each`; not empty.
Result<std::vector<uint64_t>> ParseUintList(const std::string& text, uint64_t max_each);

}  // namespace kf::bench
