#include "vmm-glue/vmm_thread.h"

#include <cstring>
#include <memory>
#include <utility>

namespace kf {

namespace {
void* Trampoline(void* arg) {
  std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(arg));
  (*fn)();
  return nullptr;
}
}  // namespace

Result<VmmThread> VmmThread::Start(std::function<void()> fn) {
  pthread_attr_t attr;
  int rc = ::pthread_attr_init(&attr);
  if (rc == 0) rc = ::pthread_attr_setstacksize(&attr, kStackBytes);
  if (rc != 0) {
    ::pthread_attr_destroy(&attr);
    return Error("pthread_attr_setstacksize: " + std::string(std::strerror(rc)), rc);
  }
  auto heap_fn = std::make_unique<std::function<void()>>(std::move(fn));
  VmmThread t;
  rc = ::pthread_create(&t.thread_, &attr, Trampoline, heap_fn.get());
  ::pthread_attr_destroy(&attr);
  if (rc != 0) return Error("pthread_create: " + std::string(std::strerror(rc)), rc);
  heap_fn.release();  // the thread owns it now
  t.started_ = true;
  return t;
}

VmmThread::~VmmThread() { join(); }

VmmThread::VmmThread(VmmThread&& other) noexcept
    : thread_(other.thread_), started_(std::exchange(other.started_, false)) {}

VmmThread& VmmThread::operator=(VmmThread&& other) noexcept {
  if (this != &other) {
    join();
    thread_ = other.thread_;
    started_ = std::exchange(other.started_, false);
  }
  return *this;
}

void VmmThread::join() {
  if (!started_) return;
  ::pthread_join(thread_, nullptr);
  started_ = false;
}

}  // namespace kf
