// KSM for the density mode's "KSM on" measurement: save ksmd's settings,
// turn it on and scan fast, wait until merging settles, read what it
// merged, and put the settings back. Needs root (writes /sys/kernel/mm/ksm).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "vmm-glue/result.h"

namespace kf::bench {

struct KsmSettings {
  uint64_t run = 0, pages_to_scan = 0, sleep_millisecs = 0;
};

struct KsmCounters {
  uint64_t pages_shared = 0;   // distinct merged pages kept
  uint64_t pages_sharing = 0;  // further mappings of them: pages saved
  uint64_t full_scans = 0;
  uint64_t saved_bytes() const { return pages_sharing * 4096; }
};

class Ksm {
 public:
  explicit Ksm(std::string dir = "/sys/kernel/mm/ksm") : dir_(std::move(dir)) {}

  // Why KSM cannot be driven here ("" when it can): missing, not root.
  std::string UnavailableReason() const;
  Result<KsmSettings> ReadSettings() const;
  Result<KsmCounters> ReadCounters() const;
  Status Write(const KsmSettings& s) const;

  // run=1 with a fast scan, then waits until two more full scans have
  // passed and pages_sharing has stopped growing (or timeout_s).
  // `tick` is called while waiting (progress).
  Result<KsmCounters> MergeAndSettle(int timeout_s, const std::function<void()>& tick) const;

 private:
  Result<uint64_t> ReadUint(const std::string& name) const;
  Status WriteUint(const std::string& name, uint64_t v) const;
  std::string dir_;
};

}  // namespace kf::bench
