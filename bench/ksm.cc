#include "bench/ksm.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "factory/clock.h"

namespace kf::bench {

std::string Ksm::UnavailableReason() const {
  if (::access((dir_ + "/run").c_str(), F_OK) != 0) return dir_ + " is missing (no CONFIG_KSM)";
  if (::access((dir_ + "/run").c_str(), W_OK) != 0) return "writing " + dir_ + "/run needs root";
  return "";
}

Result<uint64_t> Ksm::ReadUint(const std::string& name) const {
  std::ifstream f(dir_ + "/" + name);
  uint64_t v = 0;
  if (!(f >> v)) return Error("reading " + dir_ + "/" + name);
  return v;
}

Status Ksm::WriteUint(const std::string& name, uint64_t v) const {
  std::ofstream f(dir_ + "/" + name);
  f << v << "\n";
  f.flush();
  if (!f) return Error::Sys("writing " + std::to_string(v) + " to " + dir_ + "/" + name);
  return Status::Ok();
}

Result<KsmSettings> Ksm::ReadSettings() const {
  KsmSettings s;
  ASSIGN_OR_RETURN(s.run, ReadUint("run"));
  ASSIGN_OR_RETURN(s.pages_to_scan, ReadUint("pages_to_scan"));
  ASSIGN_OR_RETURN(s.sleep_millisecs, ReadUint("sleep_millisecs"));
  return s;
}

Result<KsmCounters> Ksm::ReadCounters() const {
  KsmCounters c;
  ASSIGN_OR_RETURN(c.pages_shared, ReadUint("pages_shared"));
  ASSIGN_OR_RETURN(c.pages_sharing, ReadUint("pages_sharing"));
  ASSIGN_OR_RETURN(c.full_scans, ReadUint("full_scans"));
  return c;
}

Status Ksm::Write(const KsmSettings& s) const {
  // Settings first, run last: a restored run=0 stops ksmd but keeps what
  // it merged (run=2 would unmerge everything: never written here).
  RETURN_IF_ERROR(WriteUint("pages_to_scan", s.pages_to_scan));
  RETURN_IF_ERROR(WriteUint("sleep_millisecs", s.sleep_millisecs));
  return WriteUint("run", s.run == 2 ? 0 : s.run);
}

Result<KsmCounters> Ksm::MergeAndSettle(int timeout_s, const std::function<void()>& tick) const {
  RETURN_IF_ERROR(Write(KsmSettings{1, 20000, 10}));
  ASSIGN_OR_RETURN(KsmCounters start, ReadCounters());
  const uint64_t end = MonotonicNs() + uint64_t(timeout_s) * 1000000000ull;
  KsmCounters last = start;
  while (MonotonicNs() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (tick) tick();
    ASSIGN_OR_RETURN(KsmCounters now, ReadCounters());
    const bool scanned = now.full_scans >= start.full_scans + 2;
    const bool stable = now.full_scans > last.full_scans && now.pages_sharing == last.pages_sharing;
    if (now.full_scans != last.full_scans) {
      if (scanned && stable) return now;
      last = now;
    }
  }
  return ReadCounters();
}

}  // namespace kf::bench
