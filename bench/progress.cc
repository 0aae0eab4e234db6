#include "bench/progress.h"

#include <algorithm>
#include <cstdio>

namespace kf::bench {

namespace {
constexpr int kWidth = 30;
}

void Progress::Begin(const std::string& label, uint64_t total) {
  Done();
  label_ = label;
  total_ = total;
  last_ = UINT64_MAX;
  active_ = enabled_;
  Update(0);
}

void Progress::Update(uint64_t done) {
  if (!active_ || done == last_) return;
  last_ = done;
  const int filled =
      total_ == 0 ? kWidth : static_cast<int>(kWidth * std::min(done, total_) / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  std::fprintf(stderr, "\r%-28s [%s] %llu/%llu", label_.c_str(), bar.c_str(),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_));
  std::fflush(stderr);
}

void Progress::Note(const std::string& line) {
  if (!notes_) return;
  if (active_) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "bench: %s\n", line.c_str());
  last_ = UINT64_MAX;  // the bar is redrawn at the next update
}

void Progress::Done() {
  if (!active_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  active_ = false;
}

}  // namespace kf::bench
