// A joinable thread with a small stack of its own, for the threads a clone's
// VMM runs (vCPU, devices).
//
// Why not std::thread: its stack is glibc's default, an 8 MiB anonymous
// mapping. When that mapping happens to be 2 MiB aligned and the host has
// transparent huge pages on ("always"), the first touch of the stack faults
// a whole 2 MiB huge page: measured in the nested tier (2026-11-29), one of a
// Linux clone's two thread stacks held 2,048 KiB of private memory, two
// thirds of the clone's 3.2 MiB private dirty. A stack mapping smaller than
// 2 MiB can never hold a huge page, and these threads need far less.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>

#include "vmm-glue/result.h"

namespace kf {

class VmmThread {
 public:
  // 1 MiB: under the 2 MiB of a huge page, and far above what the vCPU and
  // device loops use (no large buffers live on their stacks).
  static constexpr size_t kStackBytes = size_t{1} << 20;

  VmmThread() = default;
  ~VmmThread();  // joins if still joinable
  VmmThread(VmmThread&& other) noexcept;
  VmmThread& operator=(VmmThread&& other) noexcept;
  VmmThread(const VmmThread&) = delete;
  VmmThread& operator=(const VmmThread&) = delete;

  // Starts fn on a new thread with a kStackBytes stack.
  static Result<VmmThread> Start(std::function<void()> fn);

  bool joinable() const { return started_; }
  pthread_t native_handle() const { return thread_; }
  void join();

 private:
  pthread_t thread_{};
  bool started_ = false;
};

}  // namespace kf
