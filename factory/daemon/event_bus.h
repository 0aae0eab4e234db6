// VM events (ready, released, died) fanned out to WatchEvents streams. Each
// subscriber has its own bounded queue: a subscriber that does not keep up
// loses its oldest events (counted), never blocks the daemon.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proto/factory.pb.h"

namespace kf::daemon {

namespace pb = katafactory::v1;

class EventBus {
 public:
  static constexpr size_t kQueueMax = 4096;

  class Subscription {
   public:
    // The next event, or nullopt after `timeout_ms` or once the bus is closed
    // (then closed() is true).
    std::optional<pb::Event> Next(int timeout_ms);
    bool closed() const;
    uint64_t dropped() const;

   private:
    friend class EventBus;
    std::string template_filter_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<pb::Event> queue_;
    bool closed_ = false;
    uint64_t dropped_ = 0;
  };

  // Events of `tmpl` only, or of all templates when empty.
  std::shared_ptr<Subscription> Subscribe(const std::string& tmpl = "");
  void Unsubscribe(const std::shared_ptr<Subscription>& sub);
  void Publish(const pb::Event& event);
  // Ends every subscription (a draining daemon); later Subscribe()s are
  // closed at once.
  void Close();

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subs_;
  bool closed_ = false;
};

}  // namespace kf::daemon
