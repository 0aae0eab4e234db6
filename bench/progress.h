// A progress bar on stderr, drawn only when stderr is a terminal (and not
// --quiet): "latency, pool hits [#########.........]  45/100".
#pragma once

#include <cstdint>
#include <string>

namespace kf::bench {

class Progress {
 public:
  // `enabled`: draw the bar; `notes`: print Note lines.
  Progress(bool enabled, bool notes) : enabled_(enabled), notes_(notes) {}
  ~Progress() { Done(); }
  // Starts a bar (ending any other).
  void Begin(const std::string& label, uint64_t total);
  void Update(uint64_t done);
  // A line of its own above the bar ("bench: ..."), unless notes are off.
  void Note(const std::string& line);
  void Done();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_, notes_;
  bool active_ = false;
  std::string label_;
  uint64_t total_ = 0, last_ = UINT64_MAX;
};

}  // namespace kf::bench
