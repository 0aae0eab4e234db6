#include "factory/daemon/event_bus.h"

#include <algorithm>
#include <chrono>

namespace kf::daemon {

std::optional<pb::Event> EventBus::Subscription::Next(int timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) return std::nullopt;
  pb::Event e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool EventBus::Subscription::closed() const {
  std::lock_guard lock(mu_);
  return closed_ && queue_.empty();
}

uint64_t EventBus::Subscription::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

std::shared_ptr<EventBus::Subscription> EventBus::Subscribe(const std::string& tmpl) {
  auto sub = std::make_shared<Subscription>();
  sub->template_filter_ = tmpl;
  std::lock_guard lock(mu_);
  if (closed_) {
    sub->closed_ = true;
    return sub;
  }
  subs_.push_back(sub);
  return sub;
}

void EventBus::Unsubscribe(const std::shared_ptr<Subscription>& sub) {
  std::lock_guard lock(mu_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), sub), subs_.end());
}

void EventBus::Publish(const pb::Event& event) {
  std::lock_guard lock(mu_);
  for (auto& sub : subs_) {
    if (!sub->template_filter_.empty() && sub->template_filter_ != event.template_()) continue;
    {
      std::lock_guard sub_lock(sub->mu_);
      if (sub->queue_.size() >= kQueueMax) {
        sub->queue_.pop_front();
        ++sub->dropped_;
      }
      sub->queue_.push_back(event);
    }
    sub->cv_.notify_one();
  }
}

void EventBus::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& sub : subs_) {
    {
      std::lock_guard sub_lock(sub->mu_);
      sub->closed_ = true;
    }
    sub->cv_.notify_all();
  }
  subs_.clear();
}

}  // namespace kf::daemon
