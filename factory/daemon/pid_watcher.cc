#include "factory/daemon/pid_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

namespace kf::daemon {

namespace {
constexpr uint64_t kWakeSerial = 0;
}

Status PidWatcher::Start() {
  epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return Error::Sys("epoll_create1");
  wake_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return Error::Sys("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeSerial;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) < 0)
    return Error::Sys("epoll_ctl eventfd");
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void PidWatcher::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

Status PidWatcher::Watch(int pidfd, const std::string& key) {
  std::lock_guard lock(mu_);
  const uint64_t serial = next_serial_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = serial;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pidfd, &ev) < 0)
    return Error::Sys("epoll_ctl add pidfd");
  by_serial_[serial] = {key, pidfd};
  by_key_[key] = serial;
  return Status::Ok();
}

void PidWatcher::Unwatch(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  auto s = by_serial_.find(it->second);
  if (s != by_serial_.end()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s->second.second, nullptr);
    by_serial_.erase(s);
  }
  by_key_.erase(it);
}

void PidWatcher::Loop() {
  epoll_event events[64];
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeSerial) return;
      std::string key;
      {
        std::lock_guard lock(mu_);
        auto s = by_serial_.find(events[i].data.u64);
        if (s == by_serial_.end()) continue;  // unwatched meanwhile
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s->second.second, nullptr);
        key = s->second.first;
        by_key_.erase(key);
        by_serial_.erase(s);
      }
      on_exit_(key);
    }
  }
}

}  // namespace kf::daemon
