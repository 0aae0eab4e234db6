// Watches sandbox VMM processes through their pidfds (readable when the
// process exits) on one epoll thread, and calls back once per exit. Each
// watch has a key; Unwatch() before closing the pidfd (a VM being released
// on purpose) guarantees no callback for it afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::daemon {

class PidWatcher {
 public:
  using OnExit = std::function<void(const std::string& key)>;
  explicit PidWatcher(OnExit on_exit) : on_exit_(std::move(on_exit)) {}
  ~PidWatcher() { Stop(); }

  Status Start();
  void Stop();  // joins the thread; no callbacks after it returns

  // Watches `pidfd` (not owned; keep it open until Unwatch or the callback).
  Status Watch(int pidfd, const std::string& key);
  // No callback for `key` after this returns (unless one is running now on
  // the watcher thread: callbacks must tolerate a key already gone).
  void Unwatch(const std::string& key);

 private:
  void Loop();
  OnExit on_exit_;
  UniqueFd epoll_, wake_;
  std::thread thread_;
  std::mutex mu_;
  uint64_t next_serial_ = 1;
  std::map<uint64_t, std::pair<std::string, int>> by_serial_;  // serial -> key, fd
  std::map<std::string, uint64_t> by_key_;
};

}  // namespace kf::daemon
