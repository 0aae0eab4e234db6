// Host figures for Status (and metrics): MemAvailable and KSM's counters
// from /sys/kernel/mm/ksm.
#pragma once

#include <cstdint>
#include <string>

namespace kf::daemon {

struct KsmFigures {
  bool available = false;  // the sysfs directory exists
  uint64_t run = 0;
  uint64_t pages_shared = 0;
  uint64_t pages_sharing = 0;
};

// Reads DIR/{run,pages_shared,pages_sharing}; a missing file leaves 0.
KsmFigures ReadKsm(const std::string& dir = "/sys/kernel/mm/ksm");

}  // namespace kf::daemon
